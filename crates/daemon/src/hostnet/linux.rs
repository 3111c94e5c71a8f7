//! The routing table on Linux: an `RTM_GETROUTE` dump over a netlink
//! socket, every table and both address families.

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};
use vmnet_broker_core::hostnet::{HostNetwork, HostNetworksError};

/// Receive buffer: the kernel sends dump parts of at most 32 KiB.
const RECV_BUFFER: usize = 64 * 1024;

/// Every unicast and local route, with its output interface.
pub(super) fn routes() -> Result<Vec<HostNetwork>, HostNetworksError> {
    let err = |what: &str, e: &dyn std::fmt::Display| HostNetworksError(format!("{what}: {e}"));
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| err("netlink socket", &e))?;
    socket.bind_auto().map_err(|e| err("netlink bind", &e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| err("netlink connect", &e))?;

    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::GetRoute(RouteMessage::default())),
    );
    request.finalize();
    let mut buf = vec![0; request.buffer_len()];
    request.serialize(&mut buf);
    socket.send(&buf, 0).map_err(|e| err("netlink send", &e))?;

    let names = super::interface_names();
    let mut out = Vec::new();
    let mut recv = vec![0u8; RECV_BUFFER];
    loop {
        let size = socket
            .recv(&mut &mut recv[..], 0)
            .map_err(|e| err("netlink receive", &e))?;
        if size == 0 {
            return Err(HostNetworksError(
                "netlink: the route dump ended early".into(),
            ));
        }
        let mut offset = 0;
        while offset < size {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&recv[offset..size])
                .map_err(|e| err("netlink: cannot decode a route message", &e))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return Err(err("netlink: the route dump failed", &e));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)) => {
                    if let Some(h) = host_network(&route, &names) {
                        out.push(h);
                    }
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

fn host_network(
    route: &RouteMessage,
    names: &std::collections::HashMap<u32, String>,
) -> Option<HostNetwork> {
    if !matches!(route.header.kind, RouteType::Unicast | RouteType::Local) {
        return None;
    }
    let mut dest = None;
    let mut oif = None;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dest = Some((*a).into()),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => dest = Some((*a).into()),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::MultiPath(hops) if oif.is_none() => {
                oif = hops.first().map(|h| h.interface_index);
            }
            _ => {}
        }
    }
    // A route without a destination attribute is a default route.
    let dest = dest?;
    let ifname = oif.and_then(|i| names.get(&i)).map(String::as_str);
    Some(HostNetwork::route(
        ifname,
        dest,
        route.header.destination_prefix_length,
    ))
}
