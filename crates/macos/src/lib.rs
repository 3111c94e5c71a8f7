//! The macOS platform layer of vmnet-broker.
//!
//! Two halves with different reach:
//!
//! - **Portable** (builds and is tested on every OS):
//!   - [`vmnet_status`]: the numbers and names of `vmnet_return_t` and the
//!     [`VmnetError`] built from them.
//! - **macOS only** (these modules do not exist on other systems, except
//!   in Linux test builds with the `fake-apple` feature, where they run
//!   against the fakes of `crates/fake-apple`; see `docs/macos-fakes.md`):
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
//!
//! The launchd install planner lives in its own crate,
//! `vmnet-broker-launchd`, which only the daemon uses.

#![warn(missing_docs)]
// One unsafe operation per block, so each SAFETY comment covers exactly one.
#![deny(clippy::multiple_unsafe_ops_per_block)]

pub mod vmnet_status;

#[cfg(any(target_os = "macos", feature = "fake-apple"))]
pub mod sys;

#[cfg(any(target_os = "macos", feature = "fake-apple"))]
pub mod xpc;

#[cfg(any(target_os = "macos", feature = "fake-apple"))]
pub mod vmnet;

#[cfg(any(target_os = "macos", feature = "fake-apple"))]
pub mod dispatch;

#[cfg(target_os = "macos")]
pub mod membership;

// The fakes define the C symbols of libxpc, libdispatch and vmnet; naming
// the crate makes sure it is linked.
#[cfg(feature = "fake-apple")]
use vmnet_broker_fake_apple as _;

#[cfg(all(feature = "fake-apple", not(target_os = "linux")))]
compile_error!("the `fake-apple` feature is for Linux test builds only (docs/macos-fakes.md)");

#[cfg(all(feature = "fake-apple", not(debug_assertions)))]
compile_error!("the `fake-apple` feature must never be in a release build (docs/macos-fakes.md)");

pub use vmnet_status::{VmnetError, VmnetMode, VmnetStatus};
