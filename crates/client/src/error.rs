//! The client's error type.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use vmnet_broker_proto::Status;
use vmnet_broker_proto::text::escape_path;

/// Why a request to the broker failed.
///
/// Every error maps to a protocol [`Status`] through [`Error::status`], the
/// number a C caller would see: failures to talk to the broker are
/// [`Status::XPC_FAILURE`] (1), replies that break the protocol are
/// [`Status::INVALID_REPLY`] (2), and an error the broker sent is passed on
/// unchanged, including codes this version does not know.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The development socket could not be opened.
    #[error("cannot connect to the broker at {}: {source}", escape_path(path))]
    Connect {
        /// The socket path that was tried.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The process serving the socket runs as another user: not root, not
    /// this process's user. It may be anyone who bound the path first, so
    /// nothing is sent to it.
    #[error(
        "refusing the broker at {}: it runs as uid {uid}, but only {} may serve it; another user may have taken the socket path",
        escape_path(path),
        trusted_servers(*own)
    )]
    UntrustedServer {
        /// The socket path.
        path: PathBuf,
        /// The server's effective user id.
        uid: u32,
        /// This process's effective user id.
        own: u32,
    },
    /// The process serving the XPC Mach service runs as another user: not
    /// root, not this process's user. Its reply was discarded.
    #[error(
        "refusing the broker on the XPC service {service}: it runs as uid {uid}, but only {} may serve it; another user may have registered the service",
        trusted_servers(*own)
    )]
    UntrustedService {
        /// The Mach service name.
        service: String,
        /// The server's effective user id.
        uid: u32,
        /// This process's effective user id.
        own: u32,
    },
    /// The broker did not answer in time (a stopped or stuck broker still
    /// accepts connections, so only the reply never comes).
    #[error("the broker did not answer in time ({what}; gave up after {}s)", after.as_secs_f64())]
    Timeout {
        /// What the client was doing.
        what: &'static str,
        /// The timeout in force.
        after: Duration,
    },
    /// Sending a request or reading its reply failed.
    #[error("cannot talk to the broker ({what}): {source}")]
    Io {
        /// What the client was doing.
        what: &'static str,
        /// What the system said.
        source: io::Error,
    },
    /// The broker closed the connection before replying.
    #[error("the broker closed the connection")]
    Closed,
    /// The connection the network was acquired on broke; the broker has
    /// already dropped the hold.
    #[error("the connection to the broker was lost; the hold on {network:?} is already gone")]
    ConnectionLost {
        /// The network whose hold was lost.
        network: String,
    },
    /// An XPC-level failure (macOS).
    #[error("XPC error: {0}")]
    Xpc(String),
    /// The broker answered the request with an error status.
    #[error("{command}{}: {status}", quoted(network))]
    Broker {
        /// The command that failed (`acquire`, `release`, `status`).
        command: &'static str,
        /// The network the request named, if any.
        network: Option<String>,
        /// The status the broker sent.
        status: Status,
    },
    /// The reply does not follow the protocol.
    #[error("invalid reply from the broker to {command}: {reason}")]
    InvalidReply {
        /// The command whose reply was wrong.
        command: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The connection broke while no request was in flight (the broker
    /// exited or was restarted): the broker has dropped every hold made
    /// on it. Reported once, by the first request after the loss; the
    /// next one connects again.
    #[error(
        "the connection to the broker was lost (the broker exited or was restarted); its networks were released: acquire them again"
    )]
    Lost,
    /// A timeout from the environment is not a number of seconds within
    /// the bounds; nothing was sent.
    #[error(
        "{variable}={value:?} is not a valid timeout: give seconds from {} to {}",
        crate::MIN_TIMEOUT.as_secs_f64(),
        crate::MAX_TIMEOUT.as_secs()
    )]
    InvalidTimeout {
        /// Where the value came from (the environment variable's name).
        variable: &'static str,
        /// The value as given.
        value: String,
    },
    /// The request cannot be expressed on this transport (for example a
    /// name with a NUL byte over XPC).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl Error {
    /// The protocol status of this error (what `vmnet_broker_return_t`
    /// would hold in C).
    ///
    /// ```
    /// use vmnet_broker_client::{Error, Status};
    ///
    /// let e = Error::Closed;
    /// assert_eq!(e.status(), Status::XPC_FAILURE);
    /// ```
    pub fn status(&self) -> Status {
        match self {
            Self::Connect { .. }
            | Self::UntrustedServer { .. }
            | Self::UntrustedService { .. }
            | Self::Timeout { .. }
            | Self::Io { .. }
            | Self::Closed
            | Self::ConnectionLost { .. }
            | Self::Lost
            | Self::Xpc(_) => Status::XPC_FAILURE,
            Self::Broker { status, .. } => *status,
            Self::InvalidReply { .. } => Status::INVALID_REPLY,
            Self::InvalidRequest(_) | Self::InvalidTimeout { .. } => Status::INVALID_REQUEST,
        }
    }

    /// Whether the broker reported that the network does not exist (or,
    /// for `release`, that this connection does not hold it).
    pub fn is_not_found(&self) -> bool {
        self.status() == Status::NOT_FOUND
    }

    /// Whether the error happened talking to the broker, rather than being
    /// an answer from it.
    pub fn is_transport(&self) -> bool {
        self.status() == Status::XPC_FAILURE
    }
}

/// Who may serve a client running as `own`: root, and the client's own
/// user.
fn trusted_servers(own: u32) -> String {
    if own == 0 {
        "root (uid 0)".to_owned()
    } else {
        format!("root (uid 0) or this user (uid {own})")
    }
}

/// ` "name"` for messages, or nothing.
fn quoted(network: &Option<String>) -> String {
    network
        .as_deref()
        .map(|n| format!(" {n:?}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_protocol() {
        let io = || io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            Error::Connect {
                path: "/x".into(),
                source: io()
            }
            .status(),
            Status::XPC_FAILURE
        );
        assert_eq!(
            Error::Io {
                what: "write",
                source: io()
            }
            .status(),
            Status::XPC_FAILURE
        );
        assert_eq!(
            Error::InvalidReply {
                command: "acquire",
                reason: "x".into()
            }
            .status(),
            Status::INVALID_REPLY
        );
        let unknown = Error::Broker {
            command: "acquire",
            network: Some("n".into()),
            status: Status(999),
        };
        assert_eq!(unknown.status(), Status(999));
        assert_eq!(unknown.to_string(), "acquire \"n\": unknown status 999");
    }

    #[test]
    fn messages_name_the_socket() {
        let e = Error::Connect {
            path: "/run/x.sock".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert!(e.to_string().contains("/run/x.sock"), "{e}");
    }
}
