//! A simulated vmnet.
//!
//! It follows what is known of the macOS 26 network API (see
//! `docs/development.md`): a dynamic network gets the lowest free /24 at or
//! above 192.168.64.0, then below it, never 192.168.2.0/24 (Internet
//! Sharing's); a static subnet that overlaps a live network fails to create;
//! a network without a configured IPv6 prefix gets a random ULA /64; the
//! serialization is an opaque value naming the network. Given a
//! host-network source, dynamic choices also avoid the host's networks.
//! With the same seed and the same calls it gives the same results.
//!
//! Failure injection is a feature of the simulator, not a test hook: a
//! [`FailurePlan`] given to [`SimBackend::set_failures`] makes creations fail
//! with [`BackendError::Injected`]. The daemon exposes it as
//! `serve --sim-fail-create NAME` so that end-to-end tests and users can see
//! how clients handle `CREATE_FAILURE`. Only the simulated backend has it;
//! the vmnet backend never returns `Injected`. Changing the plan of a broker
//! that is already running (through `Broker::backend_mut`) and
//! `SimBackend::fail_next` are test hooks behind the `test-util` feature.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::json;
use vmnet_broker_proto::{NetworkInfo, NetworkName};

use super::{Backend, BackendError};
use crate::config::{Ipv4Subnet, Ipv6Prefix, NetworkConfig, Protocol};
use crate::hostnet::{CollisionCheck, HostNetwork, HostNetworks, IpNet, RESERVED_RANGES};

/// Handle of a simulated network.
#[derive(Debug, PartialEq, Eq)]
pub struct SimNetwork {
    id: u64,
}

#[derive(Debug, Clone)]
struct Live {
    name: String,
    info: NetworkInfo,
    ipv4: Ipv4Subnet,
    ipv6: Ipv6Prefix,
    ports: Vec<(Protocol, u16)>,
}

/// Failures to inject into [`SimBackend::create`].
#[derive(Debug, Clone, Default)]
pub struct FailurePlan {
    /// The next this-many creations fail.
    pub next: u32,
    /// Creations of these networks always fail.
    pub names: Vec<String>,
    /// Every creation fails.
    pub all: bool,
}

/// Where the simulation learns the host's networks.
struct HostSource(Box<dyn HostNetworks + Send>);

impl std::fmt::Debug for HostSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostSource")
    }
}

/// The simulated backend.
#[derive(Debug)]
pub struct SimBackend {
    rng: fastrand::Rng,
    next_id: u64,
    live: BTreeMap<u64, Live>,
    failures: FailurePlan,
    created: u64,
    destroyed: u64,
    host: Option<HostSource>,
}

