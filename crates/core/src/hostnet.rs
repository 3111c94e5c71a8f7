//! The networks of the host, and whether a requested subnet collides with
//! them.
//!
//! A vmnet network whose subnet overlaps a network the host already uses
//! (the Wi-Fi's, a VPN's, a container bridge's) breaks the host's own
//! connectivity: the VM network's gateway takes over addresses the host
//! reaches through another interface. Before a network with a static subnet
//! is created, the broker compares it with every address and route of the
//! host's live interfaces and with a few ranges that macOS itself uses.
//!
//! The core never looks at the machine: it asks a [`HostNetworks`] source.
//! The daemon implements it with `getifaddrs` and the routing table;
//! [`StaticHostNetworks`] holds a fixed list for tests, and
//! [`NoHostNetworks`] reports nothing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::config::{Ipv4Subnet, Ipv6Prefix};
use vmnet_broker_proto::text::escape;

/// An IPv4 subnet or an IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpNet {
    /// IPv4.
    V4(Ipv4Subnet),
    /// IPv6.
    V6(Ipv6Prefix),
}

impl IpNet {
    /// The network of `addr` with `prefix_len` bits (host bits cleared).
    pub fn new(addr: IpAddr, prefix_len: u8) -> Self {
        match addr {
            IpAddr::V4(a) => Self::V4(Ipv4Subnet::new(a, prefix_len)),
            IpAddr::V6(a) => Self::V6(Ipv6Prefix::new(a, prefix_len)),
        }
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        match self {
            Self::V4(s) => s.prefix_len(),
            Self::V6(p) => p.len(),
        }
    }

    /// Whether the two networks share an address (never across families).
    pub fn overlaps(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::V4(a), Self::V4(b)) => a.overlaps(b),
            (Self::V6(a), Self::V6(b)) => a.overlaps(b),
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(s) => s.fmt(f),
            Self::V6(p) => p.fmt(f),
        }
    }
}

/// How the host uses a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostUse {
    /// An interface has this address (the network is the address's
    /// subnet).
    Address(IpAddr),
    /// The routing table sends this destination somewhere.
    Route,
}

/// One network the host uses: an interface address or a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostNetwork {
    /// The interface (`en0`, `utun3`), if the entry names one.
    pub interface: Option<String>,
    /// The network.
    pub net: IpNet,
    /// Whether it comes from an address or a route.
    pub kind: HostUse,
}

impl HostNetwork {
    /// An address `addr/prefix_len` on `interface`.
    pub fn address(interface: &str, addr: IpAddr, prefix_len: u8) -> Self {
        Self {
            interface: Some(interface.to_owned()),
            net: IpNet::new(addr, prefix_len),
            kind: HostUse::Address(addr),
        }
    }

    /// A route to `dest/prefix_len`, through `interface` if known.
    pub fn route(interface: Option<&str>, dest: IpAddr, prefix_len: u8) -> Self {
        Self {
            interface: interface.map(str::to_owned),
            net: IpNet::new(dest, prefix_len),
            kind: HostUse::Route,
        }
    }

    /// Whether the entry says nothing about any particular subnet: a
    /// default route (prefix length 0) overlaps everything and is not a
    /// collision.
    pub fn is_default_route(&self) -> bool {
        self.kind == HostUse::Route && self.net.prefix_len() == 0
    }
}

impl fmt::Display for HostNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.interface) {
            (HostUse::Address(addr), Some(ifname)) => write!(
                f,
                "interface {} (address {addr}/{})",
                escape(ifname),
                self.net.prefix_len()
            ),
            (HostUse::Address(addr), None) => {
                write!(f, "the host address {addr}/{}", self.net.prefix_len())
            }
            (HostUse::Route, Some(ifname)) => {
                write!(f, "interface {} (route to {})", escape(ifname), self.net)
            }
            (HostUse::Route, None) => write!(f, "the host route to {}", self.net),
        }
    }
}

/// Why the host's networks could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot list the host's networks: {0}")]
pub struct HostNetworksError(pub String);

/// Where the broker learns which networks the host uses.
///
/// Implementations list every address of every interface that is up and
/// every route of the routing table, IPv4 and IPv6. The list is taken fresh
/// for each check: interfaces come and go (VPNs, Wi-Fi).
pub trait HostNetworks {
    /// The host's networks now.
    fn host_networks(&self) -> Result<Vec<HostNetwork>, HostNetworksError>;
}

impl<T: HostNetworks + ?Sized> HostNetworks for &T {
    fn host_networks(&self) -> Result<Vec<HostNetwork>, HostNetworksError> {
        (**self).host_networks()
    }
}

