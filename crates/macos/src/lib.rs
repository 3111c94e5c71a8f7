//! The macOS platform layer of vmnet-broker.
//!
//! Two halves with different reach:
//!
//! - **Portable** (builds and is tested on every OS):
//!   - [`launchd`]: the launchd job file, the entitlements file, and the
//!     install/uninstall *plan*. Planning is a pure function of an observed
//!     [`launchd::InstallState`]; probing the system and executing a plan
//!     run real commands (`dscl`, `launchctl`, `codesign`) and only make
//!     sense on macOS, but compile everywhere.
//!   - [`vmnet_status`]: the numbers and names of `vmnet_return_t` and the
//!     [`VmnetError`] built from them.
//! - **macOS only** (these modules do not exist on other systems):
//!   - `sys`: raw `extern` declarations for libxpc and vmnet.framework, each
//!     citing where its prototype was confirmed;
//!   - `xpc`: owned XPC objects, JSON conversion, the Mach-service listener
//!     and the client connection;
//!   - `vmnet`: network configuration, network and interface wrappers;
//!   - `dispatch`: signal sources and a re-armable one-shot timer;
//!   - `membership`: group membership through `<membership.h>`
//!     (`mbr_check_membership`), for `allowed_groups`.
//!
//! The layering (raw `extern` → owning wrappers → the daemon and clients) is
//! described in `docs/macos.md`. Everything macOS-only is type-checked on
//! Linux with `cargo clippy --target aarch64-apple-darwin` (and x86_64); it
//! has not been run by us.

#![warn(missing_docs)]

#[cfg(unix)]
pub mod launchd;
pub mod vmnet_status;

#[cfg(unix)]
mod unix;

#[cfg(target_os = "macos")]
pub mod sys;

#[cfg(target_os = "macos")]
pub mod xpc;

#[cfg(target_os = "macos")]
pub mod vmnet;

#[cfg(target_os = "macos")]
pub mod dispatch;

#[cfg(target_os = "macos")]
pub mod membership;

pub use vmnet_status::{VmnetError, VmnetMode, VmnetStatus};
