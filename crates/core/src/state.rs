//! Remembered subnets: what each network was given last time.
//!
//! The broker remembers, per network name, the IPv4 subnet and the IPv6
//! prefix a network last had, so that it can ask for the same ones when the
//! network is created again (after an idle removal, a restart or a reboot).
//! This module is the pure part: the map and its file format. Reading and
//! writing the file is the daemon's (it owns the state directory).
//!
//! The format is a small JSON document:
//!
//! ```json
//! {"version": 1,
//!  "networks": {"shared": {"subnet": "192.168.64.0", "mask": "255.255.255.0",
//!                          "ipv6_prefix": "fd12:3456:789a:1::", "ipv6_prefix_length": 64}}}
//! ```
//!
//! Decoding never fails as a whole on bad content: the caller gets what
//! could be read and a list of warnings, because a damaged state file must
//! never stop the broker.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value, json};
use vmnet_broker_proto::{NetworkInfo, NetworkName};

use crate::config::{Ipv4Subnet, Ipv6Prefix};

/// The format version written, and the only one read.
pub const STATE_VERSION: u64 = 1;

/// Most networks remembered; entries past this are dropped when decoding
/// (the broker itself holds at most a few hundred networks).
pub const MAX_REMEMBERED: usize = 4096;

/// Where the broker keeps the remembered subnets between runs (the
/// daemon's state file). The broker calls [`SubnetStore::save`] each time
/// what it remembers changes; a failure is the store's to report (it must
/// never stop the broker).
pub trait SubnetStore {
    /// Replaces what is stored with `subnets`.
    fn save(&mut self, subnets: &RememberedSubnets);
}

/// The subnet and prefix one network had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    /// The IPv4 subnet.
    pub ipv4: Ipv4Subnet,
    /// The IPv6 prefix.
    pub ipv6: Ipv6Prefix,
}

impl Remembered {
    /// What a live network's addresses are, as its backend reported them.
    pub fn from_info(info: &NetworkInfo) -> Self {
        Self {
            ipv4: Ipv4Subnet::new(info.subnet, u8::try_from(info.prefix_len()).unwrap_or(32)),
            ipv6: Ipv6Prefix::new(info.ipv6_prefix, info.ipv6_prefix_length),
        }
    }
}

/// Remembered subnets by network name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RememberedSubnets {
    map: BTreeMap<NetworkName, Remembered>,
}

impl RememberedSubnets {
    /// Nothing remembered.
    pub fn new() -> Self {
        Self::default()
    }

    /// What `name` had last time.
    pub fn get(&self, name: &str) -> Option<&Remembered> {
        self.map.get(name)
    }

    /// Records what `name` has now; returns whether that changed anything
    /// (so the caller writes the file only when needed).
    pub fn insert(&mut self, name: NetworkName, remembered: Remembered) -> bool {
        self.map.insert(name, remembered) != Some(remembered)
    }

    /// Forgets `name`; returns whether it was remembered.
    pub fn remove(&mut self, name: &str) -> bool {
        self.map.remove(name).is_some()
    }

    /// Number of networks remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every entry, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&NetworkName, &Remembered)> {
        self.map.iter()
    }

    /// The file content, pretty-printed JSON ending with a newline.
    pub fn encode(&self) -> Vec<u8> {
        let networks: Map<String, Value> = self
            .map
            .iter()
            .map(|(name, r)| {
                (
                    name.to_string(),
                    json!({
                        "subnet": r.ipv4.network().to_string(),
                        "mask": r.ipv4.mask().to_string(),
                        "ipv6_prefix": r.ipv6.prefix().to_string(),
                        "ipv6_prefix_length": r.ipv6.len(),
                    }),
                )
            })
            .collect();
        let doc = json!({"version": STATE_VERSION, "networks": networks});
        let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads a file's content. Whatever can be read is returned; every
    /// problem (not JSON, an unknown version, a bad entry) is a warning.
    pub fn decode(bytes: &[u8]) -> (Self, Vec<String>) {
        let mut out = Self::new();
        let mut warnings = Vec::new();
        let doc: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                let what = if bytes.is_empty() {
                    "empty".to_owned()
                } else {
                    format!("not valid JSON ({e})")
                };
                warnings.push(format!("the state file is {what}; nothing is remembered"));
                return (out, warnings);
            }
        };
        let Value::Object(doc) = doc else {
            warnings.push("the state file is not a JSON object; nothing is remembered".into());
            return (out, warnings);
        };
        match doc.get("version").and_then(Value::as_u64) {
            Some(STATE_VERSION) => {}
            other => {
                warnings.push(format!(
                    "the state file has version {}, this broker reads {STATE_VERSION}; nothing is remembered",
                    other.map_or_else(|| "none".to_owned(), |v| v.to_string())
                ));
                return (out, warnings);
            }
        }
        let Some(Value::Object(networks)) = doc.get("networks") else {
            warnings
                .push("the state file has no \"networks\" object; nothing is remembered".into());
            return (out, warnings);
        };
        for (name, entry) in networks {
            if out.len() >= MAX_REMEMBERED {
                warnings.push(format!(
                    "the state file lists more than {MAX_REMEMBERED} networks; the rest are ignored"
                ));
                break;
            }
            match decode_entry(name, entry) {
                Ok((name, r)) => {
                    out.map.insert(name, r);
                }
                Err(why) => warnings.push(format!(
                    "state entry {:?} ignored: {why}",
                    name.chars().take(80).collect::<String>()
                )),
            }
        }
        (out, warnings)
    }
}

