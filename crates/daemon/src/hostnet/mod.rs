//! The host's networks, as the collision check needs them: every address
//! of every interface that is up (`getifaddrs`) and every route of the
//! routing table (netlink on Linux, the `NET_RT_DUMP` routing sysctl on
//! macOS), IPv4 and IPv6.
//!
//! [`SystemHostNetworks`] is the daemon's implementation of the core's
//! [`HostNetworks`] source. It reads the machine afresh on each call.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
#[allow(unsafe_code, reason = "the routing-table sysctl has no safe wrapper")]
mod macos;
#[cfg(any(target_os = "macos", test))]
mod route_dump;

use std::net::IpAddr;

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use nix::sys::socket::SockaddrStorage;
use vmnet_broker_core::hostnet::{HostNetwork, HostNetworks, HostNetworksError};

/// The networks of the machine the broker runs on.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemHostNetworks;

impl HostNetworks for SystemHostNetworks {
    fn host_networks(&self) -> Result<Vec<HostNetwork>, HostNetworksError> {
        let mut all = interface_addresses()?;
        all.extend(routes()?);
        Ok(all)
    }
}

/// Addresses of the interfaces that are up.
fn interface_addresses() -> Result<Vec<HostNetwork>, HostNetworksError> {
    let addrs = getifaddrs().map_err(|e| HostNetworksError(format!("getifaddrs failed: {e}")))?;
    let mut out = Vec::new();
    for ifa in addrs {
        if !ifa.flags.contains(InterfaceFlags::IFF_UP) {
            continue;
        }
        let Some((addr, prefix_len)) = ifa.address.as_ref().and_then(ip_of).map(|ip| {
            let len = ifa
                .netmask
                .as_ref()
                .and_then(ip_of)
                .map_or(full_len(ip), mask_len);
            (ip, len)
        }) else {
            continue;
        };
        out.push(HostNetwork::address(&ifa.interface_name, addr, prefix_len));
    }
    Ok(out)
}

fn ip_of(addr: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

fn full_len(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The prefix length of a netmask (its leading ones).
fn mask_len(mask: IpAddr) -> u8 {
    match mask {
        IpAddr::V4(m) => u8::try_from(u32::from(m).leading_ones()).unwrap_or(32),
        IpAddr::V6(m) => u8::try_from(u128::from(m).leading_ones()).unwrap_or(128),
    }
}

#[cfg(target_os = "linux")]
fn routes() -> Result<Vec<HostNetwork>, HostNetworksError> {
    linux::routes()
}

#[cfg(target_os = "macos")]
fn routes() -> Result<Vec<HostNetwork>, HostNetworksError> {
    macos::routes()
}

/// Elsewhere only the interface addresses are known.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn routes() -> Result<Vec<HostNetwork>, HostNetworksError> {
    Ok(Vec::new())
}

/// Interface names by index, for routes that name an interface by index.
fn interface_names() -> std::collections::HashMap<u32, String> {
    nix::net::if_::if_nameindex()
        .map(|list| {
            list.iter()
                .map(|i| (i.index(), i.name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_len("255.255.255.0".parse().unwrap()), 24);
        assert_eq!(mask_len("0.0.0.0".parse().unwrap()), 0);
        assert_eq!(mask_len("ffff:ffff:ffff:ffff::".parse().unwrap()), 64);
    }

    /// Every machine has a loopback interface that is up, with 127.0.0.1/8,
    /// and a route for it.
    #[test]
    fn the_loopback_network_is_found() {
        let all = SystemHostNetworks.host_networks().unwrap();
        let lo = HostNetwork::address(
            if cfg!(target_os = "macos") {
                "lo0"
            } else {
                "lo"
            },
            "127.0.0.1".parse().unwrap(),
            8,
        );
        assert!(all.contains(&lo), "{all:?}");
        #[cfg(target_os = "linux")]
        assert!(
            all.iter()
                .any(|h| h.kind == vmnet_broker_core::hostnet::HostUse::Route
                    && h.net.to_string() == "127.0.0.0/8"
                    && h.interface.as_deref() == Some("lo")),
            "{all:?}"
        );
    }
}
