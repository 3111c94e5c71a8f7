//! Rust client for vmnet-broker.
//!
//! The broker shares vmnet networks between processes: a client asks for a
//! network by name, the broker creates it on first use (or returns the live
//! one) and keeps it while any client holds it. This crate talks to it:
//!
//! - [`Client`] is one connection. [`Client::connect`] picks the transport:
//!   on macOS the XPC Mach service `com.github.nirs.vmnet-broker` (or the
//!   development socket when `VMNET_BROKER_SOCKET` is set), elsewhere the
//!   development socket ([`default_socket_path`]).
//! - [`Client::acquire`] returns a [`Network`]: its name, its addresses
//!   ([`Network::info`]) and its serialization, which the VM process hands
//!   to vmnet. The hold ends when the `Network` is released or dropped, or
//!   when the connection closes.
//! - [`Client::status`] describes the broker ([`StatusReport`]).
//! - [`acquire_network`] is the one-call form of the original C client: a
//!   process-wide connection made on first use and never closed.
//!
//! Errors carry the protocol [`Status`] ([`Error::status`]), so callers can
//! tell "no such network" (5) from "broker not running" (1).
//!
//! ```no_run
//! use vmnet_broker_client::{Client, Status};
//!
//! let client = Client::connect()?;
//! match client.acquire("no-such-network") {
//!     Err(e) if e.status() == Status::NOT_FOUND => println!("not configured"),
//!     Err(e) => return Err(e),
//!     Ok(net) => println!("got {}", net.name()),
//! }
//! # Ok::<(), vmnet_broker_client::Error>(())
//! ```
//!
//! The wire protocol is described in `docs/protocol.md` of the repository.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod decode;
mod error;
mod path;
mod sys;
mod timeout;
mod transport;

pub use client::{Client, Network, acquire_network, default_client};
pub use error::Error;
pub use path::{SOCKET_ENV, default_socket_path};
pub use sys::effective_uid;
pub use timeout::{
    DEFAULT_TIMEOUT, MAX_TIMEOUT, MIN_TIMEOUT, TIMEOUT_ENV, clamp_timeout, env_timeout,
    parse_timeout, timeout_from_secs,
};
#[cfg(any(target_os = "macos", feature = "fake-apple"))]
pub use transport::XpcSerialization;
pub use vmnet_broker_proto::{Mode, NetworkInfo, Status, StatusReport};

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_can_move_between_threads() {
        send_sync::<Client>();
        send_sync::<Network>();
        send_sync::<Error>();
    }
}
