//! The two ways of reaching the broker: the development socket everywhere,
//! and XPC on macOS.

mod socket;
#[cfg(any(target_os = "macos", feature = "fake-apple"))]
mod xpc;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use vmnet_broker_proto::{NetworkInfo, StatusReport};

use crate::Error;
use crate::decode::Acquired;

pub(crate) use socket::{SocketTransport, wait_closed};
#[cfg(any(target_os = "macos", feature = "fake-apple"))]
pub use xpc::Object as XpcSerialization;
#[cfg(any(target_os = "macos", feature = "fake-apple"))]
pub(crate) use xpc::XpcTransport;

/// The serialization of an acquired network, as the transport carries it.
#[derive(Debug)]
pub(crate) enum Serialization {
    /// Development socket: a JSON value (with the simulated backend, an
    /// object describing the simulated network).
    Json(Value),
    /// XPC: the object to hand to `vmnet_network_create_with_serialization`.
    #[cfg(any(target_os = "macos", feature = "fake-apple"))]
    Xpc(XpcSerialization),
}

/// A connection to the broker.
#[derive(Debug)]
pub(crate) enum Transport {
    Socket(SocketTransport),
    #[cfg(any(target_os = "macos", feature = "fake-apple"))]
    Xpc(XpcTransport),
}

impl Transport {
    pub(crate) fn socket(path: &Path, timeout: Duration) -> Result<Self, Error> {
        SocketTransport::connect(path, timeout).map(Transport::Socket)
    }

    /// Changes the bound on connecting (socket) and on each request.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        match self {
            Self::Socket(t) => t.set_timeout(timeout),
            #[cfg(any(target_os = "macos", feature = "fake-apple"))]
            Self::Xpc(t) => t.set_timeout(timeout),
        }
    }

    /// A duplicate of the socket connection's descriptor, to watch for its
    /// end; `None` over XPC or when not connected.
    pub(crate) fn watch(&self) -> Option<socket2::Socket> {
        match self {
            Self::Socket(t) => t.watch(),
            #[cfg(any(target_os = "macos", feature = "fake-apple"))]
            Self::Xpc(_) => None,
        }
    }

    /// Forgets a connection seen closed (its holds are gone).
    pub(crate) fn mark_lost(&mut self) {
        match self {
            Self::Socket(t) => t.mark_lost(),
            #[cfg(any(target_os = "macos", feature = "fake-apple"))]
            Self::Xpc(_) => {}
        }
    }

    #[cfg(any(target_os = "macos", feature = "fake-apple"))]
    pub(crate) fn xpc(service: &str, timeout: Duration) -> Result<Self, Error> {
        XpcTransport::connect(service, timeout).map(Transport::Xpc)
    }

    /// A number that changes whenever the connection is lost, which drops
    /// every hold made before.
    pub(crate) fn epoch(&self) -> u64 {
        match self {
            Self::Socket(t) => t.epoch(),
            #[cfg(any(target_os = "macos", feature = "fake-apple"))]
            Self::Xpc(t) => t.epoch(),
        }
    }

    pub(crate) fn acquire(
        &mut self,
        network: &str,
    ) -> Result<(Serialization, Option<NetworkInfo>), Error> {
        match self {
            Self::Socket(t) => {
                let Acquired {
                    serialization,
                    info,
                } = t.acquire(network)?;
                Ok((Serialization::Json(serialization), info))
            }
            #[cfg(any(target_os = "macos", feature = "fake-apple"))]
            Self::Xpc(t) => {
                let Acquired {
                    serialization,
                    info,
                } = t.acquire(network)?;
                Ok((Serialization::Xpc(serialization), info))
            }
        }
    }

    pub(crate) fn release(&mut self, network: &str) -> Result<(), Error> {
        match self {
            Self::Socket(t) => t.release(network),
            #[cfg(any(target_os = "macos", feature = "fake-apple"))]
            Self::Xpc(t) => t.release(network),
        }
    }

    pub(crate) fn status(&mut self) -> Result<StatusReport, Error> {
        match self {
            Self::Socket(t) => t.status(),
            #[cfg(any(target_os = "macos", feature = "fake-apple"))]
            Self::Xpc(t) => t.status(),
        }
    }

    /// A short description for `Debug` output and messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Socket(t) => {
                format!("socket {}", vmnet_broker_proto::text::escape_path(t.path()))
            }
            #[cfg(any(target_os = "macos", feature = "fake-apple"))]
            Self::Xpc(t) => format!(
                "XPC service {}",
                vmnet_broker_proto::text::escape(t.service())
            ),
        }
    }
}
