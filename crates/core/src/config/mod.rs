//! Network configuration: the options of one network, their validation, the
//! built-in networks, and the [`ConfigSource`] trait through which the broker
//! looks networks up.
//!
//! A configuration is parsed from a JSON object or a property list into a
//! generic value first, and then checked option by option, so that one pass
//! reports every problem of a file, each naming its key. The options and
//! their rules are documented in `docs/configuration.md`.

mod ip;
mod parse;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use vmnet_broker_proto::text::{escape, escape_path};
use vmnet_broker_proto::{Mode, NetworkName};

pub use ip::{Ipv4Subnet, Ipv6Prefix};
pub use parse::{KNOWN_KEYS, ParseFailure, parse_json, parse_plist, parse_value};

/// The smallest MTU accepted (the IPv6 minimum link MTU).
pub const MIN_MTU: u32 = 1280;
/// The largest MTU accepted.
pub const MAX_MTU: u32 = 65535;

/// Everything the broker needs to create one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// `shared` (NAT) or `host` (host-only).
    pub mode: Mode,
    /// Free text shown by `status`.
    pub description: Option<String>,
    /// A static IPv4 subnet; `None` lets vmnet choose a free /24.
    pub ipv4: Option<Ipv4Subnet>,
    /// A static IPv6 prefix (a ULA); `None` lets vmnet choose one.
    pub ipv6: Option<Ipv6Prefix>,
    /// The host interface NAT goes out through (shared mode only).
    pub external_interface: Option<String>,
    /// IPv4 NAT (default on).
    pub nat44: bool,
    /// IPv6 NAT (default on).
    pub nat66: bool,
    /// vmnet's DHCP server (default on).
    pub dhcp: bool,
    /// vmnet's DNS proxy (default on).
    pub dns_proxy: bool,
    /// IPv6 router advertisements (default on).
    pub router_advertisement: bool,
    /// Link MTU; `None` keeps vmnet's default (1500).
    pub mtu: Option<u32>,
    /// Port forwarding from the host into guests (shared mode only).
    pub port_forwarding_rules: Vec<PortForward>,
    /// Fixed DHCP leases (need a static subnet).
    pub dhcp_reservations: Vec<DhcpReservation>,
    /// Users allowed to acquire the network; `None` means everyone.
    pub allowed_users: Option<Vec<Principal>>,
    /// Groups whose members may acquire the network; `None` means everyone.
    pub allowed_groups: Option<Vec<Principal>>,
    /// Ask vmnet for the subnet and prefix the network had last time
    /// (default on). A static subnet or prefix always wins.
    pub remember_subnet: bool,
    /// Create the network when the broker starts and keep it while the
    /// broker runs, held or not (default off).
    pub persistent: bool,
}

impl NetworkConfig {
    /// A configuration with every option at its default: dynamic subnet and
    /// prefix, every service on, no rules, open to everyone.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            description: None,
            ipv4: None,
            ipv6: None,
            external_interface: None,
            nat44: true,
            nat66: true,
            dhcp: true,
            dns_proxy: true,
            router_advertisement: true,
            mtu: None,
            port_forwarding_rules: Vec::new(),
            dhcp_reservations: Vec::new(),
            allowed_users: None,
            allowed_groups: None,
            remember_subnet: true,
            persistent: false,
        }
    }

    /// Whether any access restriction is configured.
    pub fn is_restricted(&self) -> bool {
        self.allowed_users.is_some() || self.allowed_groups.is_some()
    }
}

/// Transport protocol of a port forwarding rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (`IPPROTO_TCP`).
    Tcp,
    /// UDP (`IPPROTO_UDP`).
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// Traffic to `external_port` on the host is sent to
/// `internal_address:internal_port` in the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    /// `tcp` or `udp`.
    pub protocol: Protocol,
    /// Port on the host side.
    pub external_port: u16,
    /// Guest address (IPv4 or IPv6).
    pub internal_address: IpAddr,
    /// Port on the guest side.
    pub internal_port: u16,
}

/// A fixed DHCP lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpReservation {
    /// The guest's MAC address.
    pub mac_address: [u8; 6],
    /// The address it always gets.
    pub ip_address: Ipv4Addr,
}

/// A user or group in an access list: a name or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Numeric uid or gid.
    Id(u32),
    /// User or group name, resolved when a client acquires the network.
    Name(String),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// One problem in a configuration, tied to the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path (`mtu`, `port_forwarding_rules[1].internal_port`), or
    /// empty for the document as a whole.
    pub key: String,
    /// What is wrong, and what is expected instead.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", escape(&self.key), self.message)
        }
    }
}

/// Why the configuration of one network cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {message}", escape_path(.path))]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// The file could not be read for a reason that may pass (the process
    /// ran out of descriptors or memory, an I/O error): the broker answers
    /// INTERNAL_ERROR, never NOT_FOUND, which clients take as permanent.
    #[error("{}: cannot read now: {message}", escape_path(.path))]
    Unavailable {
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// The file is not valid JSON or property list.
    #[error("{}: not a valid {format} document: {message}", escape_path(.path))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// `JSON` or `property list`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// The document parsed, but some options are wrong.
    #[error("{}: {}", escape_path(.path), join_problems(.problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// More than one file defines the network.
    #[error("network {name:?} is defined by more than one file ({}); keep only one", join_paths(.paths))]
    Duplicate {
        /// The network.
        name: String,
        /// The files.
        paths: Vec<PathBuf>,
    },
    /// The file (or its directory) may be changed by users other than its
    /// owner, or is owned by an untrusted user.
    #[error("{}: ignored because {reason}", escape_path(.path))]
    Insecure {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with its ownership or mode, and how to fix it.
        reason: String,
    },
}

