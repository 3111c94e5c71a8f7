//! Fuzz target `json_framing`: see `vmnet_broker_fuzz::json_framing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vmnet_broker_fuzz::json_framing(data);
});
