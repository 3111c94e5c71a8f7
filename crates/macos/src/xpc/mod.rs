//! Safe XPC: owned objects, dictionaries, JSON conversion, the Mach-service
//! listener and the client connection (macOS only).
//!
//! This is the middle safety layer. Every raw pointer from [`crate::sys::xpc`]
//! is wrapped at once in an owning type whose `Drop` releases it:
//!
//! - [`XpcObject`]: any XPC object, shared and read-only (Clone = `xpc_retain`,
//!   Drop = `xpc_release`);
//! - [`XpcDictionary`]: a dictionary this process owns alone and may change
//!   (messages and replies being built); [`XpcDictionary::into_object`] shares
//!   it;
//! - [`XpcConnection`], [`XpcListener`], [`XpcClient`]: connections;
//! - [`XpcTransaction`]: keeps launchd from killing the process while held.
//!
//! Handlers given to this module run on the dispatch queue you pass, catch
//! panics (a block invocation must not unwind into libxpc), and are wrapped
//! in a mutex so that an `FnMut + Send` closure is enough.
//!
//! Type-checked on Linux for `aarch64-apple-darwin` and `x86_64-apple-darwin`;
//! run on Linux against the fakes of crates/fake-apple (docs/macos-fakes.md); not run on macOS by us.

mod connection;
mod json;
mod object;

pub use connection::{
    Admission, PeerCredentials, PeerId, ServiceEvent, XpcClient, XpcConnection, XpcListener,
    XpcRequest, XpcTransaction,
};
pub use json::{from_json, to_json};
pub use object::{XpcDictionary, XpcObject, XpcType};

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What went wrong with XPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XpcError {
    /// A key or string holds a NUL byte, which C strings cannot carry.
    #[error("the {what} {text:?} contains a NUL byte, which XPC strings cannot carry")]
    InteriorNul {
        /// `key`, `string`, or `service name`.
        what: &'static str,
        /// The offending text (shortened).
        text: String,
    },
    /// An XPC value has no JSON form (data, file descriptor, connection...).
    #[error("an XPC {0} value has no JSON form")]
    Unsupported(String),
    /// An XPC string or key is not UTF-8.
    #[error("an XPC string is not valid UTF-8")]
    NotUtf8,
    /// A JSON number has no XPC form (should not happen with serde_json).
    #[error("the JSON number {0} has no XPC form")]
    BadNumber(String),
    /// The message carries no reply context (it was not sent with a reply
    /// expected, or was already replied to).
    #[error("this message cannot be replied to: it expects no reply or was already answered")]
    NoReplyContext,
    /// `XPC_ERROR_CONNECTION_INVALID`: the service does not exist in this
    /// bootstrap, or the connection was cancelled.
    #[error(
        "the XPC connection to {service} is invalid ({description}): is the broker installed \
         (`vmnet-broker install`) and is the service name right?"
    )]
    ConnectionInvalid {
        /// The service name.
        service: String,
        /// libxpc's description.
        description: String,
    },
    /// `XPC_ERROR_CONNECTION_INTERRUPTED`: the service exited before
    /// replying.
    #[error(
        "the broker {service} closed the connection before replying ({description}): it exited or was restarted; look at its log"
    )]
    ConnectionInterrupted {
        /// The service name.
        service: String,
        /// libxpc's description.
        description: String,
    },
    /// `XPC_ERROR_TERMINATION_IMMINENT`: the broker is about to exit.
    #[error("the broker {service} is about to exit ({description}); try again once it is back")]
    TerminationImminent {
        /// The service name.
        service: String,
        /// libxpc's description.
        description: String,
    },
    /// No reply came in time; the connection was cancelled.
    #[error(
        "the broker {service} did not answer within {}s (the connection was cancelled)",
        after.as_secs_f64()
    )]
    Timeout {
        /// The service name.
        service: String,
        /// The time waited.
        after: std::time::Duration,
    },
    /// Another error object.
    #[error("XPC error from {service}: {description}")]
    Other {
        /// The service name.
        service: String,
        /// libxpc's description.
        description: String,
    },
}