impl SimBackend {
    /// A simulation whose random choices (IPv6 prefixes) follow `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            next_id: 1,
            live: BTreeMap::new(),
            failures: FailurePlan::default(),
            created: 0,
            destroyed: 0,
            host: None,
        }
    }

    /// Makes dynamic choices avoid the networks the host uses, as vmnet
    /// does: a dynamic subnet or prefix never overlaps an interface address
    /// or a route of `source` (default routes aside). Without a source the
    /// simulation behaves as if the host had no networks.
    pub fn set_host_networks(&mut self, source: impl HostNetworks + Send + 'static) {
        self.host = Some(HostSource(Box::new(source)));
    }

    /// The host's networks, for the dynamic choices (none without a
    /// source, or when they cannot be listed).
    fn host_networks(&self) -> Vec<HostNetwork> {
        let Some(HostSource(source)) = &self.host else {
            return Vec::new();
        };
        source.host_networks().unwrap_or_else(|e| {
            tracing::warn!("{e}; dynamic subnets are chosen without looking at the host");
            Vec::new()
        })
    }

    /// Replaces the failure plan.
    pub fn set_failures(&mut self, plan: FailurePlan) {
        self.failures = plan;
    }

    /// Makes the next `n` creations fail (feature `test-util`).
    #[cfg(any(test, feature = "test-util"))]
    pub fn fail_next(&mut self, n: u32) {
        self.failures.next = n;
    }

    /// Number of live networks.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// Networks created and destroyed so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.created, self.destroyed)
    }

    fn injected_failure(&mut self, name: &NetworkName) -> Option<BackendError> {
        if self.failures.all {
            return Some(BackendError::Injected("every creation fails".into()));
        }
        if self.failures.names.iter().any(|n| n == name.as_str()) {
            return Some(BackendError::Injected(format!(
                "creation of {name:?} is set to fail"
            )));
        }
        if self.failures.next > 0 {
            self.failures.next -= 1;
            return Some(BackendError::Injected("next creation set to fail".into()));
        }
        None
    }

    fn random_ula(&mut self, host: &[IpNet]) -> Ipv6Prefix {
        // The host's prefixes are avoided for a few draws only: a host that
        // routes all of fd00::/8 must not stop the simulation.
        let mut host_draws = 64;
        loop {
            let avoid_host = host_draws > 0;
            host_draws -= usize::from(avoid_host);
            let mut octets = [0u8; 16];
            octets[0] = 0xfd;
            for b in &mut octets[1..8] {
                *b = self.rng.u8(..);
            }
            let p = Ipv6Prefix::new(Ipv6Addr::from(octets), 64);
            let taken = self.live.values().any(|l| l.ipv6.overlaps(&p));
            let on_host = avoid_host && host.iter().any(|h| h.overlaps(&IpNet::V6(p)));
            if !taken && !on_host {
                return p;
            }
        }
    }
}