impl<T: HostNetworks + ?Sized> HostNetworks for Box<T> {
    fn host_networks(&self) -> Result<Vec<HostNetwork>, HostNetworksError> {
        (**self).host_networks()
    }
}

/// A host without networks: nothing ever collides with it (only the
/// reserved ranges do).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHostNetworks;

impl HostNetworks for NoHostNetworks {
    fn host_networks(&self) -> Result<Vec<HostNetwork>, HostNetworksError> {
        Ok(Vec::new())
    }
}

/// A fixed list of host networks (tests, or a driver that took a snapshot).
#[derive(Debug, Clone, Default)]
pub struct StaticHostNetworks(pub Vec<HostNetwork>);

impl HostNetworks for StaticHostNetworks {
    fn host_networks(&self) -> Result<Vec<HostNetwork>, HostNetworksError> {
        Ok(self.0.clone())
    }
}

/// A range a static subnet must not use although no interface shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedRange {
    /// The range.
    pub subnet: Ipv4Subnet,
    /// Who uses it, for messages.
    pub reason: &'static str,
}

/// The ranges macOS uses on its own: Internet Sharing's, and the one where
/// vmnet puts its first dynamic network (a static network there would
/// collide with `shared`).
pub const RESERVED_RANGES: [ReservedRange; 2] = [
    ReservedRange {
        subnet: Ipv4Subnet::new(Ipv4Addr::new(192, 168, 2, 0), 24),
        reason: "used by macOS Internet Sharing",
    },
    ReservedRange {
        subnet: Ipv4Subnet::new(Ipv4Addr::new(192, 168, 64, 0), 24),
        reason: "where vmnet puts its first dynamic network (the built-in shared network)",
    },
];

/// What a requested subnet or prefix collides with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collision {
    /// A network of the host.
    Host {
        /// The requested subnet or prefix.
        requested: IpNet,
        /// The host's network in the way.
        host: HostNetwork,
    },
    /// A reserved range.
    Reserved {
        /// The requested subnet.
        requested: Ipv4Subnet,
        /// The range.
        range: ReservedRange,
    },
}

impl fmt::Display for Collision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host { requested, host } => {
                let what = match requested {
                    IpNet::V4(_) => "subnet",
                    IpNet::V6(_) => "IPv6 prefix",
                };
                write!(f, "{what} {requested} overlaps {host}")
            }
            Self::Reserved { requested, range } => write!(
                f,
                "subnet {requested} overlaps {}, {}",
                range.subnet, range.reason
            ),
        }
    }
}

/// Every collision of one request, with a free /24 to use instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct Collisions {
    /// What collides, host networks first, in the order found.
    pub collisions: Vec<Collision>,
    /// A private /24 that collides with nothing known, if any is left.
    pub suggestion: Option<Ipv4Subnet>,
}

impl Collisions {
    fn describe(&self) -> String {
        let mut text = self
            .collisions
            .iter()
            .map(Collision::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let is_v6 = |c: &Collision| {
            matches!(
                c,
                Collision::Host {
                    requested: IpNet::V6(_),
                    ..
                }
            )
        };
        if self.collisions.iter().any(|c| !is_v6(c)) {
            match self.suggestion {
                Some(s) => text.push_str(&format!(
                    "; {s} is free (subnet {}, mask {})",
                    s.network(),
                    s.mask()
                )),
                None => text.push_str("; no free /24 was found in 192.168.0.0/16"),
            }
        }
        if self.collisions.iter().any(is_v6) {
            text.push_str("; for IPv6 choose another prefix inside fd00::/8");
        }
        text
    }
}

/// What a requested network is compared with.
#[derive(Debug, Clone, Copy)]
pub struct CollisionCheck<'a> {
    /// The host's networks (from a [`HostNetworks`] source).
    pub host: &'a [HostNetwork],
    /// Ranges refused even though no interface shows them
    /// ([`RESERVED_RANGES`], or fewer).
    pub reserved: &'a [ReservedRange],
    /// The subnets and prefixes of the broker's own live networks. On macOS
    /// they appear as host interfaces (vmnet's bridges); host entries that
    /// overlap them are not the host's and are skipped. Collisions between
    /// the broker's own networks are the backend's to report.
    pub own: &'a [IpNet],
}

