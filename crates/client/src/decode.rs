//! Reading replies, whatever the transport.
//!
//! The rules are the upstream client's: a reply that is not a dictionary is
//! invalid; a non-zero integer `error` wins; an `error` of another type
//! counts as absent (as `xpc_dictionary_get_int64` returns 0 for it); an
//! `acquire` reply without an error must carry `network`. A malformed
//! `network_info` is ignored, as an older client would ignore it.
//!
//! [`ReplyView`] is what a transport's reply must offer; the development
//! socket's JSON objects and (on macOS) XPC dictionaries implement it, so
//! both transports share this code, and the tests below, run against the
//! shared vectors, cover both.

use serde_json::Value;
use vmnet_broker_proto::text::escape;
use vmnet_broker_proto::{NetworkInfo, Status, StatusReport, commands, decode_acquire_reply, keys};

use crate::Error;

/// Read access to a reply.
pub(crate) trait ReplyView {
    /// The transport's form of an opaque value (the serialization).
    type Value;
    /// Whether the reply is a dictionary at all.
    fn is_dictionary(&self) -> bool;
    /// The integer under `key`; `None` if absent or of another type.
    fn int(&self, key: &str) -> Option<i64>;
    /// The value under `key`, whatever its type.
    fn value(&self, key: &str) -> Option<Self::Value>;
    /// The value under `key` as JSON, if it has a JSON form.
    fn json(&self, key: &str) -> Option<Value>;
}

impl ReplyView for Value {
    type Value = Self;
    fn is_dictionary(&self) -> bool {
        self.is_object()
    }
    fn int(&self, key: &str) -> Option<i64> {
        self.get(key)?.as_i64()
    }
    fn value(&self, key: &str) -> Option<Self> {
        self.get(key).cloned()
    }
    fn json(&self, key: &str) -> Option<Value> {
        self.get(key).cloned()
    }
}

/// A successful `acquire`, as read from the reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Acquired<S> {
    /// The opaque serialization.
    pub serialization: S,
    /// Addresses, when the broker sent them.
    pub info: Option<NetworkInfo>,
}

fn not_a_dictionary(command: &'static str) -> Error {
    Error::InvalidReply {
        command,
        reason: "reply is not a dictionary".into(),
    }
}

/// The error a reply carries, with the upstream rule.
fn broker_error<R: ReplyView>(
    reply: &R,
    command: &'static str,
    network: Option<&str>,
) -> Result<(), Error> {
    match reply.int(keys::ERROR) {
        Some(0) | None => Ok(()),
        Some(code) => Err(Error::Broker {
            command,
            network: network.map(str::to_owned),
            status: Status(code),
        }),
    }
}

/// Reads an `acquire` reply for `network`.
pub(crate) fn acquire<R: ReplyView>(reply: &R, network: &str) -> Result<Acquired<R::Value>, Error> {
    if !reply.is_dictionary() {
        return Err(not_a_dictionary(commands::ACQUIRE));
    }
    let serialization = reply.value(keys::NETWORK);
    let status = decode_acquire_reply(reply.int(keys::ERROR), serialization.is_some());
    match serialization {
        Some(serialization) if status.is_success() => Ok(Acquired {
            serialization,
            info: reply
                .json(keys::NETWORK_INFO)
                .and_then(|v| serde_json::from_value(v).ok()),
        }),
        _ if status == Status::INVALID_REPLY => Err(Error::InvalidReply {
            command: commands::ACQUIRE,
            reason: "reply has neither 'error' nor 'network'".into(),
        }),
        _ => Err(Error::Broker {
            command: commands::ACQUIRE,
            network: Some(network.to_owned()),
            status,
        }),
    }
}

/// Reads a `release` reply for `network`: any dictionary without an error.
pub(crate) fn release<R: ReplyView>(reply: &R, network: &str) -> Result<(), Error> {
    if !reply.is_dictionary() {
        return Err(not_a_dictionary(commands::RELEASE));
    }
    broker_error(reply, commands::RELEASE, Some(network))
}

