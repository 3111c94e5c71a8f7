//! Decoding of the macOS routing table dump (`sysctl` with
//! `{CTL_NET, PF_ROUTE, 0, 0, NET_RT_DUMP, 0}`), kept free of system calls
//! so that it is unit-tested on every platform.
//!
//! The dump is a sequence of routing messages: a `struct rt_msghdr`
//! (`<net/route.h>`) followed by the socket addresses named by its
//! `rtm_addrs` bits, in bit order (`RTA_DST`, `RTA_GATEWAY`,
//! `RTA_NETMASK`, ...), each padded to a multiple of 4 bytes. A netmask
//! may be shortened: its `sa_len` covers only its non-zero bytes, and its
//! family may be unset, so it is read with the destination's family.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `sizeof(struct rt_msghdr)` on macOS (both architectures).
pub(super) const RT_MSGHDR_LEN: usize = 92;
/// `RTM_VERSION`.
pub(super) const RTM_VERSION: u8 = 5;
/// `RTF_HOST`: a host route, without a netmask.
pub(super) const RTF_HOST: u32 = 0x4;
/// `RTF_LLINFO`: a neighbour cache entry (ARP or NDP), not a route.
pub(super) const RTF_LLINFO: u32 = 0x400;
/// `RTF_WASCLONED`: a host route cloned from a network route.
pub(super) const RTF_WASCLONED: u32 = 0x20000;
/// `RTA_DST`.
const RTA_DST: u32 = 0x1;
/// `RTA_NETMASK`.
const RTA_NETMASK: u32 = 0x4;
/// `RTAX_MAX`: number of address slots.
const RTAX_MAX: u32 = 8;
/// `AF_INET`.
pub(super) const AF_INET: u8 = 2;
/// `AF_INET6` on macOS.
pub(super) const AF_INET6: u8 = 30;

/// One route: destination, prefix length, interface index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DumpedRoute {
    /// Destination network address.
    pub dest: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// `rtm_index`, the interface.
    pub if_index: u16,
}

/// Decodes a dump. Messages that are not IPv4 or IPv6 routes, neighbour
/// entries and cloned host routes are skipped; a truncated message ends
/// the decoding.
pub(super) fn parse(mut buf: &[u8]) -> Vec<DumpedRoute> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let msglen = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        if msglen < RT_MSGHDR_LEN || msglen > buf.len() {
            break;
        }
        let msg = &buf[..msglen];
        buf = &buf[msglen..];
        if msg[2] != RTM_VERSION {
            continue;
        }
        let if_index = u16::from_ne_bytes([msg[4], msg[5]]);
        let flags = u32::from_ne_bytes([msg[8], msg[9], msg[10], msg[11]]);
        let addrs = u32::from_ne_bytes([msg[12], msg[13], msg[14], msg[15]]);
        if flags & (RTF_LLINFO | RTF_WASCLONED) != 0 {
            continue;
        }
        if let Some(route) = parse_addrs(&msg[RT_MSGHDR_LEN..], addrs, flags, if_index) {
            out.push(route);
        }
    }
    out
}

fn parse_addrs(mut rest: &[u8], addrs: u32, flags: u32, if_index: u16) -> Option<DumpedRoute> {
    let mut dest: Option<IpAddr> = None;
    let mut mask: Option<&[u8]> = None;
    for bit in 0..RTAX_MAX {
        if addrs & (1 << bit) == 0 {
            continue;
        }
        let sa_len = usize::from(*rest.first()?);
        let padded = if sa_len == 0 { 4 } else { (sa_len + 3) & !3 };
        let sa = rest.get(..sa_len)?;
        match 1 << bit {
            RTA_DST => dest = Some(sockaddr_ip(sa)?),
            RTA_NETMASK => mask = Some(sa),
            _ => {}
        }
        rest = rest.get(padded..).unwrap_or(&[]);
    }
    let dest = dest?;
    let (offset, full) = match dest {
        IpAddr::V4(_) => (4, 32u8),
        IpAddr::V6(_) => (8, 128u8),
    };
    let prefix_len = match mask {
        _ if flags & RTF_HOST != 0 => full,
        None => full,
        Some(sa) => {
            let bytes = sa.get(offset..).unwrap_or(&[]);
            let mut ones = 0u32;
            for &b in bytes.iter().take(usize::from(full / 8)) {
                ones += b.leading_ones();
                if b != 0xff {
                    break;
                }
            }
            u8::try_from(ones).unwrap_or(u8::MAX)
        }
    };
    Some(DumpedRoute {
        dest,
        prefix_len,
        if_index,
    })
}

