//! IPv4 subnets and IPv6 prefixes.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4 subnet: a network address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Subnet {
    network: Ipv4Addr,
    prefix_len: u8,
}

/// The private IPv4 ranges of RFC 1918.
const PRIVATE_V4: [(Ipv4Addr, u8); 3] = [
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
];

impl Ipv4Subnet {
    /// The subnet of `addr` with `prefix_len` bits (host bits are cleared).
    /// `prefix_len` above 32 is treated as 32. Usable in constants.
    pub const fn new(addr: Ipv4Addr, prefix_len: u8) -> Self {
        let prefix_len = if prefix_len > 32 { 32 } else { prefix_len };
        Self {
            network: Ipv4Addr::from_bits(addr.to_bits() & mask_bits(prefix_len)),
            prefix_len,
        }
    }

    /// Reads a subnet from an address and a dotted netmask. The mask must be
    /// contiguous, and the address must be the network address or its first
    /// host (the gateway), as vmnet is given either.
    pub fn from_addr_mask(addr: Ipv4Addr, mask: Ipv4Addr) -> Result<Self, String> {
        let m = u32::from(mask);
        let prefix_len = m.leading_ones();
        if m.checked_shl(prefix_len).unwrap_or(0) != 0 {
            return Err(format!(
                "mask {mask} is not contiguous (ones followed by zeros, like 255.255.255.0)"
            ));
        }
        // leading_ones of a u32 is at most 32.
        let subnet = Self::new(addr, u8::try_from(prefix_len).unwrap_or(32));
        let offset = u32::from(addr) - u32::from(subnet.network);
        if offset > 1 {
            return Err(format!(
                "subnet {addr} is neither the network address ({}) nor the gateway ({}) of {}/{}",
                subnet.network,
                subnet.gateway(),
                subnet.network,
                prefix_len
            ));
        }
        Ok(subnet)
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask.
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask_bits(self.prefix_len))
    }

    /// The first host address, which vmnet gives the host side (gateway).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(1))
    }

    /// The last address of the subnet.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask_bits(self.prefix_len))
    }

    /// Whether `addr` is inside the subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask_bits(self.prefix_len) == u32::from(self.network)
    }

    /// Whether `addr` can be given to a guest: inside the subnet and not the
    /// network address, the gateway or the broadcast address.
    pub fn is_guest_address(&self, addr: Ipv4Addr) -> bool {
        self.contains(addr)
            && addr != self.network
            && addr != self.gateway()
            && addr != self.broadcast()
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &Self) -> bool {
        let shorter = self.prefix_len.min(other.prefix_len);
        let m = mask_bits(shorter);
        u32::from(self.network) & m == u32::from(other.network) & m
    }

    /// Whether the whole subnet lies in a private range (RFC 1918).
    pub fn is_private(&self) -> bool {
        PRIVATE_V4
            .iter()
            .any(|&(net, len)| self.prefix_len >= len && Self::new(net, len).contains(self.network))
    }
}

impl fmt::Display for Ipv4Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

const fn mask_bits(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n if n >= 32 => u32::MAX,
        n => u32::MAX << (32 - n as u32),
    }
}

/// An IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Prefix {
    prefix: Ipv6Addr,
    len: u8,
}

impl Ipv6Prefix {
    /// The prefix of `addr` with `len` bits (host bits cleared; `len` above
    /// 128 is treated as 128).
    pub fn new(addr: Ipv6Addr, len: u8) -> Self {
        let len = len.min(128);
        Self {
            prefix: Ipv6Addr::from(u128::from(addr) & mask_bits_v6(len)),
            len,
        }
    }

    /// The prefix address.
    pub fn prefix(&self) -> Ipv6Addr {
        self.prefix
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether the prefix has length zero (covers everything).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `addr` is inside the prefix.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        u128::from(addr) & mask_bits_v6(self.len) == u128::from(self.prefix)
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Self) -> bool {
        let m = mask_bits_v6(self.len.min(other.len));
        u128::from(self.prefix) & m == u128::from(other.prefix) & m
    }

    /// Whether the prefix is a unique local address in fd00::/8.
    pub fn is_ula(&self) -> bool {
        self.len >= 8 && self.prefix.octets()[0] == 0xfd
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.prefix, self.len)
    }
}

fn mask_bits_v6(len: u8) -> u128 {
    match len {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n.min(128))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn subnet_from_network_or_gateway() {
        let a = Ipv4Subnet::from_addr_mask(v4("192.168.105.0"), v4("255.255.255.0")).unwrap();
        let b = Ipv4Subnet::from_addr_mask(v4("192.168.105.1"), v4("255.255.255.0")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "192.168.105.0/24");
        assert_eq!(a.gateway(), v4("192.168.105.1"));
        assert_eq!(a.broadcast(), v4("192.168.105.255"));
        assert_eq!(a.mask(), v4("255.255.255.0"));
        let e = Ipv4Subnet::from_addr_mask(v4("192.168.105.7"), v4("255.255.255.0")).unwrap_err();
        assert!(e.contains("neither the network address"), "{e}");
    }

    #[test]
    fn non_contiguous_masks_are_refused() {
        let e = Ipv4Subnet::from_addr_mask(v4("10.0.0.0"), v4("255.0.255.0")).unwrap_err();
        assert!(e.contains("not contiguous"), "{e}");
        assert!(Ipv4Subnet::from_addr_mask(v4("10.0.0.0"), v4("255.255.255.252")).is_ok());
    }

    #[test]
    fn overlap_and_privacy() {
        let s24 = Ipv4Subnet::new(v4("192.168.64.0"), 24);
        let s16 = Ipv4Subnet::new(v4("192.168.0.0"), 16);
        let other = Ipv4Subnet::new(v4("192.168.65.0"), 24);
        assert!(s24.overlaps(&s16) && s16.overlaps(&s24));
        assert!(!s24.overlaps(&other));
        assert!(s24.is_private() && s16.is_private());
        assert!(Ipv4Subnet::new(v4("172.20.0.0"), 16).is_private());
        assert!(!Ipv4Subnet::new(v4("172.0.0.0"), 8).is_private());
        assert!(!Ipv4Subnet::new(v4("8.8.8.0"), 24).is_private());
        assert!(s24.is_guest_address(v4("192.168.64.2")));
        assert!(!s24.is_guest_address(v4("192.168.64.1")));
        assert!(!s24.is_guest_address(v4("192.168.64.255")));
    }

    #[test]
    fn ipv6_prefixes() {
        let p = Ipv6Prefix::new("fd12:3456:789a:1::5".parse().unwrap(), 64);
        assert_eq!(p.to_string(), "fd12:3456:789a:1::/64");
        assert!(p.is_ula());
        assert!(p.contains("fd12:3456:789a:1::99".parse().unwrap()));
        assert!(!Ipv6Prefix::new("2001:db8::".parse().unwrap(), 64).is_ula());
        let q = Ipv6Prefix::new("fd12:3456:789a::".parse().unwrap(), 48);
        assert!(p.overlaps(&q));
    }
}
