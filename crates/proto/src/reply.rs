//! Reply contents: network info and the status report (our additions), and
//! the client-side rule for reading an `acquire` reply.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::Status;

/// The operating mode of a vmnet network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// NAT to the outside world through the host (`VMNET_SHARED_MODE`).
    Shared,
    /// Host-only: guests and host reach each other, nothing else
    /// (`VMNET_HOST_MODE`).
    Host,
}

impl Mode {
    /// The configuration spelling: `shared` or `host`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Host => "host",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Addresses of a network, sent as `network_info` with a successful
/// `acquire`. Clients that do not know the key ignore it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// Operating mode.
    pub mode: Mode,
    /// IPv4 network address (for example `192.168.64.0`).
    pub subnet: Ipv4Addr,
    /// IPv4 netmask (for example `255.255.255.0`).
    pub mask: Ipv4Addr,
    /// IPv6 prefix (a ULA, for example `fd9c:1a2b:3c4d:1::`).
    pub ipv6_prefix: Ipv6Addr,
    /// IPv6 prefix length in bits.
    pub ipv6_prefix_length: u8,
}

impl NetworkInfo {
    /// The IPv4 prefix length implied by [`NetworkInfo::mask`].
    pub fn prefix_len(&self) -> u32 {
        u32::from(self.mask).leading_ones()
    }
}

/// Applies the upstream client rule to an `acquire` reply: a non-zero
/// `error` wins; otherwise the reply must carry `network`.
///
/// `error` is the reply's `error` value if it is an integer (a value of
/// another type counts as absent, as `xpc_dictionary_get_int64` returns 0 for
/// it); `has_network` says whether the reply has a `network` key.
pub fn decode_acquire_reply(error: Option<i64>, has_network: bool) -> Status {
    match error {
        Some(code) if code != 0 => Status(code),
        _ if has_network => Status::SUCCESS,
        _ => Status::INVALID_REPLY,
    }
}

/// The broker's answer to `status` (key `status` of the reply).
///
/// This shape is stable: fields may be added, none removed or changed. It is
/// documented in `docs/protocol.md` and is what `vmnet-broker status --json`
/// prints. The code says *client* for a connection to the broker; three
/// JSON keys keep the word of the first protocol version, *peer*
/// (`peers`, `peer_count`, `hidden_peers`), so that existing clients keep
/// decoding the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Broker version (`CARGO_PKG_VERSION` of the daemon).
    pub version: String,
    /// Process id of the broker.
    pub pid: u32,
    /// Backend in use: `vmnet` or `simulated`.
    pub backend: String,
    /// Seconds since the broker started.
    pub uptime_seconds: f64,
    /// Seconds a network without holders lives before it is removed.
    pub network_idle_timeout_seconds: f64,
    /// Seconds without clients after which the broker exits; `null` if it
    /// never exits by itself.
    pub exit_idle_timeout_seconds: Option<f64>,
    /// The configuration directory the broker reads (added in 0.1; absent
    /// from reports of brokers that do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<String>,
    /// The broker's log level filter, as given (added in 0.1; absent from
    /// reports of brokers that do not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Every live network, sorted by name.
    pub networks: Vec<NetworkStatus>,
    /// Persistent networks that are not live because their creation
    /// failed, each waiting for its next attempt, sorted by name (added in
    /// 0.1; absent when there are none and from reports of brokers that do
    /// not say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_networks: Vec<WaitingNetwork>,
    /// Connected clients the caller may see, sorted by id.
    #[serde(rename = "peers")]
    pub clients: Vec<ClientStatus>,
    /// Number of connected clients, seen or not.
    #[serde(rename = "peer_count")]
    pub client_count: usize,
    /// Number of connected clients not listed in `clients` (other users'
    /// clients, hidden from callers that are not root).
    #[serde(rename = "hidden_peers")]
    pub hidden_clients: usize,
    /// Counters since start.
    pub counters: Counters,
}

