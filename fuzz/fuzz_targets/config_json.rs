//! Fuzz target `config_json`: see `vmnet_broker_fuzz::config_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vmnet_broker_fuzz::config_json(data);
});
