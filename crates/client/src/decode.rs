//! Reading replies of the development transport (JSON objects).
//!
//! The rules are the upstream client's: a non-zero integer `error` wins; an
//! `error` of another type counts as absent; an `acquire` reply without an
//! error must carry `network`.

use serde_json::Value;
use vmnet_broker_proto::json::{AcquireReply, reply_error};
use vmnet_broker_proto::{NetworkInfo, ReplyDecodeError, StatusReport, commands, keys};

use crate::Error;

/// A successful `acquire`, as read from the reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Acquired<S> {
    /// The opaque serialization.
    pub serialization: S,
    /// Addresses, when the broker sent them.
    pub info: Option<NetworkInfo>,
}

/// Reads an `acquire` reply for `network`.
pub(crate) fn acquire(reply: &Value, network: &str) -> Result<Acquired<Value>, Error> {
    match AcquireReply::decode(reply) {
        Ok(AcquireReply { network, info }) => Ok(Acquired {
            serialization: network,
            info,
        }),
        Err(ReplyDecodeError::Broker(status)) => Err(Error::Broker {
            command: commands::ACQUIRE,
            network: Some(network.to_owned()),
            status,
        }),
        Err(ReplyDecodeError::Invalid(reason)) => Err(Error::InvalidReply {
            command: commands::ACQUIRE,
            reason,
        }),
    }
}

/// Reads a `release` reply for `network`: any object without an error.
pub(crate) fn release(reply: &Value, network: &str) -> Result<(), Error> {
    let map = object(reply, commands::RELEASE)?;
    match reply_error(map) {
        Some(status) => Err(Error::Broker {
            command: commands::RELEASE,
            network: Some(network.to_owned()),
            status,
        }),
        None => Ok(()),
    }
}

/// Reads a `status` reply.
pub(crate) fn status(reply: &Value) -> Result<StatusReport, Error> {
    let map = object(reply, commands::STATUS)?;
    if let Some(status) = reply_error(map) {
        return Err(Error::Broker {
            command: commands::STATUS,
            network: None,
            status,
        });
    }
    let report = map.get(keys::STATUS).ok_or_else(|| Error::InvalidReply {
        command: commands::STATUS,
        reason: "reply has neither 'error' nor 'status'".into(),
    })?;
    serde_json::from_value::<StatusReport>(report.clone()).map_err(|e| Error::InvalidReply {
        command: commands::STATUS,
        reason: format!("malformed 'status': {e}"),
    })
}

fn object<'a>(
    reply: &'a Value,
    command: &'static str,
) -> Result<&'a serde_json::Map<String, Value>, Error> {
    reply.as_object().ok_or_else(|| Error::InvalidReply {
        command,
        reason: "reply is not an object".into(),
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