impl Backend for SimBackend {
    type Network = SimNetwork;
    type Serialization = serde_json::Value;

    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn create(
        &mut self,
        name: &NetworkName,
        config: &NetworkConfig,
    ) -> Result<SimNetwork, BackendError> {
        if let Some(e) = self.injected_failure(name) {
            return Err(e);
        }
        // Dynamic choices avoid the host's networks as the broker's
        // collision check sees them (not default routes, not the
        // simulation's own live networks, which a real host shows as
        // interfaces), and Internet Sharing's range.
        let host = if config.ipv4.is_none() || config.ipv6.is_none() {
            self.host_networks()
        } else {
            Vec::new()
        };
        let own: Vec<IpNet> = self
            .live
            .values()
            .flat_map(|l| [IpNet::V4(l.ipv4), IpNet::V6(l.ipv6)])
            .collect();
        let check = CollisionCheck {
            host: &host,
            reserved: &RESERVED_RANGES[..1],
            own: &own,
        };
        let ipv4 = match config.ipv4 {
            Some(subnet) => {
                if let Some(other) = self.live.values().find(|l| l.ipv4.overlaps(&subnet)) {
                    return Err(BackendError::SubnetInUse {
                        subnet: subnet.to_string(),
                        other: other.name.clone(),
                        other_subnet: other.ipv4.to_string(),
                    });
                }
                subnet
            }
            None => check.free_slash24().ok_or(BackendError::NoFreeSubnet)?,
        };
        let ipv6 = match config.ipv6 {
            Some(prefix) => {
                if let Some(other) = self.live.values().find(|l| l.ipv6.overlaps(&prefix)) {
                    return Err(BackendError::PrefixInUse {
                        prefix: prefix.to_string(),
                        other: other.name.clone(),
                    });
                }
                prefix
            }
            None => {
                let on_host: Vec<IpNet> = check.relevant().map(|h| h.net).collect();
                self.random_ula(&on_host)
            }
        };
        let ports: Vec<(Protocol, u16)> = config
            .port_forwarding_rules
            .iter()
            .map(|r| (r.protocol, r.external_port))
            .collect();
        for &(protocol, port) in &ports {
            if let Some(other) = self
                .live
                .values()
                .find(|l| l.ports.contains(&(protocol, port)))
            {
                return Err(BackendError::PortInUse {
                    protocol: protocol.as_str(),
                    port,
                    other: other.name.clone(),
                });
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.created += 1;
        let info = NetworkInfo {
            mode: config.mode,
            subnet: ipv4.network(),
            mask: ipv4.mask(),
            ipv6_prefix: ipv6.prefix(),
            ipv6_prefix_length: ipv6.len(),
        };
        self.live.insert(
            id,
            Live {
                name: name.to_string(),
                info,
                ipv4,
                ipv6,
                ports,
            },
        );
        Ok(SimNetwork { id })
    }

    fn info(&self, network: &SimNetwork) -> NetworkInfo {
        match self.live.get(&network.id) {
            Some(live) => live.info.clone(),
            // Unreachable for handles this backend made and has not destroyed.
            None => NetworkInfo {
                mode: vmnet_broker_proto::Mode::Host,
                subnet: Ipv4Addr::UNSPECIFIED,
                mask: Ipv4Addr::UNSPECIFIED,
                ipv6_prefix: Ipv6Addr::UNSPECIFIED,
                ipv6_prefix_length: 0,
            },
        }
    }

    fn serialization(&self, network: &SimNetwork) -> serde_json::Value {
        let live = self.live.get(&network.id);
        let mut inner = json!({ "id": network.id });
        if let (Some(live), Some(obj)) = (live, inner.as_object_mut()) {
            obj.insert("name".into(), live.name.clone().into());
            if let Ok(serde_json::Value::Object(info)) = serde_json::to_value(&live.info) {
                obj.extend(info);
            }
        }
        json!({ "simulated_vmnet_network": inner })
    }

    fn destroy(&mut self, network: SimNetwork) {
        if self.live.remove(&network.id).is_some() {
            self.destroyed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmnet_broker_proto::Mode;

    fn name(s: &str) -> NetworkName {
        NetworkName::new(s).unwrap()
    }

    fn static_cfg(subnet: &str, prefix: u8) -> NetworkConfig {
        let mut c = NetworkConfig::new(Mode::Host);
        c.ipv4 = Some(Ipv4Subnet::new(subnet.parse().unwrap(), prefix));
        c
    }

    #[test]
    fn dynamic_subnets_go_upward_from_64_and_reuse_freed_ones() {
        let mut b = SimBackend::new(1);
        let cfg = NetworkConfig::new(Mode::Shared);
        let n1 = b.create(&name("a"), &cfg).unwrap();
        let n2 = b.create(&name("b"), &cfg).unwrap();
        assert_eq!(b.info(&n1).subnet.to_string(), "192.168.64.0");
        assert_eq!(b.info(&n2).subnet.to_string(), "192.168.65.0");
        assert_eq!(b.info(&n1).mask.to_string(), "255.255.255.0");
        b.destroy(n1);
        let n3 = b.create(&name("c"), &cfg).unwrap();
        assert_eq!(b.info(&n3).subnet.to_string(), "192.168.64.0");
    }

    #[test]
    fn dynamic_allocation_skips_static_networks_and_internet_sharing() {
        let mut b = SimBackend::new(1);
        b.create(&name("s"), &static_cfg("192.168.64.0", 23))
            .unwrap();
        let n = b
            .create(&name("d"), &NetworkConfig::new(Mode::Host))
            .unwrap();
        assert_eq!(b.info(&n).subnet.to_string(), "192.168.66.0");
        // Fill everything from 64 up; the next ones come from below, not .2.
        let mut got = Vec::new();
        for i in 0..194 {
            match b.create(&name(&format!("n{i}")), &NetworkConfig::new(Mode::Host)) {
                Ok(n) => got.push(b.info(&n).subnet.octets()[2]),
                Err(e) => panic!("{e}"),
            }
        }
        // 67..=255 are 189 subnets; then 0, 1, 3, 4, 5.
        assert_eq!(&got[189..], &[0, 1, 3, 4, 5]);
        assert!(!got.contains(&2));
    }

    #[test]
    fn dynamic_choices_avoid_the_hosts_networks() {
        use crate::hostnet::{HostNetwork, StaticHostNetworks};
        let mut b = SimBackend::new(1);
        b.set_host_networks(StaticHostNetworks(vec![
            HostNetwork::route(Some("en0"), "0.0.0.0".parse().unwrap(), 0),
            HostNetwork::address("en0", "192.168.64.20".parse().unwrap(), 24),
            HostNetwork::route(Some("utun0"), "192.168.66.0".parse().unwrap(), 23),
            HostNetwork::route(None, "fd00::".parse().unwrap(), 8),
        ]));
        let cfg = NetworkConfig::new(Mode::Shared);
        let n = b.create(&name("a"), &cfg).unwrap();
        assert_eq!(b.info(&n).subnet.to_string(), "192.168.65.0");
        let n = b.create(&name("b"), &cfg).unwrap();
        assert_eq!(b.info(&n).subnet.to_string(), "192.168.68.0");
        // Every ULA is in fd00::/8, which the host routes: the prefix is
        // still a ULA (the simulation never gives up), so this checks only
        // that a host-free choice is made when one exists.
        let mut b = SimBackend::new(1);
        b.set_host_networks(StaticHostNetworks(vec![HostNetwork::route(
            None,
            "fd00::".parse().unwrap(),
            9,
        )]));
        for i in 0..20 {
            let n = b.create(&name(&format!("v{i}")), &cfg).unwrap();
            assert!(b.info(&n).ipv6_prefix.octets()[1] >= 0x80);
        }
    }

    #[test]
    fn exhaustion_is_an_error() {
        let mut b = SimBackend::new(1);
        b.create(&name("all"), &static_cfg("192.168.0.0", 16))
            .unwrap();
        assert_eq!(
            b.create(&name("x"), &NetworkConfig::new(Mode::Host)),
            Err(BackendError::NoFreeSubnet)
        );
    }

    #[test]
    fn overlapping_static_subnets_fail() {
        let mut b = SimBackend::new(1);
        b.create(&name("one"), &static_cfg("192.168.100.0", 24))
            .unwrap();
        let e = b
            .create(&name("two"), &static_cfg("192.168.100.0", 25))
            .unwrap_err();
        assert!(
            e.to_string().contains("overlaps the live network \"one\""),
            "{e}"
        );
        assert_eq!(b.live_count(), 1);
    }

    #[test]
    fn ipv6_prefixes_are_random_ulas_and_deterministic() {
        let make = |seed| {
            let mut b = SimBackend::new(seed);
            let n = b
                .create(&name("a"), &NetworkConfig::new(Mode::Host))
                .unwrap();
            b.info(&n)
        };
        let a = make(7);
        assert_eq!(a, make(7));
        assert_ne!(a.ipv6_prefix, make(8).ipv6_prefix);
        assert_eq!(a.ipv6_prefix.octets()[0], 0xfd);
        assert_eq!(a.ipv6_prefix_length, 64);
    }

    #[test]
    fn failure_injection() {
        let mut b = SimBackend::new(1);
        b.fail_next(1);
        let cfg = NetworkConfig::new(Mode::Host);
        assert!(matches!(
            b.create(&name("a"), &cfg),
            Err(BackendError::Injected(_))
        ));
        assert!(b.create(&name("a"), &cfg).is_ok());
        b.set_failures(FailurePlan {
            names: vec!["bad".into()],
            ..FailurePlan::default()
        });
        assert!(b.create(&name("bad"), &cfg).is_err());
        assert!(b.create(&name("good"), &cfg).is_ok());
    }

    #[test]
    fn serialization_names_the_network() {
        let mut b = SimBackend::new(1);
        let n = b
            .create(&name("lab"), &NetworkConfig::new(Mode::Shared))
            .unwrap();
        let s = b.serialization(&n);
        assert_eq!(s["simulated_vmnet_network"]["name"], "lab");
        assert_eq!(s["simulated_vmnet_network"]["subnet"], "192.168.64.0");
    }
}
