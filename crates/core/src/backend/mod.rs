//! Backends create and destroy networks.
//!
//! The broker calls its backend synchronously: `vmnet_network_create`
//! returns at once, and so does the simulation. The real vmnet backend lives
//! in the daemon's macOS driver; [`sim::SimBackend`] behaves like vmnet as
//! far as we know it and runs everywhere.

pub mod sim;

use vmnet_broker_proto::{NetworkInfo, NetworkName};

use crate::config::NetworkConfig;

/// Creates, describes and destroys networks.
pub trait Backend {
    /// A live network, owned by the broker until it hands it back to
    /// [`Backend::destroy`].
    type Network;
    /// What clients receive to attach to a network (an XPC object from
    /// `vmnet_network_copy_serialization`, or JSON for the simulation).
    type Serialization: Clone;

    /// A short name for logs and `status`: `vmnet` or `simulated`.
    fn kind(&self) -> &'static str;

    /// Creates a network from a validated configuration.
    fn create(
        &mut self,
        name: &NetworkName,
        config: &NetworkConfig,
    ) -> Result<Self::Network, BackendError>;

    /// The network's addresses as vmnet reports them.
    fn info(&self, network: &Self::Network) -> NetworkInfo;

    /// The serialization handed to clients.
    fn serialization(&self, network: &Self::Network) -> Self::Serialization;

    /// Releases the network. After this its subnet is free again.
    fn destroy(&mut self, network: Self::Network);
}

/// Why a backend could not create a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The requested IPv4 subnet overlaps a live network.
    #[error("subnet {subnet} overlaps the live network {other:?} ({other_subnet})")]
    SubnetInUse {
        /// The requested subnet.
        subnet: String,
        /// The live network in the way.
        other: String,
        /// Its subnet.
        other_subnet: String,
    },
    /// The requested IPv6 prefix overlaps a live network.
    #[error("IPv6 prefix {prefix} overlaps the live network {other:?}")]
    PrefixInUse {
        /// The requested prefix.
        prefix: String,
        /// The live network in the way.
        other: String,
    },
    /// A port forwarding rule uses a host port already forwarded.
    #[error("{protocol} port {port} is already forwarded by the live network {other:?}")]
    PortInUse {
        /// `tcp` or `udp`.
        protocol: &'static str,
        /// The host port.
        port: u16,
        /// The live network in the way.
        other: String,
    },
    /// No free subnet is left for a dynamic network.
    #[error("no free /24 subnet is left in 192.168.0.0/16")]
    NoFreeSubnet,
    /// vmnet refused; the message names the vmnet status.
    #[error("vmnet refused: {0}")]
    Vmnet(String),
    /// A failure injected through the simulator's
    /// [`FailurePlan`](sim::FailurePlan) (`serve --sim-fail-create`); never
    /// returned by vmnet.
    #[error("injected failure: {0}")]
    Injected(String),
}