impl CollisionCheck<'_> {
    /// Host entries that count: not default routes, not the broker's own.
    pub(crate) fn relevant(&self) -> impl Iterator<Item = &HostNetwork> {
        self.host
            .iter()
            .filter(|h| !h.is_default_route() && !self.own.iter().any(|own| own.overlaps(&h.net)))
    }

    /// Checks a requested static subnet and IPv6 prefix (either may be
    /// absent: vmnet then chooses, and nothing is checked for it).
    pub fn check(
        &self,
        ipv4: Option<Ipv4Subnet>,
        ipv6: Option<Ipv6Prefix>,
    ) -> Result<(), Collisions> {
        let mut collisions = Vec::new();
        let requested: Vec<IpNet> = ipv4
            .map(IpNet::V4)
            .into_iter()
            .chain(ipv6.map(IpNet::V6))
            .collect();
        for req in &requested {
            for host in self.relevant() {
                if req.overlaps(&host.net) {
                    collisions.push(Collision::Host {
                        requested: *req,
                        host: host.clone(),
                    });
                }
            }
        }
        // An interface's address and the route the kernel derives from it
        // say the same thing: name each network of an interface once, by
        // its address when there is one.
        collisions.sort_by_key(|c| match c {
            Collision::Host { host, .. } => u8::from(host.kind == HostUse::Route),
            Collision::Reserved { .. } => 2,
        });
        let mut seen: Vec<(IpNet, IpNet, Option<String>)> = Vec::new();
        collisions.retain(|c| match c {
            Collision::Host { requested, host } => {
                let key = (*requested, host.net, host.interface.clone());
                let fresh = !seen.contains(&key);
                seen.push(key);
                fresh
            }
            Collision::Reserved { .. } => true,
        });
        if let Some(subnet) = ipv4 {
            for range in self.reserved {
                if subnet.overlaps(&range.subnet) {
                    collisions.push(Collision::Reserved {
                        requested: subnet,
                        range: *range,
                    });
                }
            }
        }
        if collisions.is_empty() {
            return Ok(());
        }
        Err(Collisions {
            collisions,
            suggestion: self.free_slash24(),
        })
    }

    /// The first private /24 in 192.168.0.0/16 (from 192.168.64.0 up, then
    /// below) that overlaps no host network, reserved range or own network.
    pub fn free_slash24(&self) -> Option<Ipv4Subnet> {
        (64..=255u8)
            .chain(0..64)
            .map(|third| IpNet::V4(Ipv4Subnet::new(Ipv4Addr::new(192, 168, third, 0), 24)))
            .find(|cand| {
                !self.relevant().any(|h| h.net.overlaps(cand))
                    && !self.own.iter().any(|o| o.overlaps(cand))
                    && !self
                        .reserved
                        .iter()
                        .any(|r| IpNet::V4(r.subnet).overlaps(cand))
            })
            .and_then(|n| match n {
                IpNet::V4(s) => Some(s),
                IpNet::V6(_) => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str, len: u8) -> Ipv4Subnet {
        Ipv4Subnet::new(s.parse().unwrap(), len)
    }

    fn v6(s: &str, len: u8) -> Ipv6Prefix {
        Ipv6Prefix::new(s.parse().unwrap(), len)
    }

    fn host() -> Vec<HostNetwork> {
        vec![
            HostNetwork::address("lo0", "127.0.0.1".parse().unwrap(), 8),
            // The route before the address it comes from: the address is
            // still the one named.
            HostNetwork::route(Some("en0"), "192.168.1.0".parse().unwrap(), 24),
            HostNetwork::address("en0", "192.168.1.23".parse().unwrap(), 24),
            HostNetwork::route(Some("en0"), "0.0.0.0".parse().unwrap(), 0),
            HostNetwork::route(Some("utun3"), "10.20.0.0".parse().unwrap(), 16),
            HostNetwork::address("en0", "fd7a:1:2:3::5".parse().unwrap(), 64),
            HostNetwork::route(None, "::".parse().unwrap(), 0),
        ]
    }

    fn check(host: &[HostNetwork], own: &[IpNet]) -> CollisionCheck<'static> {
        let host: &'static [HostNetwork] = Box::leak(host.to_vec().into_boxed_slice());
        let own: &'static [IpNet] = Box::leak(own.to_vec().into_boxed_slice());
        CollisionCheck {
            host,
            reserved: &RESERVED_RANGES,
            own,
        }
    }

    #[test]
    fn a_free_subnet_passes() {
        let c = check(&host(), &[]);
        assert_eq!(c.check(Some(v4("192.168.105.0", 24)), None), Ok(()));
        assert_eq!(c.check(None, Some(v6("fd00:1::", 64))), Ok(()));
        assert_eq!(c.check(None, None), Ok(()));
    }

    #[test]
    fn an_interface_subnet_is_named_once_with_a_suggestion() {
        let c = check(&host(), &[]);
        let err = c.check(Some(v4("192.168.1.0", 24)), None).unwrap_err();
        assert_eq!(err.collisions.len(), 1, "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "subnet 192.168.1.0/24 overlaps interface en0 (address 192.168.1.23/24)"
            ),
            "{text}"
        );
        assert_eq!(err.suggestion, Some(v4("192.168.65.0", 24)));
        assert!(
            text.contains("192.168.65.0/24 is free (subnet 192.168.65.0, mask 255.255.255.0)"),
            "{text}"
        );
    }

    #[test]
    fn routes_count_and_default_routes_do_not() {
        let c = check(&host(), &[]);
        let err = c.check(Some(v4("10.20.30.0", 24)), None).unwrap_err();
        assert!(
            err.to_string()
                .contains("overlaps interface utun3 (route to 10.20.0.0/16)"),
            "{err}"
        );
        // A wider request covering a host subnet collides too.
        let err = c.check(Some(v4("192.168.0.0", 16)), None).unwrap_err();
        assert!(err.to_string().contains("en0"), "{err}");
        // Only default routes cover 172.16.0.0/12 here.
        assert_eq!(c.check(Some(v4("172.16.5.0", 24)), None), Ok(()));
    }

    #[test]
    fn reserved_ranges() {
        let c = check(&[], &[]);
        let err = c.check(Some(v4("192.168.2.0", 24)), None).unwrap_err();
        assert!(err.to_string().contains("Internet Sharing"), "{err}");
        let err = c.check(Some(v4("192.168.64.0", 24)), None).unwrap_err();
        assert!(err.to_string().contains("first dynamic network"), "{err}");
        assert_eq!(err.suggestion, Some(v4("192.168.65.0", 24)));
        let none = CollisionCheck {
            host: &[],
            reserved: &[],
            own: &[],
        };
        assert_eq!(none.check(Some(v4("192.168.64.0", 24)), None), Ok(()));
    }

    #[test]
    fn ipv6_prefixes_collide_with_host_prefixes() {
        let c = check(&host(), &[]);
        let err = c.check(None, Some(v6("fd7a:1:2::", 48))).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("IPv6 prefix fd7a:1:2::/48 overlaps interface en0"),
            "{text}"
        );
        assert!(text.contains("choose another prefix"), "{text}");
        assert!(!text.contains("is free"), "{text}");
    }

    #[test]
    fn the_brokers_own_networks_are_not_host_networks() {
        // vmnet's bridge for a live network of ours shows up as an interface.
        let mut h = host();
        h.push(HostNetwork::address(
            "bridge100",
            "192.168.105.1".parse().unwrap(),
            24,
        ));
        let own = [IpNet::V4(v4("192.168.105.0", 24))];
        assert!(
            check(&h, &[])
                .check(Some(v4("192.168.105.0", 24)), None)
                .is_err()
        );
        assert_eq!(
            check(&h, &own).check(Some(v4("192.168.105.0", 24)), None),
            Ok(())
        );
        // The suggestion skips our own networks too.
        let own = [IpNet::V4(v4("192.168.65.0", 24))];
        let err = check(&h, &own)
            .check(Some(v4("192.168.1.0", 24)), None)
            .unwrap_err();
        assert_eq!(err.suggestion, Some(v4("192.168.66.0", 24)));
    }

    #[test]
    fn every_collision_is_listed() {
        let mut h = host();
        h.push(HostNetwork::address(
            "bridge0",
            "192.168.2.1".parse().unwrap(),
            24,
        ));
        let err = check(&h, &[])
            .check(Some(v4("192.168.0.0", 16)), Some(v6("fd7a:1:2:3::", 64)))
            .unwrap_err();
        let text = err.to_string();
        for needle in [
            "en0 (address 192.168.1.23/24)",
            "bridge0",
            "Internet Sharing",
            "first dynamic",
            "IPv6 prefix fd7a",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn no_suggestion_when_everything_is_taken() {
        let h = vec![HostNetwork::route(None, "192.168.0.0".parse().unwrap(), 16)];
        let err = check(&h, &[])
            .check(Some(v4("192.168.7.0", 24)), None)
            .unwrap_err();
        assert_eq!(err.suggestion, None);
        assert!(err.to_string().contains("no free /24"), "{err}");
        assert!(
            err.to_string().contains("the host route to 192.168.0.0/16"),
            "{err}"
        );
    }
}
