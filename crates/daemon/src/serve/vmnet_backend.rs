//! The real backend on macOS 26: networks made with the vmnet framework
//! (`vmnet_network_create`). Type-checked for macOS; run on Linux against
//! the fakes of crates/fake-apple (docs/macos-fakes.md); not run on macOS by us.

use tracing::warn;
use vmnet_broker_core::backend::{Backend, BackendError};
use vmnet_broker_core::config::{NetworkConfig, Protocol};
use vmnet_broker_macos::VmnetError;
use vmnet_broker_macos::vmnet::{PortProtocol, VmnetConfiguration, VmnetNetwork};
use vmnet_broker_macos::xpc::XpcObject;
use vmnet_broker_proto::{NetworkInfo, NetworkName};

use super::WireValue;

/// Creates networks with vmnet.
#[derive(Debug, Default)]
pub(super) struct VmnetBackend;

/// A live vmnet network with its serialization (made once, handed out as
/// retained copies) and addresses.
pub(super) struct LiveNetwork {
    serialization: XpcObject,
    info: NetworkInfo,
    /// Held only to keep the network alive: dropping it releases the
    /// network (and its subnet reservation) in vmnet.
    _network: VmnetNetwork,
}

fn vmnet(e: VmnetError) -> BackendError {
    BackendError::Vmnet(e.to_string())
}

/// Applies every option of `config` to a new vmnet configuration.
fn configuration(config: &NetworkConfig) -> Result<VmnetConfiguration, VmnetError> {
    let mut c = VmnetConfiguration::new(config.mode)?;
    if let Some(interface) = &config.external_interface {
        c.set_external_interface(interface)?;
    }
    if !config.nat44 {
        c.disable_nat44();
    }
    if !config.nat66 {
        c.disable_nat66();
    }
    if !config.dhcp {
        c.disable_dhcp();
    }
    if !config.dns_proxy {
        c.disable_dns_proxy();
    }
    if !config.router_advertisement {
        c.disable_router_advertisement();
    }
    if let Some(subnet) = config.ipv4 {
        // vmnet is given the first host address (the gateway) and the mask,
        // as two independent bindings do; Apple's documentation does not
        // say which address it expects (docs/macos.md).
        c.set_ipv4_subnet(subnet.gateway(), subnet.mask())?;
    }
    if let Some(prefix) = config.ipv6 {
        c.set_ipv6_prefix(prefix.prefix(), prefix.len())?;
    }
    if let Some(mtu) = config.mtu {
        c.set_mtu(mtu)?;
    }
    for r in &config.dhcp_reservations {
        c.add_dhcp_reservation(r.mac_address, r.ip_address)?;
    }
    for rule in &config.port_forwarding_rules {
        let protocol = match rule.protocol {
            Protocol::Tcp => PortProtocol::Tcp,
            Protocol::Udp => PortProtocol::Udp,
        };
        c.add_port_forwarding_rule(
            protocol,
            rule.external_port,
            rule.internal_address,
            rule.internal_port,
        )?;
    }
    Ok(c)
}

impl Backend for VmnetBackend {
    type Network = LiveNetwork;
    type Serialization = XpcObject;

    fn kind(&self) -> &'static str {
        "vmnet"
    }

    fn create(
        &mut self,
        name: &NetworkName,
        config: &NetworkConfig,
    ) -> Result<LiveNetwork, BackendError> {
        let c = configuration(config).map_err(vmnet)?;
        let network = VmnetNetwork::create(&c).map_err(vmnet)?;
        let serialization = match network.copy_serialization() {
            Ok(s) => s,
            Err(e) => {
                warn!(network = %name, "created, but cannot serialize; releasing it: {e}");
                return Err(vmnet(e));
            }
        };
        let info = network.info(config.mode);
        Ok(LiveNetwork {
            serialization,
            info,
            _network: network,
        })
    }

    fn info(&self, network: &LiveNetwork) -> NetworkInfo {
        network.info.clone()
    }

    fn serialization(&self, network: &LiveNetwork) -> XpcObject {
        network.serialization.clone()
    }

    fn destroy(&mut self, network: LiveNetwork) {
        // Dropping the reference releases the network and its subnet.
        drop(network);
    }
}

impl std::fmt::Debug for LiveNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveNetwork")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// On the development socket (`serve --socket` on macOS) a real
/// serialization cannot travel as JSON; clients get its description, which
/// is enough to test the broker's logic, not to attach a VM.
impl WireValue for XpcObject {
    fn to_wire(&self) -> std::borrow::Cow<'_, serde_json::Value> {
        std::borrow::Cow::Owned(serde_json::json!({ "xpc_serialization": self.description() }))
    }
}
