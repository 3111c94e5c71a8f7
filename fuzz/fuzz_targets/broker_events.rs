//! Fuzz target `broker_events`: see `vmnet_broker_fuzz::broker_events`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vmnet_broker_fuzz::broker_events(data);
});