fn decode_entry(name: &str, entry: &Value) -> Result<(NetworkName, Remembered), String> {
    let name = NetworkName::new(name).map_err(|e| e.to_string())?;
    let Value::Object(entry) = entry else {
        return Err("not an object".into());
    };
    let text = |key: &str| -> Result<&str, String> {
        entry
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{key} is missing or not a string"))
    };
    let subnet: Ipv4Addr = text("subnet")?
        .parse()
        .map_err(|_| "subnet is not an IPv4 address".to_owned())?;
    let mask: Ipv4Addr = text("mask")?
        .parse()
        .map_err(|_| "mask is not an IPv4 address".to_owned())?;
    let ipv4 = Ipv4Subnet::from_addr_mask(subnet, mask)?;
    if ipv4.network() != subnet || !ipv4.is_private() || ipv4.prefix_len() > 30 {
        return Err(format!("{ipv4} is not a usable private subnet"));
    }
    let prefix: Ipv6Addr = text("ipv6_prefix")?
        .parse()
        .map_err(|_| "ipv6_prefix is not an IPv6 address".to_owned())?;
    let len = entry
        .get("ipv6_prefix_length")
        .and_then(Value::as_u64)
        .and_then(|l| u8::try_from(l).ok())
        .filter(|l| (1..=128).contains(l))
        .ok_or("ipv6_prefix_length is missing or not 1 to 128")?;
    let ipv6 = Ipv6Prefix::new(prefix, len);
    if ipv6.prefix() != prefix {
        return Err(format!("{prefix} has bits set beyond /{len}"));
    }
    Ok((name, Remembered { ipv4, ipv6 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmnet_broker_proto::Mode;

    fn name(s: &str) -> NetworkName {
        NetworkName::new(s).unwrap()
    }

    fn entry(third: u8) -> Remembered {
        Remembered {
            ipv4: Ipv4Subnet::new(Ipv4Addr::new(192, 168, third, 0), 24),
            ipv6: Ipv6Prefix::new(format!("fd00:{third}::").parse().unwrap(), 64),
        }
    }

    #[test]
    fn round_trip() {
        let mut s = RememberedSubnets::new();
        assert!(s.insert(name("shared"), entry(64)));
        assert!(s.insert(name("lab"), entry(65)));
        assert!(!s.insert(name("lab"), entry(65)), "same value is no change");
        assert!(s.insert(name("lab"), entry(66)));
        let bytes = s.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"subnet\": \"192.168.66.0\""), "{text}");
        let (back, warnings) = RememberedSubnets::decode(&bytes);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(back, s);
        let mut back = back;
        assert!(back.remove("lab") && !back.remove("lab"));
    }

    #[test]
    fn from_network_info() {
        let info = NetworkInfo {
            mode: Mode::Shared,
            subnet: Ipv4Addr::new(192, 168, 64, 0),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            ipv6_prefix: "fd00:64::".parse().unwrap(),
            ipv6_prefix_length: 64,
        };
        assert_eq!(Remembered::from_info(&info), entry(64));
    }

    #[test]
    fn damaged_files_give_warnings_never_errors() {
        let good = {
            let mut s = RememberedSubnets::new();
            s.insert(name("shared"), entry(64));
            s.encode()
        };
        let cases: [(&[u8], &str); 7] = [
            (b"", "empty"),
            (&good[..good.len() / 2], "not valid JSON"),
            (b"\x00\xff garbage", "not valid JSON"),
            (b"[1, 2]", "not a JSON object"),
            (br#"{"version": 2, "networks": {}}"#, "version 2"),
            (br#"{"networks": {}}"#, "version none"),
            (br#"{"version": 1}"#, "no \"networks\""),
        ];
        for (bytes, needle) in cases {
            let (s, w) = RememberedSubnets::decode(bytes);
            assert!(s.is_empty());
            assert_eq!(w.len(), 1, "{w:?}");
            assert!(w[0].contains(needle), "{needle}: {w:?}");
        }
    }

    #[test]
    fn bad_entries_are_skipped_and_good_ones_kept() {
        let doc = br#"{"version": 1, "networks": {
            "good": {"subnet": "192.168.70.0", "mask": "255.255.255.0",
                     "ipv6_prefix": "fd00:70::", "ipv6_prefix_length": 64},
            "bad name!": {"subnet": "192.168.71.0", "mask": "255.255.255.0",
                     "ipv6_prefix": "fd00:71::", "ipv6_prefix_length": 64},
            "public": {"subnet": "8.8.8.0", "mask": "255.255.255.0",
                     "ipv6_prefix": "fd00:72::", "ipv6_prefix_length": 64},
            "hostbits": {"subnet": "192.168.73.5", "mask": "255.255.255.0",
                     "ipv6_prefix": "fd00:73::", "ipv6_prefix_length": 64},
            "v6bits": {"subnet": "192.168.74.0", "mask": "255.255.255.0",
                     "ipv6_prefix": "fd00:74::1", "ipv6_prefix_length": 64},
            "nomask": {"subnet": "192.168.75.0",
                     "ipv6_prefix": "fd00:75::", "ipv6_prefix_length": 64},
            "badlen": {"subnet": "192.168.76.0", "mask": "255.255.255.0",
                     "ipv6_prefix": "fd00:76::", "ipv6_prefix_length": 200},
            "scalar": 5
        }}"#;
        let (s, w) = RememberedSubnets::decode(doc);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s.get("good").unwrap().ipv4.to_string(), "192.168.70.0/24");
        assert_eq!(w.len(), 7, "{w:?}");
    }
}
