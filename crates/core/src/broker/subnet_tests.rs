//! Host collisions and remembered subnets, through the broker.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use vmnet_broker_proto::{Mode, NetworkName, Request, Status};

use super::*;
use crate::backend::sim::SimBackend;
use crate::config::{Ipv4Subnet, Ipv6Prefix, NetworkConfig, StaticConfig};
use crate::hostnet::{HostNetwork, HostNetworksError};
use crate::state::Remembered;

/// A host whose networks the test changes while the broker runs.
#[derive(Clone, Default)]
struct Host(Arc<Mutex<Vec<HostNetwork>>>);

impl Host {
    fn set(&self, list: Vec<HostNetwork>) {
        *self.0.lock().unwrap() = list;
    }
}

impl HostNetworks for Host {
    fn host_networks(&self) -> Result<Vec<HostNetwork>, HostNetworksError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

type TestBroker = Broker<SimBackend, StaticConfig>;

fn broker(config: StaticConfig, host: &Host) -> TestBroker {
    let now = Instant::now();
    let mut b = Broker::new(
        BrokerOptions::default(),
        SimBackend::new(1),
        config,
        NoAccounts,
        DaemonInfo::default(),
        now,
    );
    b.set_host_networks(host.clone());
    b.handle_connect(
        now,
        ClientId(1),
        ClientCredentials {
            pid: 1,
            uid: 501,
            gid: 20,
        },
    )
    .unwrap();
    b
}

/// What the broker saved through its store, for the test to take.
#[derive(Clone, Default)]
struct Saved(Arc<Mutex<Option<RememberedSubnets>>>);

impl SubnetStore for Saved {
    fn save(&mut self, subnets: &RememberedSubnets) {
        *self.0.lock().unwrap() = Some(subnets.clone());
    }
}

impl Saved {
    /// What was saved since the last call.
    fn take(&self) -> Option<RememberedSubnets> {
        self.0.lock().unwrap().take()
    }
}

/// [`broker`] with a store that records what it saves.
fn saving_broker(config: StaticConfig, host: &Host) -> (TestBroker, Saved) {
    let mut b = broker(config, host);
    let saved = Saved::default();
    b.set_subnet_store(saved.clone());
    (b, saved)
}

fn acquire(b: &mut TestBroker, net: &str) -> Result<NetworkInfo, Status> {
    let r = b.handle_request(
        Instant::now(),
        ClientId(1),
        Request::Acquire {
            network: NetworkName::new(net).unwrap(),
        },
    );
    b.check_invariants().unwrap();
    match r {
        Reply::Acquired { info, .. } => Ok(info),
        Reply::AcquireFailed(e) => Err(e.status()),
        Reply::Error(s) => Err(s),
        other => panic!("{other:?}"),
    }
}

fn subnet(b: &mut TestBroker, net: &str) -> String {
    acquire(b, net).unwrap().subnet.to_string()
}

fn v4(s: &str, len: u8) -> Ipv4Subnet {
    Ipv4Subnet::new(s.parse().unwrap(), len)
}

fn static_net(subnet: &str) -> NetworkConfig {
    let mut c = NetworkConfig::new(Mode::Host);
    c.ipv4 = Some(v4(subnet, 24));
    c
}

fn remembered(entries: &[(&str, &str)]) -> RememberedSubnets {
    let mut r = RememberedSubnets::new();
    for (i, (name, subnet)) in entries.iter().enumerate() {
        r.insert(
            NetworkName::new(name).unwrap(),
            Remembered {
                ipv4: v4(subnet, 24),
                ipv6: Ipv6Prefix::new(format!("fd00:{i}::").parse().unwrap(), 64),
            },
        );
    }
    r
}

#[test]
fn a_static_subnet_on_a_host_network_is_refused() {
    let host = Host::default();
    host.set(vec![HostNetwork::address(
        "d0",
        "192.168.105.1".parse().unwrap(),
        24,
    )]);
    let config = StaticConfig::new()
        .with("lab", static_net("192.168.105.0"))
        .with("other", static_net("192.168.106.0"));
    let mut b = broker(config, &host);
    assert_eq!(acquire(&mut b, "lab"), Err(Status::CREATE_FAILURE));
    assert_eq!(b.network_count(), 0);
    assert_eq!(b.backend().totals(), (0, 0), "the backend was never asked");
    assert_eq!(subnet(&mut b, "other"), "192.168.106.0");
    assert_eq!(b.subnet_origin("other"), Some(SubnetOrigin::Static));
    // The interface goes away: the network can be created now.
    host.set(Vec::new());
    assert_eq!(subnet(&mut b, "lab"), "192.168.105.0");
}

#[test]
fn reserved_ranges_are_refused_without_any_host_network() {
    let config = StaticConfig::new()
        .with("sharing", static_net("192.168.2.0"))
        .with("first", static_net("192.168.64.0"));
    let mut b = broker(config, &Host::default());
    assert_eq!(acquire(&mut b, "sharing"), Err(Status::CREATE_FAILURE));
    assert_eq!(acquire(&mut b, "first"), Err(Status::CREATE_FAILURE));
    // Dynamic networks are vmnet's choice and are not checked.
    assert_eq!(subnet(&mut b, "shared"), "192.168.64.0");
}

#[test]
fn the_brokers_own_networks_are_not_taken_for_host_networks() {
    let host = Host::default();
    let config = StaticConfig::new()
        .with("lab", static_net("192.168.105.0"))
        .with("lab2", static_net("192.168.106.0"));
    let mut b = broker(config, &host);
    assert_eq!(subnet(&mut b, "lab"), "192.168.105.0");
    // On macOS the live network shows up as a bridge of the host.
    host.set(vec![HostNetwork::address(
        "bridge100",
        "192.168.105.1".parse().unwrap(),
        24,
    )]);
    assert_eq!(subnet(&mut b, "lab2"), "192.168.106.0");
}

#[test]
fn a_remembered_subnet_is_asked_for_first() {
    let (mut b, store) = saving_broker(StaticConfig::new(), &Host::default());
    b.set_remembered(remembered(&[("shared", "192.168.70.0")]));
    let info = acquire(&mut b, "shared").unwrap();
    assert_eq!(info.subnet.to_string(), "192.168.70.0");
    assert_eq!(info.ipv6_prefix.to_string(), "fd00::");
    assert_eq!(b.subnet_origin("shared"), Some(SubnetOrigin::Remembered));
    assert!(store.take().is_none(), "nothing new to save");
    // A network seen for the first time is recorded.
    assert_eq!(subnet(&mut b, "host"), "192.168.64.0");
    assert_eq!(b.subnet_origin("host"), Some(SubnetOrigin::Chosen));
    let saved = store.take().unwrap().clone();
    assert_eq!(saved.get("host").unwrap().ipv4, v4("192.168.64.0", 24));
    assert!(store.take().is_none());
}

#[test]
fn subnets_survive_a_restart_whatever_the_acquire_order() {
    let (mut first, store) = saving_broker(StaticConfig::new(), &Host::default());
    assert_eq!(subnet(&mut first, "shared"), "192.168.64.0");
    assert_eq!(subnet(&mut first, "host"), "192.168.65.0");
    let state = store.take().unwrap().encode();
    let (state, warnings) = RememberedSubnets::decode(&state);
    assert!(warnings.is_empty());

    let mut second = broker(StaticConfig::new(), &Host::default());
    second.set_remembered(state);
    assert_eq!(subnet(&mut second, "host"), "192.168.65.0");
    assert_eq!(subnet(&mut second, "shared"), "192.168.64.0");
    assert_eq!(
        second.subnet_origin("shared"),
        Some(SubnetOrigin::Remembered)
    );
}

#[test]
fn a_taken_remembered_subnet_falls_back_and_is_updated() {
    let config = StaticConfig::new().with("squatter", static_net("192.168.70.0"));
    let (mut b, store) = saving_broker(config, &Host::default());
    b.set_remembered(remembered(&[("shared", "192.168.70.0")]));
    assert_eq!(subnet(&mut b, "squatter"), "192.168.70.0");
    assert_eq!(subnet(&mut b, "shared"), "192.168.64.0");
    assert_eq!(b.subnet_origin("shared"), Some(SubnetOrigin::Changed));
    let saved = store.take().unwrap();
    assert_eq!(saved.get("shared").unwrap().ipv4, v4("192.168.64.0", 24));
}

#[test]
fn a_remembered_subnet_now_on_the_host_is_not_asked_for() {
    let host = Host::default();
    host.set(vec![HostNetwork::route(
        Some("utun4"),
        "192.168.70.0".parse().unwrap(),
        24,
    )]);
    let mut b = broker(StaticConfig::new(), &host);
    b.set_remembered(remembered(&[("shared", "192.168.70.0")]));
    assert_eq!(subnet(&mut b, "shared"), "192.168.64.0");
    assert_eq!(b.subnet_origin("shared"), Some(SubnetOrigin::Changed));
}

#[test]
fn static_subnets_win_and_opting_out_forgets() {
    let mut forgetful = NetworkConfig::new(Mode::Shared);
    forgetful.remember_subnet = false;
    let config = StaticConfig::new()
        .with("lab", static_net("192.168.105.0"))
        .with("forgetful", forgetful);
    let (mut b, store) = saving_broker(config, &Host::default());
    b.set_remembered(remembered(&[
        ("lab", "192.168.80.0"),
        ("forgetful", "192.168.81.0"),
    ]));
    assert_eq!(subnet(&mut b, "lab"), "192.168.105.0");
    assert_eq!(b.subnet_origin("lab"), Some(SubnetOrigin::Static));
    assert_eq!(subnet(&mut b, "forgetful"), "192.168.64.0");
    assert_eq!(b.subnet_origin("forgetful"), Some(SubnetOrigin::Chosen));
    let saved = store.take().unwrap();
    assert_eq!(
        saved.get("forgetful").unwrap().ipv4,
        v4("192.168.81.0", 24),
        "an opted-out network's old entry is left as it was"
    );
    assert_eq!(saved.get("lab").unwrap().ipv4, v4("192.168.105.0", 24));
}
