//! The macOS platform layer of vmnet-broker.
//!
//! Two halves with different reach:
//!
//! - **Portable** (builds and is tested on every OS):
//!   - [`vmnet_status`]: the numbers and names of `vmnet_return_t` and the
//!     [`VmnetError`] built from them.
//! - **macOS only** (these modules do not exist on other systems):
//!   - `sys`: raw `extern` declarations for libxpc and vmnet.framework, each
//!     citing where its prototype was confirmed;
//!   - `xpc`: owned XPC objects, JSON conversion, the Mach-service listener
//!     and the client connection;
//!   - `vmnet`: network configuration, network and interface wrappers;
//!   - `dispatch`: signal sources and a re-armable one-shot timer.
//!
//! The layering (raw `extern` → owning wrappers → the daemon and clients) is
//! described in `docs/macos.md`. Everything macOS-only is type-checked on
//! Linux with `cargo clippy --target aarch64-apple-darwin` (and x86_64); it
//! has not been run by us.
//!
//! The launchd install planner lives in its own crate,
//! `vmnet-broker-launchd`, which only the daemon uses.

#![warn(missing_docs)]

pub mod vmnet_status;

#[cfg(target_os = "macos")]
pub mod sys;

#[cfg(target_os = "macos")]
pub mod xpc;

#[cfg(target_os = "macos")]
pub mod vmnet;

#[cfg(target_os = "macos")]
pub mod dispatch;

pub use vmnet_status::{VmnetError, VmnetMode, VmnetStatus};
