//! macOS platform layer of vmnet-broker: XPC and vmnet FFI
