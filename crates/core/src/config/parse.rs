//! Parsing and validating one network's configuration.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};
use vmnet_broker_proto::Mode;
use vmnet_broker_proto::text::escape;

use super::{
    DhcpReservation, Ipv4Subnet, Ipv6Prefix, MAX_MTU, MIN_MTU, NetworkConfig, PortForward,
    Principal, Problem, Protocol,
};

/// Every option a network configuration accepts.
pub const KNOWN_KEYS: &[&str] = &[
    "mode",
    "description",
    "subnet",
    "mask",
    "ipv6_prefix",
    "ipv6_prefix_length",
    "external_interface",
    "nat44",
    "nat66",
    "dhcp",
    "dns_proxy",
    "router_advertisement",
    "mtu",
    "port_forwarding_rules",
    "dhcp_reservations",
    "allowed_users",
    "allowed_groups",
    "remember_subnet",
    "persistent",
];

const RULE_KEYS: &[&str] = &[
    "protocol",
    "external_port",
    "internal_address",
    "internal_port",
];
const RESERVATION_KEYS: &[&str] = &["mac_address", "ip_address"];

/// Why a document could not be turned into a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseFailure {
    /// Not a JSON or property-list document at all.
    Syntax(String),
    /// A document with wrong options; every problem is listed.
    Invalid(Vec<Problem>),
}

impl ParseFailure {
    /// A parser's message, escaped: some parsers quote pieces of the
    /// document, which must not reach a log or terminal raw.
    fn syntax(e: impl std::fmt::Display) -> Self {
        Self::Syntax(escape(&e.to_string()).into_owned())
    }
}

/// Parses a JSON document.
pub fn parse_json(bytes: &[u8]) -> Result<NetworkConfig, ParseFailure> {
    let value: Value = serde_json::from_slice(bytes).map_err(ParseFailure::syntax)?;
    parse_value(&value).map_err(ParseFailure::Invalid)
}

/// Parses a property list, XML or binary (detected from the content).
pub fn parse_plist(bytes: &[u8]) -> Result<NetworkConfig, ParseFailure> {
    let value =
        plist::Value::from_reader(std::io::Cursor::new(bytes)).map_err(ParseFailure::syntax)?;
    let value = plist_to_json(&value, "").map_err(|p| ParseFailure::Invalid(vec![p]))?;
    parse_value(&value).map_err(ParseFailure::Invalid)
}