/// Reads a `status` reply.
pub(crate) fn status<R: ReplyView>(reply: &R) -> Result<StatusReport, Error> {
    if !reply.is_dictionary() {
        return Err(not_a_dictionary(commands::STATUS));
    }
    broker_error(reply, commands::STATUS, None)?;
    let report = reply
        .json(keys::STATUS)
        .ok_or_else(|| Error::InvalidReply {
            command: commands::STATUS,
            reason: "reply has neither 'error' nor a readable 'status'".into(),
        })?;
    serde_json::from_value::<StatusReport>(report).map_err(|e| Error::InvalidReply {
        command: commands::STATUS,
        reason: format!("malformed 'status': {}", escape(&e.to_string())),
    })
}

#[cfg(test)]
mod tests {
    //! Reply decoding against the shared vectors in
    //! `testdata/protocol-vectors.json`.
    use super::*;
    use serde_json::json;
    use vmnet_broker_proto::Status;

    fn vectors() -> Value {
        let text = include_str!("../../../testdata/protocol-vectors.json");
        serde_json::from_str(text).unwrap_or(Value::Null)
    }

    #[test]
    fn every_reply_vector_gives_its_status() {
        let v = vectors();
        let replies = v["replies"].as_array().cloned().unwrap_or_default();
        assert!(replies.len() >= 10, "the vectors file lost its replies");
        for r in replies {
            let name = r["name"].as_str().unwrap_or("?");
            let want = Status(r["expect_status"].as_i64().unwrap_or(-1));
            match acquire(&r["reply"], "net") {
                Ok(got) => {
                    assert_eq!(want, Status::SUCCESS, "vector {name:?} decoded as success");
                    if let Some(info) = r.get("expect_info") {
                        let got = serde_json::to_value(got.info).unwrap_or(Value::Null);
                        assert_eq!(&got, info, "vector {name:?}");
                    }
                }
                Err(e) => assert_eq!(e.status(), want, "vector {name:?}: {e}"),
            }
        }
    }

    #[test]
    fn broker_errors_name_the_network() {
        let e = acquire(&json!({"error": 5}), "no-such-network").err();
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            text,
            "acquire \"no-such-network\": network not found (status 5)"
        );
    }

    #[test]
    fn release_replies() {
        assert!(release(&json!({}), "shared").is_ok());
        assert!(release(&json!({"error": 0}), "shared").is_ok());
        let e = release(&json!({"error": 5}), "shared").err();
        assert_eq!(e.map(|e| e.status()), Some(Status::NOT_FOUND));
        let e = release(&json!([]), "shared").err();
        assert_eq!(e.map(|e| e.status()), Some(Status::INVALID_REPLY));
    }

    #[test]
    fn status_replies() {
        let report = json!({
            "version": "0.1.0", "pid": 42, "backend": "simulated",
            "uptime_seconds": 1.5, "network_idle_timeout_seconds": 120.0,
            "exit_idle_timeout_seconds": null,
            "networks": [{"name": "shared", "mode": "shared",
                "subnet": "192.168.64.0", "mask": "255.255.255.0",
                "ipv6_prefix": "fd00::", "ipv6_prefix_length": 64,
                "holders": 2, "age_seconds": 1.0,
                "idle_for_seconds": null, "removal_in_seconds": null}],
            "peers": [], "peer_count": 2, "hidden_peers": 2,
            "counters": {"connects": 2, "disconnects": 0, "requests": 2,
                "acquires": 2, "releases": 0, "creations": 1, "removals": 0,
                "failures": {}},
            "a_field_from_a_newer_broker": true
        });
        let got = status(&json!({ "status": report })).ok();
        assert_eq!(got.as_ref().map(|r| r.networks[0].holders), Some(2));
        let e = status(&json!({"error": 7})).err();
        assert_eq!(e.map(|e| e.status()), Some(Status::INTERNAL_ERROR));
        let e = status(&json!({})).err();
        assert_eq!(e.map(|e| e.status()), Some(Status::INVALID_REPLY));
        let e = status(&json!({"status": {"version": 1}})).err();
        assert_eq!(e.map(|e| e.status()), Some(Status::INVALID_REPLY));
    }
}
