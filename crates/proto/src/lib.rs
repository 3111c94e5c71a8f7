//! The vmnet-broker wire protocol, shared by the broker and every client.
//!
//! A request is a dictionary (an XPC dictionary on macOS, a JSON object on the
//! development transport) with a `command` and, for most commands, a
//! `network_name`. A reply is a dictionary with either `network` (success)
//! or `error` (an integer [`Status`]). This crate holds the pieces of that
//! contract that do not depend on the transport:
//!
//! - [`Status`]: the status codes, open to numbers this version does not know;
//! - [`NetworkName`]: the accepted form of a network name;
//! - [`Request`]: a request decoded with the upstream rules from any
//!   [`Dict`];
//! - [`NetworkInfo`] and [`StatusReport`]: the additions we make to replies;
//! - [`json`]: the development transport's JSON-lines framing;
//! - [`text`]: escaping of outside names before anything prints them.
//!
//! The full contract is in `docs/protocol.md` at the repository root.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod name;
mod reply;
mod request;
mod status;

pub mod json;
pub mod text;

pub use name::{MAX_NETWORK_NAME_LEN, NameError, NetworkName};
pub use reply::{
    ClientStatus, Counters, Mode, NetworkInfo, NetworkStatus, StatusReport, WaitingNetwork,
    decode_acquire_reply,
};
pub use request::{Dict, Request, RequestError};
pub use status::Status;

/// The launchd Mach service name of the broker (same as the original C
/// implementation, so existing clients find us).
pub const MACH_SERVICE_NAME: &str = "com.github.nirs.vmnet-broker";

/// Keys of request and reply dictionaries.
pub mod keys {
    /// Request: the command name (string).
    pub const COMMAND: &str = "command";
    /// Request: the network name (string).
    pub const NETWORK_NAME: &str = "network_name";
    /// Reply: the network serialization (opaque value).
    pub const NETWORK: &str = "network";
    /// Reply: the status code (int64); absent on success.
    pub const ERROR: &str = "error";
    /// Reply to `acquire`: addresses of the network (our addition).
    pub const NETWORK_INFO: &str = "network_info";
    /// Reply to `status`: the status report (our addition).
    pub const STATUS: &str = "status";
}

/// Command names.
pub mod commands {
    /// Acquire a network (upstream).
    pub const ACQUIRE: &str = "acquire";
    /// Drop this connection's hold on a network (our addition).
    pub const RELEASE: &str = "release";
    /// Describe the broker (our addition).
    pub const STATUS: &str = "status";
}

#[cfg(test)]
mod vector_tests {
    //! Checks this crate against the shared vectors in
    //! `testdata/protocol-vectors.json`, which the C and Go clients use too.
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        let text = include_str!("../../../testdata/protocol-vectors.json");
        serde_json::from_str(text).expect("vectors file is valid JSON")
    }

    #[test]
    fn status_table_matches() {
        let v = vectors();
        for s in v["statuses"].as_array().expect("statuses") {
            let status = Status(s["code"].as_i64().expect("code"));
            assert_eq!(status.c_name(), s["c_name"].as_str());
            assert_eq!(
                status.description(),
                s["description"].as_str().expect("text")
            );
            assert_eq!(
                status.upstream_text(),
                s["strerror"].as_str().expect("strerror text")
            );
        }
    }

    #[test]
    fn request_vectors_that_fail_to_decode_give_4() {
        let v = vectors();
        for r in v["requests"].as_array().expect("requests") {
            let line = match r.get("raw") {
                Some(raw) => raw.as_str().expect("raw").as_bytes().to_vec(),
                None => serde_json::to_vec(&r["request"]).expect("encode"),
            };
            let decoded = json::parse_request(&line, MAX_NETWORK_NAME_LEN);
            if r["expect_error"] == 4 {
                assert!(decoded.is_err(), "vector {} should not decode", r["name"]);
            } else {
                assert!(decoded.is_ok(), "vector {} should decode", r["name"]);
            }
        }
    }
}