impl ConfigError {
    /// Whether the failure may pass by itself (see
    /// [`ConfigError::Unavailable`]), as opposed to a configuration that is
    /// wrong until someone changes it.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

fn join_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Paths for a message, escaped and comma-separated.
pub fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| escape_path(p).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The answer of [`ConfigSource::lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The network is configured and valid.
    Found(NetworkConfig),
    /// No such network.
    NotFound,
    /// The network is configured, but its configuration is unusable (or
    /// cannot be looked at). The broker answers NOT_FOUND and logs the
    /// reason, or INTERNAL_ERROR when [`ConfigError::is_transient`].
    Broken(ConfigError),
}

/// Where the broker finds network configurations.
///
/// The daemon's `ConfigDir` reads a drop-in directory; [`StaticConfig`]
/// holds configurations in memory (tests, embedding). A lookup happens each time a
/// network is about to be created, so a changed file applies to the next
/// creation and never to a live network.
pub trait ConfigSource {
    /// The configuration of `name`.
    fn lookup(&self, name: &NetworkName) -> Lookup;

    /// Every network name the source defines (built-ins included), for a
    /// reload that starts persistent networks. The default knows none.
    fn configured_names(&self) -> Vec<NetworkName> {
        Vec::new()
    }
}

impl<T: ConfigSource + ?Sized> ConfigSource for &T {
    fn lookup(&self, name: &NetworkName) -> Lookup {
        (**self).lookup(name)
    }
    fn configured_names(&self) -> Vec<NetworkName> {
        (**self).configured_names()
    }
}

impl<T: ConfigSource + ?Sized> ConfigSource for Box<T> {
    fn lookup(&self, name: &NetworkName) -> Lookup {
        (**self).lookup(name)
    }
    fn configured_names(&self) -> Vec<NetworkName> {
        (**self).configured_names()
    }
}

/// The built-in networks: `shared` and `host`, each with a subnet chosen by
/// vmnet and every option at its default. A drop-in file with the same name
/// replaces a built-in.
pub fn builtin(name: &str) -> Option<NetworkConfig> {
    match name {
        "shared" => Some(NetworkConfig::new(Mode::Shared)),
        "host" => Some(NetworkConfig::new(Mode::Host)),
        _ => None,
    }
}

/// Names of the built-in networks.
pub const BUILTIN_NAMES: [&str; 2] = ["host", "shared"];

/// Configurations held in memory: the built-ins plus whatever is added.
#[derive(Debug, Clone, Default)]
pub struct StaticConfig {
    entries: std::collections::BTreeMap<String, Result<NetworkConfig, ConfigError>>,
    without_builtins: bool,
}

impl StaticConfig {
    /// The built-in networks only.
    pub fn new() -> Self {
        Self::default()
    }

    /// No networks at all, not even the built-ins.
    pub fn empty() -> Self {
        Self {
            without_builtins: true,
            ..Self::default()
        }
    }

    /// Adds (or replaces) a network.
    pub fn with(mut self, name: &str, config: NetworkConfig) -> Self {
        self.entries.insert(name.to_owned(), Ok(config));
        self
    }

    /// Adds a network whose configuration is broken.
    pub fn with_broken(mut self, name: &str, error: ConfigError) -> Self {
        self.entries.insert(name.to_owned(), Err(error));
        self
    }
}

impl ConfigSource for StaticConfig {
    fn lookup(&self, name: &NetworkName) -> Lookup {
        match self.entries.get(name.as_str()) {
            Some(Ok(config)) => Lookup::Found(config.clone()),
            Some(Err(error)) => Lookup::Broken(error.clone()),
            None if self.without_builtins => Lookup::NotFound,
            None => builtin(name.as_str()).map_or(Lookup::NotFound, Lookup::Found),
        }
    }

    fn configured_names(&self) -> Vec<NetworkName> {
        let builtins = BUILTIN_NAMES.iter().filter(|_| !self.without_builtins);
        let mut names: Vec<NetworkName> = self
            .entries
            .keys()
            .map(String::as_str)
            .chain(builtins.copied())
            .filter_map(|n| NetworkName::new(n).ok())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

impl StaticConfig {
    /// Removes a network (as if its file were deleted).
    pub fn without(mut self, name: &str) -> Self {
        self.entries.remove(name);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_shared_and_host_with_defaults() {
        let shared = builtin("shared").unwrap();
        assert_eq!(shared.mode, Mode::Shared);
        assert!(shared.ipv4.is_none() && shared.nat44 && shared.dhcp);
        assert_eq!(builtin("host").unwrap().mode, Mode::Host);
        assert!(builtin("other").is_none());
    }

    #[test]
    fn static_config_lookup() {
        let name = |s| NetworkName::new(s).unwrap();
        let cfg = StaticConfig::new().with("lab", NetworkConfig::new(Mode::Host));
        assert!(matches!(cfg.lookup(&name("lab")), Lookup::Found(_)));
        assert!(matches!(cfg.lookup(&name("shared")), Lookup::Found(_)));
        assert_eq!(cfg.lookup(&name("nope")), Lookup::NotFound);
        assert_eq!(
            StaticConfig::empty().lookup(&name("shared")),
            Lookup::NotFound
        );
    }
}
