//! Fuzz target `config_plist`: see `vmnet_broker_fuzz::config_plist`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vmnet_broker_fuzz::config_plist(data);
});
