//! Requests, decoded with the upstream rules.

use std::borrow::Cow;

use crate::name::NetworkName;
use crate::{Status, commands, keys};

/// Read access to a request dictionary, whatever the transport.
///
/// Only string values matter for requests. Following the C implementation
/// (`xpc_dictionary_get_string` returns NULL for a non-string), a value of
/// another type must be reported as `None`, exactly like a missing key.
pub trait Dict {
    /// The string stored under `key`, or `None` if the key is absent or its
    /// value is not a string.
    fn string(&self, key: &str) -> Option<Cow<'_, str>>;
}

impl Dict for serde_json::Map<String, serde_json::Value> {
    fn string(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key)?.as_str().map(Cow::Borrowed)
    }
}

impl<K: std::borrow::Borrow<str> + Ord, V: AsRef<str>> Dict for std::collections::BTreeMap<K, V> {
    fn string(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).map(|v| Cow::Borrowed(v.as_ref()))
    }
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `acquire`: create the network on first use (or reuse it) and hold it
    /// for this connection. Holding it already is not an error.
    Acquire {
        /// The network to acquire.
        network: NetworkName,
    },
    /// `release` (our addition): drop this connection's hold. Allowed only
    /// for a network the connection holds.
    Release {
        /// The network to release.
        network: NetworkName,
    },
    /// `status` (our addition): describe the broker.
    Status,
}

/// Why a dictionary is not a valid request. Every variant maps to
/// [`Status::INVALID_REQUEST`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `command` is absent or not a string.
    #[error("request has no string 'command'")]
    MissingCommand,
    /// `command` names no command we know.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// `network_name` is absent or not a string.
    #[error("'{command}' request has no string 'network_name'")]
    MissingNetworkName {
        /// The command that needs a name.
        command: &'static str,
    },
}

impl RequestError {
    /// The status to answer with: always [`Status::INVALID_REQUEST`].
    pub fn status(&self) -> Status {
        Status::INVALID_REQUEST
    }
}

impl Request {
    /// Decodes a request dictionary. Unknown keys are ignored. A network name
    /// may be any string, as with the original broker: one outside the
    /// accepted form (checked with a length limit of `max_name_len` bytes,
    /// capped at [`crate::MAX_NETWORK_NAME_LEN`]) decodes with its
    /// [`NetworkName::problem`] set, and the broker answers "not found" for
    /// it. Only a missing or non-string `network_name` is an invalid request.
    pub fn decode(dict: &impl Dict, max_name_len: usize) -> Result<Self, RequestError> {
        let command = dict
            .string(keys::COMMAND)
            .ok_or(RequestError::MissingCommand)?;
        let name_for = |command: &'static str| -> Result<NetworkName, RequestError> {
            let raw = dict
                .string(keys::NETWORK_NAME)
                .ok_or(RequestError::MissingNetworkName { command })?;
            Ok(NetworkName::requested(&raw, max_name_len))
        };
        match &*command {
            commands::ACQUIRE => Ok(Self::Acquire {
                network: name_for(commands::ACQUIRE)?,
            }),
            commands::RELEASE => Ok(Self::Release {
                network: name_for(commands::RELEASE)?,
            }),
            commands::STATUS => Ok(Self::Status),
            other => Err(RequestError::UnknownCommand(truncate_for_log(other))),
        }
    }

    /// The command name of this request.
    pub fn command(&self) -> &'static str {
        match self {
            Self::Acquire { .. } => commands::ACQUIRE,
            Self::Release { .. } => commands::RELEASE,
            Self::Status => commands::STATUS,
        }
    }

    /// The network the request is about, if any.
    pub fn network(&self) -> Option<&NetworkName> {
        match self {
            Self::Acquire { network } | Self::Release { network } => Some(network),
            Self::Status => None,
        }
    }

    /// The request as a JSON object (the development transport's form).
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert(keys::COMMAND.into(), self.command().into());
        if let Some(network) = self.network() {
            map.insert(keys::NETWORK_NAME.into(), network.as_str().into());
        }
        map
    }
}

/// Keeps hostile strings short in error messages and logs.
fn truncate_for_log(s: &str) -> String {
    match crate::name::cut_for_log(s) {
        (kept, false) => kept.to_owned(),
        (kept, true) => format!("{kept}..."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(v: serde_json::Value) -> Result<Request, RequestError> {
        let serde_json::Value::Object(map) = v else {
            panic!("test input must be an object")
        };
        Request::decode(&map, 64)
    }

    #[test]
    fn acquire_release_status() {
        assert_eq!(
            decode(json!({"command": "acquire", "network_name": "shared"})),
            Ok(Request::Acquire {
                network: NetworkName::new("shared").unwrap()
            })
        );
        assert_eq!(
            decode(json!({"command": "release", "network_name": "host"})),
            Ok(Request::Release {
                network: NetworkName::new("host").unwrap()
            })
        );
        assert_eq!(decode(json!({"command": "status"})), Ok(Request::Status));
    }

    #[test]
    fn wrong_type_counts_as_missing() {
        assert_eq!(
            decode(json!({"command": 1, "network_name": "shared"})),
            Err(RequestError::MissingCommand)
        );
        assert_eq!(
            decode(json!({"command": "acquire", "network_name": ["shared"]})),
            Err(RequestError::MissingNetworkName { command: "acquire" })
        );
        assert_eq!(
            decode(json!({"command": "acquire"})),
            Err(RequestError::MissingNetworkName { command: "acquire" })
        );
    }

    #[test]
    fn unknown_commands_are_invalid() {
        let e = decode(json!({"command": "frobnicate"})).unwrap_err();
        assert_eq!(e, RequestError::UnknownCommand("frobnicate".into()));
        assert_eq!(e.status(), Status::INVALID_REQUEST);
    }

    #[test]
    fn any_string_is_a_name_and_its_problem_travels_with_it() {
        for raw in ["../x", "a b", "", ".hidden", &"x".repeat(65), "a\0b"] {
            for command in ["acquire", "release"] {
                let r = decode(json!({"command": command, "network_name": raw}))
                    .expect("any string decodes");
                let name = r.network().expect("a name");
                assert_eq!(name.as_str(), raw);
                assert!(name.problem().is_some(), "{raw:?}");
            }
        }
        let r = decode(json!({"command": "acquire", "network_name": "lima-0"})).unwrap();
        assert_eq!(r.network().and_then(|n| n.problem()), None);
    }

    #[test]
    fn unknown_keys_are_ignored() {
        assert!(decode(json!({"command": "status", "junk": {"a": [1, 2]}})).is_ok());
    }

    #[test]
    fn long_hostile_strings_are_truncated_in_errors() {
        let name = "é".repeat(10_000);
        let e = decode(json!({"command": name})).unwrap_err();
        assert!(e.to_string().len() < 200);
    }

    #[test]
    fn round_trips_through_json() {
        let r = Request::Acquire {
            network: NetworkName::new("n1").unwrap(),
        };
        assert_eq!(Request::decode(&r.to_json(), 64), Ok(r));
    }
}