/// The address of a `sockaddr_in` or `sockaddr_in6`, or `None` for other
/// families (link-layer gateways and the like).
fn sockaddr_ip(sa: &[u8]) -> Option<IpAddr> {
    match *sa.get(1)? {
        AF_INET => {
            let b: [u8; 4] = sa.get(4..8)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        AF_INET6 => {
            let b: [u8; 16] = sa.get(8..24)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sin(a: [u8; 4]) -> Vec<u8> {
        let mut v = vec![16, AF_INET, 0, 0];
        v.extend(a);
        v.extend([0; 8]);
        v
    }

    fn sin6(a: Ipv6Addr) -> Vec<u8> {
        let mut v = vec![28, AF_INET6, 0, 0, 0, 0, 0, 0];
        v.extend(a.octets());
        v.extend([0; 4]);
        v
    }

    /// A shortened netmask as the kernel sends it: only the bytes up to the
    /// last non-zero one, family unset, padded to 4.
    fn short_mask(offset: usize, bytes: &[u8]) -> Vec<u8> {
        let len = if bytes.iter().all(|&b| b == 0) {
            0
        } else {
            offset + bytes.iter().rposition(|&b| b != 0).unwrap_or(0) + 1
        };
        let mut v = vec![u8::try_from(len).unwrap(), 0];
        v.resize(len.max(2), 0);
        for (i, &b) in bytes.iter().enumerate() {
            if offset + i < len {
                v[offset + i] = b;
            }
        }
        v.resize(if len == 0 { 4 } else { (len + 3) & !3 }, 0);
        v
    }

    fn msg(if_index: u16, flags: u32, addrs: u32, sockaddrs: &[Vec<u8>]) -> Vec<u8> {
        let mut m = vec![0u8; RT_MSGHDR_LEN];
        m[2] = RTM_VERSION;
        m[3] = 4; // RTM_GET
        m[4..6].copy_from_slice(&if_index.to_ne_bytes());
        m[8..12].copy_from_slice(&flags.to_ne_bytes());
        m[12..16].copy_from_slice(&addrs.to_ne_bytes());
        for sa in sockaddrs {
            m.extend(sa);
        }
        let len = u16::try_from(m.len()).unwrap();
        m[0..2].copy_from_slice(&len.to_ne_bytes());
        m
    }

    const DST_GW_MASK: u32 = 0x1 | 0x2 | 0x4;

    #[test]
    fn decodes_ipv4_and_ipv6_routes() {
        let link_gw = vec![
            20, 18, 4, 0, 6, 3, 6, 0, b'e', b'n', b'0', 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut dump = Vec::new();
        // default via 192.168.1.1 on en0: mask of length 0.
        dump.extend(msg(
            4,
            0x1 | 0x2,
            DST_GW_MASK,
            &[sin([0; 4]), sin([192, 168, 1, 1]), short_mask(4, &[0; 4])],
        ));
        // 192.168.1.0/24 on en0, link gateway.
        dump.extend(msg(
            4,
            0x1,
            DST_GW_MASK,
            &[
                sin([192, 168, 1, 0]),
                link_gw.clone(),
                short_mask(4, &[255, 255, 255, 0]),
            ],
        ));
        // 10.0.0.0/8 on utun3.
        dump.extend(msg(
            9,
            0x1,
            DST_GW_MASK,
            &[
                sin([10, 0, 0, 0]),
                sin([10, 0, 0, 1]),
                short_mask(4, &[255, 0, 0, 0]),
            ],
        ));
        // An ARP entry: skipped.
        dump.extend(msg(
            4,
            0x1 | RTF_HOST | RTF_LLINFO,
            0x1 | 0x2,
            &[sin([192, 168, 1, 7]), link_gw.clone()],
        ));
        // A host route.
        dump.extend(msg(
            1,
            0x1 | RTF_HOST,
            0x1 | 0x2,
            &[sin([127, 0, 0, 1]), sin([127, 0, 0, 1])],
        ));
        // fd12:3456:789a:1::/64 on bridge100.
        let p: Ipv6Addr = "fd12:3456:789a:1::".parse().unwrap();
        let mask: Ipv6Addr = "ffff:ffff:ffff:ffff::".parse().unwrap();
        dump.extend(msg(
            12,
            0x1,
            DST_GW_MASK,
            &[sin6(p), link_gw, short_mask(8, &mask.octets())],
        ));
        let routes = parse(&dump);
        let show: Vec<(String, u8, u16)> = routes
            .iter()
            .map(|r| (r.dest.to_string(), r.prefix_len, r.if_index))
            .collect();
        assert_eq!(
            show,
            vec![
                ("0.0.0.0".into(), 0, 4),
                ("192.168.1.0".into(), 24, 4),
                ("10.0.0.0".into(), 8, 9),
                ("127.0.0.1".into(), 32, 1),
                ("fd12:3456:789a:1::".into(), 64, 12),
            ]
        );
    }

    #[test]
    fn truncated_or_foreign_input_is_not_a_crash() {
        let good = msg(
            4,
            0x1,
            DST_GW_MASK,
            &[
                sin([10, 1, 0, 0]),
                sin([10, 1, 0, 1]),
                short_mask(4, &[255, 255, 0, 0]),
            ],
        );
        for cut in 0..good.len() {
            let mut m = good[..cut].to_vec();
            // Claim the full length on a short buffer, and the short length.
            if m.len() >= 2 {
                let l = u16::try_from(m.len()).unwrap().to_ne_bytes();
                m[0] = l[0];
                m[1] = l[1];
            }
            let _ = parse(&m);
        }
        let mut wrong_version = good.clone();
        wrong_version[2] = 3;
        assert!(parse(&wrong_version).is_empty());
        assert_eq!(parse(&good).len(), 1);
        // Garbage of every length.
        let noise: Vec<u8> = (0..400u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        for n in 0..noise.len() {
            let _ = parse(&noise[..n]);
        }
    }
}