/// Converts a property-list value into the JSON model the validator reads.
/// Data, dates and UIDs have no meaning in a configuration and are refused.
fn plist_to_json(value: &plist::Value, key: &str) -> Result<Value, Problem> {
    Ok(match value {
        plist::Value::String(s) => Value::String(s.clone()),
        plist::Value::Boolean(b) => Value::Bool(*b),
        plist::Value::Integer(i) => match (i.as_signed(), i.as_unsigned()) {
            (Some(n), _) => Value::from(n),
            (None, Some(n)) => Value::from(n),
            (None, None) => return Err(Problem::new(key, "integer out of range")),
        },
        plist::Value::Real(r) => serde_json::Number::from_f64(*r)
            .map(Value::Number)
            .ok_or_else(|| Problem::new(key, "number is not finite"))?,
        plist::Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| plist_to_json(v, &format!("{key}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        plist::Value::Dictionary(dict) => {
            let mut map = Map::new();
            for (k, v) in dict {
                let path = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                map.insert(k.clone(), plist_to_json(v, &path)?);
            }
            Value::Object(map)
        }
        other => {
            let kind = match other {
                plist::Value::Data(_) => "<data>",
                plist::Value::Date(_) => "<date>",
                plist::Value::Uid(_) => "UID",
                _ => "this kind of",
            };
            return Err(Problem::new(
                key,
                format!("property-list {kind} values are not accepted here"),
            ));
        }
    })
}

/// Validates a parsed document (a JSON object, or a property-list dictionary
/// converted to one). Returns every problem found, not just the first.
pub fn parse_value(value: &Value) -> Result<NetworkConfig, Vec<Problem>> {
    let mut v = Validator::default();
    let Value::Object(map) = value else {
        return Err(vec![Problem::new(
            "",
            format!(
                "the document must be a dictionary of options, found {}",
                kind(value)
            ),
        )]);
    };
    v.unknown_keys(map, "", KNOWN_KEYS);

    let mode = match map.get("mode") {
        None => {
            v.problem("mode", "missing; set it to \"shared\" or \"host\"");
            None
        }
        Some(Value::String(s)) if s == "shared" => Some(Mode::Shared),
        Some(Value::String(s)) if s == "host" => Some(Mode::Host),
        Some(Value::String(s)) if s == "bridged" => {
            v.problem(
                "mode",
                "\"bridged\" is not offered by the vmnet network API; use \"shared\" or \"host\"",
            );
            None
        }
        Some(other) => {
            v.problem(
                "mode",
                format!("must be \"shared\" or \"host\", found {}", show(other)),
            );
            None
        }
    };
    let mut config = NetworkConfig::new(mode.unwrap_or(Mode::Shared));
    config.description = v.string(map, "description");

    config.ipv4 = v.ipv4_subnet(map);
    config.ipv6 = v.ipv6_prefix(map);

    if let Some(ifname) = v.string(map, "external_interface") {
        if ifname.is_empty()
            || ifname.len() > 15
            || !ifname.chars().all(|c| c.is_ascii_alphanumeric())
        {
            v.problem(
                "external_interface",
                format!("{ifname:?} is not an interface name (like \"en0\")"),
            );
        } else if mode == Some(Mode::Host) {
            v.problem(
                "external_interface",
                "only applies to shared mode; host-mode networks have no external side",
            );
        } else {
            config.external_interface = Some(ifname);
        }
    }

    for (key, slot) in [
        ("nat44", &mut config.nat44),
        ("nat66", &mut config.nat66),
        ("dhcp", &mut config.dhcp),
        ("dns_proxy", &mut config.dns_proxy),
        ("router_advertisement", &mut config.router_advertisement),
        ("remember_subnet", &mut config.remember_subnet),
        ("persistent", &mut config.persistent),
    ] {
        if let Some(b) = v.boolean(map, key) {
            *slot = b;
        }
    }

    if let Some(mtu) = v.integer(map, "mtu") {
        if let Some(mtu) = u32::try_from(mtu)
            .ok()
            .filter(|m| (MIN_MTU..=MAX_MTU).contains(m))
        {
            config.mtu = Some(mtu);
        } else {
            v.problem(
                "mtu",
                format!("{mtu} is out of range; use {MIN_MTU} to {MAX_MTU}"),
            );
        }
    }

    config.port_forwarding_rules = v.port_forwarding_rules(map, mode, config.ipv4, config.ipv6);
    config.dhcp_reservations = v.dhcp_reservations(map, config.ipv4);
    config.allowed_users = v.principals(map, "allowed_users");
    config.allowed_groups = v.principals(map, "allowed_groups");

    if v.problems.is_empty() {
        Ok(config)
    } else {
        Err(v.problems)
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(key, message));
    }

    fn unknown_keys(&mut self, map: &Map<String, Value>, prefix: &str, known: &[&str]) {
        for key in map.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let path = format!("{prefix}{key}");
            let message = match closest(key, known) {
                Some(guess) => format!("unknown option; did you mean {guess:?}?"),
                None => format!("unknown option; known options are: {}", known.join(", ")),
            };
            self.problem(path, message);
        }
    }

    fn string(&mut self, map: &Map<String, Value>, key: &str) -> Option<String> {
        match map.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.problem(key, format!("must be a string, found {}", kind(other)));
                None
            }
        }
    }

    fn boolean(&mut self, map: &Map<String, Value>, key: &str) -> Option<bool> {
        match map.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                self.problem(key, format!("must be true or false, found {}", show(other)));
                None
            }
        }
    }

    fn integer(&mut self, map: &Map<String, Value>, key: &str) -> Option<i128> {
        let value = map.get(key)?;
        let n = integer_of(value);
        if n.is_none() {
            self.problem(key, format!("must be an integer, found {}", show(value)));
        }
        n
    }

    fn ipv4_subnet(&mut self, map: &Map<String, Value>) -> Option<Ipv4Subnet> {
        let subnet = self.string(map, "subnet");
        let mask = self.string(map, "mask");
        let (subnet, mask) = match (subnet, mask) {
            (Some(s), Some(m)) => (s, m),
            (None, None) => return None,
            (Some(_), None) if !map.contains_key("mask") => {
                self.problem("mask", "missing; 'subnet' and 'mask' go together");
                return None;
            }
            (None, Some(_)) if !map.contains_key("subnet") => {
                self.problem("subnet", "missing; 'subnet' and 'mask' go together");
                return None;
            }
            _ => return None,
        };
        let addr = self.parse_v4("subnet", &subnet);
        let mask_addr = self.parse_v4("mask", &mask);
        let (addr, mask_addr) = (addr?, mask_addr?);
        let net = match Ipv4Subnet::from_addr_mask(addr, mask_addr) {
            Ok(net) => net,
            Err(message) => {
                self.problem(
                    if message.starts_with("mask") {
                        "mask"
                    } else {
                        "subnet"
                    },
                    message,
                );
                return None;
            }
        };
        if !net.is_private() {
            self.problem(
                "subnet",
                format!(
                    "{net} is not inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"
                ),
            );
            return None;
        }
        if net.prefix_len() > 29 {
            self.problem(
                "mask",
                format!(
                    "/{} leaves no room for guests; use /29 or shorter",
                    net.prefix_len()
                ),
            );
            return None;
        }
        Some(net)
    }

    fn ipv6_prefix(&mut self, map: &Map<String, Value>) -> Option<Ipv6Prefix> {
        let prefix = self.string(map, "ipv6_prefix");
        let len = self.integer(map, "ipv6_prefix_length");
        let (prefix, len) = match (prefix, len) {
            (Some(p), Some(l)) => (p, l),
            (None, None) => return None,
            (Some(_), None) if !map.contains_key("ipv6_prefix_length") => {
                self.problem(
                    "ipv6_prefix_length",
                    "missing; 'ipv6_prefix' and 'ipv6_prefix_length' go together",
                );
                return None;
            }
            (None, Some(_)) if !map.contains_key("ipv6_prefix") => {
                self.problem(
                    "ipv6_prefix",
                    "missing; 'ipv6_prefix' and 'ipv6_prefix_length' go together",
                );
                return None;
            }
            _ => return None,
        };
        let addr: Ipv6Addr = match prefix.parse() {
            Ok(a) => a,
            Err(_) => {
                self.problem(
                    "ipv6_prefix",
                    format!("{prefix:?} is not an IPv6 address (like \"fd12:3456:789a:1::\")"),
                );
                return None;
            }
        };
        let Some(len) = u8::try_from(len).ok().filter(|l| (48..=64).contains(l)) else {
            self.problem(
                "ipv6_prefix_length",
                format!("{len} is out of range; use 48 to 64 (vmnet's own choice is 64)"),
            );
            return None;
        };
        let p = Ipv6Prefix::new(addr, len);
        if p.prefix() != addr {
            self.problem(
                "ipv6_prefix",
                format!(
                    "{addr} has bits set beyond /{len}; did you mean {}?",
                    p.prefix()
                ),
            );
            return None;
        }
        if !p.is_ula() {
            self.problem(
                "ipv6_prefix",
                format!("{p} is not a unique local prefix; it must be inside fd00::/8"),
            );
            return None;
        }
        Some(p)
    }

    fn parse_v4(&mut self, key: &str, text: &str) -> Option<Ipv4Addr> {
        match text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.problem(
                    key,
                    format!("{text:?} is not a dotted IPv4 address (like \"192.168.105.0\")"),
                );
                None
            }
        }
    }

    fn objects<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        key: &str,
        known: &[&str],
    ) -> Vec<(String, &'v Map<String, Value>)> {
        let Some(value) = map.get(key) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            self.problem(key, format!("must be a list, found {}", kind(value)));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{key}[{i}]");
            match item {
                Value::Object(obj) => {
                    self.unknown_keys(obj, &format!("{path}."), known);
                    out.push((path, obj));
                }
                other => self.problem(path, format!("must be a dictionary, found {}", kind(other))),
            }
        }
        out
    }

    fn port(&mut self, obj: &Map<String, Value>, path: &str, key: &str) -> Option<u16> {
        let full = format!("{path}.{key}");
        match obj.get(key) {
            None => {
                self.problem(full, "missing");
                None
            }
            Some(v) => match integer_of(v) {
                Some(n) if let Ok(port @ 1..) = u16::try_from(n) => Some(port),
                Some(n) => {
                    self.problem(full, format!("{n} is not a port; use 1 to 65535"));
                    None
                }
                None => {
                    self.problem(full, format!("must be an integer, found {}", show(v)));
                    None
                }
            },
        }
    }

    fn port_forwarding_rules(
        &mut self,
        map: &Map<String, Value>,
        mode: Option<Mode>,
        ipv4: Option<Ipv4Subnet>,
        ipv6: Option<Ipv6Prefix>,
    ) -> Vec<PortForward> {
        let items = self.objects(map, "port_forwarding_rules", RULE_KEYS);
        if !items.is_empty() && mode == Some(Mode::Host) {
            self.problem(
                "port_forwarding_rules",
                "only applies to shared mode; host-mode networks are not reachable from outside",
            );
            return Vec::new();
        }
        let mut rules = Vec::new();
        let mut seen = HashSet::new();
        for (path, obj) in items {
            let protocol = match obj.get("protocol") {
                Some(Value::String(s)) if s.eq_ignore_ascii_case("tcp") => Some(Protocol::Tcp),
                Some(Value::String(s)) if s.eq_ignore_ascii_case("udp") => Some(Protocol::Udp),
                Some(other) => {
                    self.problem(
                        format!("{path}.protocol"),
                        format!("must be \"tcp\" or \"udp\", found {}", show(other)),
                    );
                    None
                }
                None => {
                    self.problem(format!("{path}.protocol"), "missing; \"tcp\" or \"udp\"");
                    None
                }
            };
            let external_port = self.port(obj, &path, "external_port");
            let internal_port = self.port(obj, &path, "internal_port");
            let addr_key = format!("{path}.internal_address");
            let internal_address = match obj.get("internal_address") {
                None => {
                    self.problem(&addr_key, "missing");
                    None
                }
                Some(Value::String(s)) => match s.parse::<IpAddr>() {
                    Ok(IpAddr::V4(a)) => match ipv4 {
                        Some(net) if !net.is_guest_address(a) => {
                            self.problem(
                                &addr_key,
                                format!("{a} is not a guest address of the subnet {net}"),
                            );
                            None
                        }
                        _ => Some(IpAddr::V4(a)),
                    },
                    Ok(IpAddr::V6(a)) => match ipv6 {
                        Some(p) if !p.contains(a) => {
                            self.problem(&addr_key, format!("{a} is not inside the prefix {p}"));
                            None
                        }
                        _ => Some(IpAddr::V6(a)),
                    },
                    Err(_) => {
                        self.problem(&addr_key, format!("{s:?} is not an IP address"));
                        None
                    }
                },
                Some(other) => {
                    self.problem(
                        &addr_key,
                        format!("must be a string, found {}", kind(other)),
                    );
                    None
                }
            };
            if let (
                Some(protocol),
                Some(external_port),
                Some(internal_address),
                Some(internal_port),
            ) = (protocol, external_port, internal_address, internal_port)
            {
                if !seen.insert((protocol, external_port)) {
                    self.problem(
                        path,
                        format!(
                            "another rule already forwards {} port {external_port}",
                            protocol.as_str()
                        ),
                    );
                    continue;
                }
                rules.push(PortForward {
                    protocol,
                    external_port,
                    internal_address,
                    internal_port,
                });
            }
        }
        rules
    }

    fn dhcp_reservations(
        &mut self,
        map: &Map<String, Value>,
        ipv4: Option<Ipv4Subnet>,
    ) -> Vec<DhcpReservation> {
        let items = self.objects(map, "dhcp_reservations", RESERVATION_KEYS);
        if items.is_empty() {
            return Vec::new();
        }
        let Some(net) = ipv4 else {
            if !map.contains_key("subnet") {
                self.problem(
                    "dhcp_reservations",
                    "need a static subnet; set 'subnet' and 'mask'",
                );
            }
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut macs = HashSet::new();
        let mut ips = HashSet::new();
        for (path, obj) in items {
            let mac = match obj.get("mac_address") {
                Some(Value::String(s)) => match parse_mac(s) {
                    Ok(mac) => Some(mac),
                    Err(msg) => {
                        self.problem(format!("{path}.mac_address"), msg);
                        None
                    }
                },
                Some(other) => {
                    self.problem(
                        format!("{path}.mac_address"),
                        format!("must be a string, found {}", kind(other)),
                    );
                    None
                }
                None => {
                    self.problem(format!("{path}.mac_address"), "missing");
                    None
                }
            };
            let ip = match obj.get("ip_address") {
                Some(Value::String(s)) => match s.parse::<Ipv4Addr>() {
                    Ok(a) if net.is_guest_address(a) => Some(a),
                    Ok(a) => {
                        self.problem(
                            format!("{path}.ip_address"),
                            format!("{a} is not a guest address of the subnet {net}"),
                        );
                        None
                    }
                    Err(_) => {
                        self.problem(
                            format!("{path}.ip_address"),
                            format!("{s:?} is not a dotted IPv4 address"),
                        );
                        None
                    }
                },
                Some(other) => {
                    self.problem(
                        format!("{path}.ip_address"),
                        format!("must be a string, found {}", kind(other)),
                    );
                    None
                }
                None => {
                    self.problem(format!("{path}.ip_address"), "missing");
                    None
                }
            };
            let (Some(mac), Some(ip)) = (mac, ip) else {
                continue;
            };
            if !macs.insert(mac) {
                self.problem(
                    format!("{path}.mac_address"),
                    format!("{} is reserved twice", format_mac(&mac)),
                );
                continue;
            }
            if !ips.insert(ip) {
                self.problem(
                    format!("{path}.ip_address"),
                    format!("{ip} is reserved twice"),
                );
                continue;
            }
            out.push(DhcpReservation {
                mac_address: mac,
                ip_address: ip,
            });
        }
        out
    }

    fn principals(&mut self, map: &Map<String, Value>, key: &str) -> Option<Vec<Principal>> {
        let value = map.get(key)?;
        let Value::Array(items) = value else {
            self.problem(
                key,
                format!(
                    "must be a list of names or numeric ids, found {}",
                    kind(value)
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                // A name made only of digits is a numeric id written as a
                // string ("1001"): account names cannot be all digits
                // (useradd and groupadd refuse them), so it is read as one.
                Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                    match s.parse::<u32>() {
                        Ok(id) => out.push(Principal::Id(id)),
                        Err(_) => self.problem(
                            format!("{key}[{i}]"),
                            format!("{s:?} is not a valid numeric id (0 to {})", u32::MAX),
                        ),
                    }
                }
                Value::String(s) if is_account_name(s) => out.push(Principal::Name(s.clone())),
                Value::String(s) => self.problem(
                    format!("{key}[{i}]"),
                    format!("{s:?} is not a valid user or group name"),
                ),
                other => match integer_of(other) {
                    Some(n) if let Ok(id) = u32::try_from(n) => out.push(Principal::Id(id)),
                    _ => self.problem(
                        format!("{key}[{i}]"),
                        format!("must be a name or a numeric id, found {}", show(other)),
                    ),
                },
            }
        }
        Some(out)
    }
}

