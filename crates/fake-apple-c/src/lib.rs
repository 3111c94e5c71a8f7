//! The fakes of `vmnet-broker-fake-apple` as a shared library,
//! `libvmnet_broker_fake_apple.so`, for C code written against Apple's
//! libxpc and libdispatch: the Go client's cgo shim and the Swift
//! package's C target. Such code compiles on Linux against the headers in
//! this crate's `include/` (clang with `-fblocks`), links this library and
//! Debian's BlocksRuntime, and then runs against the same contract-enforcing
//! fakes as the project's Rust code: a breach of a rule aborts naming it,
//! and the leak report at exit counts what was not released.
//!
//! The library re-exports the fakes' C symbols (`xpc_*`, `_xpc_type_*`,
//! `_xpc_error_*`, `dispatch_*`); it has no code of its own. Build it with
//! `cargo build -p vmnet-broker-fake-apple-c --features enabled` (Linux,
//! debug builds only, as the fakes themselves). `scripts/test-fake-clients`
//! builds it and runs the client contract's table through it.

// Links the fakes in: a cdylib exports the `#[no_mangle]` symbols of the
// crates it links.
#[cfg(feature = "enabled")]
pub use vmnet_broker_fake_apple::LEAK_EXIT_STATUS;