/// Runs `f`, catching a panic so that it cannot unwind into C frames.
/// Returns `false` if `f` panicked (the panic is logged).
pub(crate) fn no_unwind(what: &str, f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(payload) => {
            tracing::error!(
                handler = what,
                panic = panic_message(payload.as_ref()),
                "a handler panicked; the event was dropped"
            );
            // Dropping the payload runs arbitrary Drop code; keep that from
            // unwinding too.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            false
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

/// These tests need libxpc: they run on macOS, and on Linux against the
/// fakes of crates/fake-apple (`cargo test -p vmnet-broker-macos --features
/// fake-apple`, also under valgrind in CI); they are type-checked for the
/// darwin targets.
#[cfg(test)]
mod tests {
    use serde_json::json;
    use vmnet_broker_proto::{Dict, MAX_NETWORK_NAME_LEN, Request};

    use super::*;

    #[test]
    fn json_round_trips_through_xpc() {
        let value = json!({
            "version": "0.1.0", "pid": 42, "uptime_seconds": 12.5,
            "exit_idle_timeout_seconds": null, "big": u64::MAX,
            "flags": [true, false], "nested": {"name": "shared", "holders": 2}
        });
        let xpc = from_json(&value).unwrap();
        assert_eq!(xpc.kind(), XpcType::Dictionary);
        assert_eq!(xpc.get("pid").unwrap().kind(), XpcType::Int64);
        assert_eq!(xpc.get("big").unwrap().kind(), XpcType::UInt64);
        assert_eq!(xpc.get("uptime_seconds").unwrap().kind(), XpcType::Double);
        assert_eq!(
            xpc.get("exit_idle_timeout_seconds").unwrap().kind(),
            XpcType::Null
        );
        assert_eq!(to_json(&xpc).unwrap(), value);
    }

    #[test]
    fn strings_with_nul_are_refused() {
        let err = from_json(&json!({"a\u{0}b": 1})).unwrap_err();
        assert!(
            matches!(err, XpcError::InteriorNul { what: "key", .. }),
            "{err}"
        );
        assert!(XpcObject::string("x\u{0}").is_err());
    }

    #[test]
    fn requests_decode_from_xpc_dictionaries_with_upstream_rules() {
        let mut msg = XpcDictionary::new();
        msg.set_string("command", "acquire").unwrap();
        msg.set_string("network_name", "shared").unwrap();
        let msg = msg.into_object();
        assert_eq!(msg.string("command").as_deref(), Some("acquire"));
        let req = Request::decode(&msg, MAX_NETWORK_NAME_LEN).unwrap();
        assert_eq!(req.network().map(|n| n.as_str()), Some("shared"));

        // A value of the wrong type counts as missing.
        let mut bad = XpcDictionary::new();
        bad.set_string("command", "acquire").unwrap();
        bad.set_i64("network_name", 7).unwrap();
        assert_eq!(bad.string("network_name"), None);
        let err = Request::decode(&bad, MAX_NETWORK_NAME_LEN).unwrap_err();
        assert_eq!(err.status().code(), 4);
    }

    #[test]
    fn int64_reads_tell_absence_from_zero() {
        let mut d = XpcDictionary::new();
        d.set_i64("error", 0).unwrap();
        d.set_string("text", "5").unwrap();
        assert_eq!(d.get_i64("error"), Some(0));
        assert_eq!(d.get_i64("missing"), None);
        assert_eq!(d.get_i64("text"), None);
        d.remove("error").unwrap();
        assert_eq!(d.get_i64("error"), None);
    }

    #[test]
    fn shared_values_are_retained_by_dictionaries() {
        let value = XpcObject::string("kept").unwrap();
        let mut d = XpcDictionary::new();
        d.set_value("network", &value).unwrap();
        drop(value);
        assert_eq!(d.get_string("network").as_deref(), Some("kept"));
        let clone = d.into_object();
        let other = clone.clone();
        drop(clone);
        assert_eq!(other.get_string("network").as_deref(), Some("kept"));
    }

    #[test]
    fn a_message_without_reply_context_cannot_be_answered() {
        let request = XpcRequest::for_test(XpcDictionary::new().into_object());
        assert_eq!(
            request.create_reply().unwrap_err(),
            XpcError::NoReplyContext
        );
    }

    #[test]
    fn a_missing_service_reports_connection_invalid() {
        let client =
            XpcClient::connect("com.github.nirs.vmnet-broker.test-no-such-service", false).unwrap();
        let mut msg = XpcDictionary::new();
        msg.set_string("command", "status").unwrap();
        let err = client.request(&msg).unwrap_err();
        assert!(matches!(err, XpcError::ConnectionInvalid { .. }), "{err}");
        let err = client
            .request_within(&msg, std::time::Duration::from_secs(30))
            .unwrap_err();
        assert!(matches!(err, XpcError::ConnectionInvalid { .. }), "{err}");
    }

    #[test]
    fn a_bounded_request_gets_its_reply_or_times_out_and_cancels() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Duration;

        let name = format!("test.request-within.{}", std::process::id());
        let queue = dispatch2::DispatchQueue::new("test.listener", None);
        // Answers the first request only, as a broker that then stops.
        let answered = AtomicUsize::new(0);
        let listener = XpcListener::start(&name, &queue, move |event| {
            if let ServiceEvent::Request { request, .. } = event
                && answered.fetch_add(1, Ordering::Relaxed) == 0
            {
                let mut reply = request.create_reply().unwrap();
                reply.set_i64("answer", 42).unwrap();
                request.send_reply(&reply).unwrap();
            }
        })
        .unwrap();
        let client = XpcClient::connect(&name, false).unwrap();
        let msg = XpcDictionary::new();

        let reply = client
            .request_within(&msg, Duration::from_secs(30))
            .unwrap();
        assert_eq!(reply.get_i64("answer"), Some(42));

        let err = client
            .request_within(&msg, Duration::from_millis(200))
            .unwrap_err();
        assert!(
            matches!(err, XpcError::Timeout { after, .. } if after == Duration::from_millis(200)),
            "{err}"
        );
        // The timeout cancelled the connection.
        let err = client
            .request_within(&msg, Duration::from_secs(30))
            .unwrap_err();
        assert!(matches!(err, XpcError::ConnectionInvalid { .. }), "{err}");
        drop(client);
        drop(listener);
    }
}