fn integer_of(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    }
}

fn is_account_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{s:?} is not a MAC address (like \"52:54:00:12:34:56\")");
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (slot, part) in mac.iter_mut().zip(parts) {
        if part.is_empty() || part.len() > 2 {
            return Err(bad());
        }
        *slot = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!("{s} is a multicast address; use a unicast MAC"));
    }
    if mac == [0; 6] {
        return Err("00:00:00:00:00:00 is not a usable MAC address".into());
    }
    Ok(mac)
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub(crate) fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a dictionary",
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() <= 40 => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => kind(other).to_owned(),
    }
}

/// The known key closest to `key`, if it is a likely typo.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(v: Value) -> Vec<String> {
        parse_value(&v)
            .err()
            .unwrap_or_default()
            .iter()
            .map(Problem::to_string)
            .collect()
    }

    fn has(v: Value, needle: &str) {
        let p = problems(v);
        assert!(
            p.iter().any(|s| s.contains(needle)),
            "expected a problem containing {needle:?}, got {p:?}"
        );
    }

    #[test]
    fn minimal_configs() {
        assert_eq!(
            parse_value(&json!({"mode": "host"})),
            Ok(NetworkConfig::new(Mode::Host))
        );
        has(json!({}), "mode: missing");
        has(
            json!({"mode": "bridged"}),
            "not offered by the vmnet network API",
        );
        has(
            json!({"mode": 3}),
            "must be \"shared\" or \"host\", found 3",
        );
        has(json!([1]), "must be a dictionary of options");
    }

    #[test]
    fn full_config_round_trip() {
        let cfg = parse_value(&json!({
            "mode": "shared",
            "description": "lab network",
            "subnet": "192.168.105.1", "mask": "255.255.255.0",
            "ipv6_prefix": "fd12:3456:789a:1::", "ipv6_prefix_length": 64,
            "external_interface": "en0",
            "nat44": true, "nat66": false, "dhcp": true, "dns_proxy": false,
            "router_advertisement": false,
            "mtu": 9000,
            "port_forwarding_rules": [
                {"protocol": "tcp", "external_port": 2222,
                 "internal_address": "192.168.105.10", "internal_port": 22}
            ],
            "dhcp_reservations": [
                {"mac_address": "52:54:00:12:34:56", "ip_address": "192.168.105.10"}
            ],
            "allowed_users": ["alice", 501],
            "allowed_groups": ["staff"]
        }))
        .unwrap();
        assert_eq!(cfg.ipv4.unwrap().to_string(), "192.168.105.0/24");
        assert_eq!(cfg.ipv6.unwrap().to_string(), "fd12:3456:789a:1::/64");
        assert!(!cfg.nat66 && !cfg.dns_proxy && !cfg.router_advertisement && cfg.nat44);
        assert_eq!(cfg.mtu, Some(9000));
        assert_eq!(cfg.port_forwarding_rules[0].internal_port, 22);
        assert_eq!(
            cfg.dhcp_reservations[0].mac_address,
            [0x52, 0x54, 0, 0x12, 0x34, 0x56]
        );
        assert_eq!(
            cfg.allowed_users,
            Some(vec![Principal::Name("alice".into()), Principal::Id(501)])
        );
    }

    #[test]
    fn remember_subnet_and_persistent() {
        let cfg = parse_value(&json!({"mode": "shared"})).unwrap();
        assert!(cfg.remember_subnet && !cfg.persistent);
        let cfg =
            parse_value(&json!({"mode": "host", "remember_subnet": false, "persistent": true}))
                .unwrap();
        assert!(!cfg.remember_subnet && cfg.persistent);
        has(
            json!({"mode": "host", "persistent": "yes"}),
            "persistent: must be true or false, found \"yes\"",
        );
        has(
            json!({"mode": "host", "remember_subnet": 1}),
            "remember_subnet: must be true or false, found 1",
        );
        has(
            json!({"mode": "host", "persistant": true}),
            "persistant: unknown option; did you mean \"persistent\"?",
        );
        let xml = br#"<plist version="1.0"><dict>
  <key>mode</key><string>shared</string>
  <key>persistent</key><true/>
  <key>remember_subnet</key><false/>
</dict></plist>"#;
        let cfg = parse_plist(xml).unwrap();
        assert!(cfg.persistent && !cfg.remember_subnet);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems(json!({"mode": "host", "nat4": false, "mtu": 10, "dhcp": "yes"}));
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].contains("nat4: unknown option; did you mean \"nat44\"?"),
            "{p:?}"
        );
    }

    #[test]
    fn subnet_rules() {
        has(
            json!({"mode": "host", "subnet": "192.168.1.0"}),
            "mask: missing",
        );
        has(
            json!({"mode": "host", "mask": "255.255.255.0"}),
            "subnet: missing",
        );
        has(
            json!({"mode": "host", "subnet": "192.168.1.0", "mask": "255.0.255.0"}),
            "not contiguous",
        );
        has(
            json!({"mode": "host", "subnet": "8.8.8.0", "mask": "255.255.255.0"}),
            "not inside a private range",
        );
        has(
            json!({"mode": "host", "subnet": "192.168.1.9", "mask": "255.255.255.0"}),
            "neither the network address",
        );
        has(
            json!({"mode": "host", "subnet": "192.168.1.300", "mask": "255.255.255.0"}),
            "not a dotted IPv4 address",
        );
        has(
            json!({"mode": "host", "subnet": "10.0.0.0", "mask": "255.255.255.252"}),
            "leaves no room",
        );
    }

    #[test]
    fn ipv6_rules() {
        has(
            json!({"mode": "host", "ipv6_prefix": "fd00::"}),
            "go together",
        );
        has(
            json!({"mode": "host", "ipv6_prefix": "2001:db8::", "ipv6_prefix_length": 64}),
            "inside fd00::/8",
        );
        has(
            json!({"mode": "host", "ipv6_prefix": "fd00::1", "ipv6_prefix_length": 64}),
            "bits set beyond",
        );
        has(
            json!({"mode": "host", "ipv6_prefix": "fd00::", "ipv6_prefix_length": 96}),
            "out of range",
        );
    }

    #[test]
    fn shared_only_options() {
        has(
            json!({"mode": "host", "external_interface": "en0"}),
            "only applies to shared mode",
        );
        has(
            json!({"mode": "host", "port_forwarding_rules": [
                {"protocol": "tcp", "external_port": 1, "internal_address": "192.168.1.2", "internal_port": 1}]}),
            "only applies to shared mode",
        );
        has(
            json!({"mode": "shared", "external_interface": "en0/../"}),
            "not an interface name",
        );
    }

    #[test]
    fn port_forwarding_rules() {
        let base = |rules: Value| {
            json!({"mode": "shared", "subnet": "192.168.50.0", "mask": "255.255.255.0",
                   "port_forwarding_rules": rules})
        };
        has(
            base(
                json!([{"protocol": "sctp", "external_port": 1, "internal_address": "192.168.50.2", "internal_port": 1}]),
            ),
            "must be \"tcp\" or \"udp\"",
        );
        has(
            base(
                json!([{"protocol": "tcp", "external_port": 0, "internal_address": "192.168.50.2", "internal_port": 1}]),
            ),
            "0 is not a port",
        );
        has(
            base(
                json!([{"protocol": "tcp", "external_port": 8080, "internal_address": "10.0.0.2", "internal_port": 80}]),
            ),
            "not a guest address of the subnet 192.168.50.0/24",
        );
        has(
            base(json!([
                {"protocol": "tcp", "external_port": 8080, "internal_address": "192.168.50.2", "internal_port": 80},
                {"protocol": "tcp", "external_port": 8080, "internal_address": "192.168.50.3", "internal_port": 80}])),
            "already forwards tcp port 8080",
        );
        has(base(json!([{"protocol": "tcp"}])), "external_port: missing");
        has(
            base(json!([{"protocol": "tcp", "extra": 1}])),
            "port_forwarding_rules[0].extra: unknown option",
        );
        // A dynamic subnet cannot be checked; any address is accepted.
        assert!(parse_value(&json!({"mode": "shared", "port_forwarding_rules": [
            {"protocol": "udp", "external_port": 53, "internal_address": "192.168.64.5", "internal_port": 53}]}))
        .is_ok());
    }

    #[test]
    fn dhcp_reservation_rules() {
        has(
            json!({"mode": "host", "dhcp_reservations": [{"mac_address": "52:54:00:00:00:01", "ip_address": "192.168.64.5"}]}),
            "need a static subnet",
        );
        let base = |r: Value| json!({"mode": "host", "subnet": "192.168.50.0", "mask": "255.255.255.0", "dhcp_reservations": r});
        has(
            base(json!([
                {"mac_address": "52:54:00:00:00:01", "ip_address": "192.168.50.5"},
                {"mac_address": "52:54:00:00:00:01", "ip_address": "192.168.50.6"}])),
            "reserved twice",
        );
        has(
            base(json!([
                {"mac_address": "52:54:00:00:00:01", "ip_address": "192.168.50.5"},
                {"mac_address": "52:54:00:00:00:02", "ip_address": "192.168.50.5"}])),
            "192.168.50.5 is reserved twice",
        );
        has(
            base(json!([{"mac_address": "zz", "ip_address": "192.168.50.5"}])),
            "not a MAC address",
        );
        has(
            base(json!([{"mac_address": "01:00:5e:00:00:01", "ip_address": "192.168.50.5"}])),
            "multicast",
        );
        has(
            base(json!([{"mac_address": "52:54:00:00:00:01", "ip_address": "192.168.50.1"}])),
            "not a guest address",
        );
    }

    #[test]
    fn principals() {
        has(
            json!({"mode": "host", "allowed_users": "alice"}),
            "must be a list",
        );
        has(
            json!({"mode": "host", "allowed_users": [-1]}),
            "must be a name or a numeric id",
        );
        has(
            json!({"mode": "host", "allowed_groups": ["a b"]}),
            "not a valid user or group name",
        );
        has(
            json!({"mode": "host", "allowed_users": ["99999999999"]}),
            "not a valid numeric id",
        );
        let cfg = parse_value(&json!({
            "mode": "host",
            "allowed_users": ["1001", "alice"],
            "allowed_groups": ["0"]
        }))
        .unwrap();
        assert_eq!(
            cfg.allowed_users,
            Some(vec![Principal::Id(1001), Principal::Name("alice".into())])
        );
        assert_eq!(cfg.allowed_groups, Some(vec![Principal::Id(0)]));
    }

    #[test]
    fn plist_documents() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>mode</key><string>shared</string>
  <key>subnet</key><string>192.168.106.0</string>
  <key>mask</key><string>255.255.255.0</string>
  <key>mtu</key><integer>1500</integer>
  <key>dhcp</key><false/>
</dict></plist>"#;
        let cfg = parse_plist(xml).unwrap();
        assert_eq!(cfg.mtu, Some(1500));
        assert!(!cfg.dhcp);
        // The same document in binary form.
        let value = plist::Value::from_reader(std::io::Cursor::new(&xml[..])).unwrap();
        let mut bin = Vec::new();
        value.to_writer_binary(&mut bin).unwrap();
        assert_eq!(parse_plist(&bin), Ok(cfg));
        let bad = br#"<plist version="1.0"><dict><key>mode</key><data>AAAA</data></dict></plist>"#;
        assert!(
            matches!(parse_plist(bad), Err(ParseFailure::Invalid(p)) if p[0].to_string().contains("<data>"))
        );
        assert!(matches!(
            parse_plist(b"not a plist"),
            Err(ParseFailure::Syntax(_))
        ));
        assert!(matches!(
            parse_json(b"{\"mode\": "),
            Err(ParseFailure::Syntax(_))
        ));
    }
}