/// One live network in a [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// Network name.
    pub name: String,
    /// Free-form description from the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Addresses and mode.
    #[serde(flatten)]
    pub info: NetworkInfo,
    /// Number of clients holding the network.
    pub holders: usize,
    /// Seconds since the network was created.
    pub age_seconds: f64,
    /// Seconds since the last holder left; `null` while held.
    pub idle_for_seconds: Option<f64>,
    /// Seconds until the network is removed; `null` while held (and for a
    /// persistent network).
    pub removal_in_seconds: Option<f64>,
    /// Where the subnet came from: `static` (configured), `remembered` (the
    /// one it had last time), `chosen` (by vmnet, nothing remembered) or
    /// `changed` (by vmnet, because the remembered one could not be had).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_origin: Option<String>,
    /// The network is persistent: kept without holders.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persistent: bool,
    /// Its configuration changed while it was held; the change applies
    /// when it is idle.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub configuration_pending: bool,
}

/// A persistent network in a [`StatusReport`] that is not live: its
/// creation failed and is tried again later (1 s after the first failure,
/// doubling up to 60 s between attempts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitingNetwork {
    /// Network name.
    pub name: String,
    /// Attempts to create it that failed so far.
    pub failed_attempts: u32,
    /// Why the last attempt failed.
    pub last_error: String,
    /// Seconds until the next attempt (0 when it is due).
    pub retry_in_seconds: f64,
}

/// One connected client in a [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientStatus {
    /// Broker-assigned client id, unique for the broker's lifetime.
    pub id: u64,
    /// Process id of the client (as seen when it connected).
    pub pid: i32,
    /// Effective user id of the client.
    pub uid: u32,
    /// Effective group id of the client.
    pub gid: u32,
    /// Networks the client holds, sorted.
    pub networks: Vec<String>,
    /// Seconds since the client connected.
    pub connected_seconds: f64,
}

/// Counters in a [`StatusReport`], all since the broker started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Clients that connected.
    pub connects: u64,
    /// Clients that disconnected.
    pub disconnects: u64,
    /// Requests received (valid or not).
    pub requests: u64,
    /// Successful `acquire` requests.
    pub acquires: u64,
    /// Holds dropped by `release`.
    pub releases: u64,
    /// Networks created.
    pub creations: u64,
    /// Networks removed.
    pub removals: u64,
    /// Failed requests, by status slug (`not_found`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Refused `acquire` requests, by reason (`not_found`,
    /// `broken_configuration`, `not_allowed`, `client_limit`,
    /// `broker_limit`, `backend_failure`): finer than `failures`, where
    /// several reasons share one status. Absent from older brokers.
    #[serde(default)]
    pub acquire_refusals: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_reply_rule_matches_upstream() {
        assert_eq!(decode_acquire_reply(None, true), Status::SUCCESS);
        assert_eq!(decode_acquire_reply(Some(0), true), Status::SUCCESS);
        assert_eq!(decode_acquire_reply(Some(5), true), Status::NOT_FOUND);
        assert_eq!(decode_acquire_reply(Some(999), false), Status(999));
        assert_eq!(decode_acquire_reply(None, false), Status::INVALID_REPLY);
        assert_eq!(decode_acquire_reply(Some(0), false), Status::INVALID_REPLY);
    }

    #[test]
    fn network_info_json_shape() {
        let info = NetworkInfo {
            mode: Mode::Shared,
            subnet: Ipv4Addr::new(192, 168, 64, 0),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            ipv6_prefix: "fd00:1:2:3::".parse().unwrap(),
            ipv6_prefix_length: 64,
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"mode": "shared", "subnet": "192.168.64.0",
                "mask": "255.255.255.0", "ipv6_prefix": "fd00:1:2:3::",
                "ipv6_prefix_length": 64})
        );
        assert_eq!(info.prefix_len(), 24);
    }
}
