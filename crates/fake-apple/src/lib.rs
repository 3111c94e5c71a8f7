//! Contract-enforcing fakes of libxpc, libdispatch, vmnet.framework and
//! Core Foundation's `CFRetain`/`CFRelease`, for running the project's
//! macOS code on Linux in tests.
//!
//! The crate exports the C symbols the real libraries export (`xpc_*`,
//! `_xpc_type_*`, `dispatch_*`, `vmnet_*`, `CFRetain`, `CFRelease`), so
//! the project's own `extern` declarations and wrappers run unchanged.
//! Every breach of a rule that Apple's headers or documentation state (an
//! over-release, a use after free, releasing an inactive connection, a
//! synchronous send from the connection's own queue, ...) aborts the
//! process with a message naming the rule; at exit a leak report lists
//! every object still alive and makes the process exit with status
//! [`LEAK_EXIT_STATUS`] if any of them should have been released.
//!
//! The rules, their sources and what the fakes cannot tell are in
//! `docs/macos-fakes.md`. Passing against these fakes shows that our code
//! keeps the contract as we read it; it does not show that it works on
//! macOS.
//!
//! Without its `enabled` feature the crate is empty (so that workspace-wide
//! builds for any target and profile compile it harmlessly). With it, the
//! crate is Linux only and never in a release build: it refuses to compile
//! otherwise. The `fake-apple` features of the project's crates turn
//! `enabled` on.

// One unsafe operation per block, so each SAFETY comment covers exactly one.
#![deny(clippy::multiple_unsafe_ops_per_block)]

#[cfg(all(feature = "enabled", not(target_os = "linux")))]
compile_error!(
    "vmnet-broker-fake-apple replaces Apple's libraries for tests on Linux; it must never be \
     built for another system (turn the `fake-apple` feature off)"
);

#[cfg(all(feature = "enabled", not(debug_assertions)))]
compile_error!(
    "vmnet-broker-fake-apple is for test builds only; it must never be in a release build \
     (turn the `fake-apple` feature off)"
);

#[cfg(all(feature = "enabled", target_os = "linux", debug_assertions))]
mod imp;

/// Exit status of a process whose leak report found objects that should
/// have been released.
pub const LEAK_EXIT_STATUS: i32 = 87;
