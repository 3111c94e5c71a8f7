//! Property tests: random sequences of connect / acquire / release /
//! disconnect / time steps / backend failures, checked after every step
//! against the broker's invariants and a reference model of who holds what.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use vmnet_broker_core::broker::{BrokerOptions, ClientCredentials, NoAccounts, Reply};
use vmnet_broker_core::config::{Ipv4Subnet, NetworkConfig, StaticConfig};
use vmnet_broker_core::proto::{Mode, NetworkName, Request, Status};
use vmnet_broker_core::testing::Harness;

const NETS: [&str; 5] = ["shared", "host", "static-a", "static-b", "missing"];

#[derive(Debug, Clone)]
enum Op {
    Connect(u64),
    Disconnect(u64),
    Acquire(u64, usize),
    Release(u64, usize),
    Advance(u64),
    FailNextCreate,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..5u64).prop_map(Op::Connect),
        1 => (0..5u64).prop_map(Op::Disconnect),
        4 => (0..5u64, 0..NETS.len()).prop_map(|(p, n)| Op::Acquire(p, n)),
        2 => (0..5u64, 0..NETS.len()).prop_map(|(p, n)| Op::Release(p, n)),
        2 => (0..150u64).prop_map(Op::Advance),
        1 => Just(Op::FailNextCreate),
    ]
}

fn config() -> StaticConfig {
    // static-a and static-b overlap: only one of them can be live.
    let mut a = NetworkConfig::new(Mode::Host);
    a.ipv4 = Some(Ipv4Subnet::new("192.168.100.0".parse().unwrap(), 24));
    let mut b = NetworkConfig::new(Mode::Shared);
    b.ipv4 = Some(Ipv4Subnet::new("192.168.100.0".parse().unwrap(), 23));
    StaticConfig::new().with("static-a", a).with("static-b", b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn holder_counts_stay_exact(ops in proptest::collection::vec(op(), 1..120)) {
        let options = BrokerOptions {
            network_idle_timeout: Duration::from_secs(60),
            exit_idle_timeout: Some(Duration::from_secs(90)),
            max_networks_per_client: 3,
            ..BrokerOptions::default()
        };
        let mut d = Harness::sim(options, config(), NoAccounts, 7);
        // Invariants are checked below, as a test failure proptest shrinks.
        d.check = false;
        // Reference model: connected clients and what each holds.
        let mut model: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
        // Whether IdleExit was reported since the last client connected.
        let mut exit_reported = false;

        for op in ops {
            match op {
                Op::Connect(p) => {
                    let r = d.connect(p, ClientCredentials { pid: 1, uid: 501, gid: 20 });
                    prop_assert_eq!(r.is_ok(), !model.contains_key(&p));
                    exit_reported = false;
                    model.entry(p).or_default();
                }
                Op::Disconnect(p) => {
                    d.disconnect(p);
                    model.remove(&p);
                }
                Op::Acquire(p, n) => {
                    let network = NetworkName::new(NETS[n]).unwrap();
                    let reply = d.request(p, Request::Acquire { network });
                    match model.get_mut(&p) {
                        None => prop_assert_eq!(reply.status(), Status::INTERNAL_ERROR),
                        Some(held) => {
                            let s = reply.status();
                            if held.contains(&n) {
                                prop_assert_eq!(s, Status::SUCCESS, "re-acquire must succeed");
                            } else if held.len() >= 3 {
                                prop_assert_eq!(s, Status::INTERNAL_ERROR);
                            } else if NETS[n] == "missing" {
                                prop_assert_eq!(s, Status::NOT_FOUND);
                            } else if s == Status::SUCCESS {
                                held.insert(n);
                            } else {
                                prop_assert_eq!(s, Status::CREATE_FAILURE);
                            }
                            if let Reply::Acquired { info, .. } = &reply {
                                prop_assert!(info.subnet.octets()[0] == 192);
                            }
                        }
                    }
                }
                Op::Release(p, n) => {
                    let network = NetworkName::new(NETS[n]).unwrap();
                    let reply = d.request(p, Request::Release { network });
                    match model.get_mut(&p) {
                        None => prop_assert_eq!(reply.status(), Status::INTERNAL_ERROR),
                        Some(held) => {
                            let was_held = held.remove(&n);
                            prop_assert_eq!(reply.status().is_success(), was_held);
                        }
                    }
                }
                Op::Advance(secs) => d.advance(Duration::from_secs(secs)),
                Op::FailNextCreate => d.broker.backend_mut().fail_next(1),
            }
            for e in d.take_events() {
                if e == vmnet_broker_core::broker::Event::IdleExit {
                    prop_assert!(model.is_empty(), "idle exit with clients connected");
                    prop_assert!(!exit_reported, "idle exit reported twice");
                    exit_reported = true;
                }
            }
            if let Err(e) = d.broker.check_invariants() {
                return Err(TestCaseError::fail(e));
            }
            // Holder counts match the model exactly.
            for (i, net) in NETS.iter().enumerate() {
                let expected = model.values().filter(|h| h.contains(&i)).count();
                match d.broker.holders(net) {
                    Some(count) => prop_assert_eq!(count, expected, "holders of {}", net),
                    None => prop_assert_eq!(expected, 0, "{} held but not live", net),
                }
            }
            prop_assert_eq!(d.broker.backend().live_count(), d.broker.network_count());
        }

        // Everyone leaves; after the idle delay nothing is left.
        if !model.is_empty() {
            exit_reported = false;
        }
        let clients: Vec<u64> = model.keys().copied().collect();
        for p in clients {
            d.disconnect(p);
        }
        d.advance(Duration::from_secs(61));
        prop_assert_eq!(d.broker.network_count(), 0);
        prop_assert_eq!(d.broker.backend().live_count(), 0);
        d.advance(Duration::from_secs(90));
        let mut exits = 0;
        for e in d.take_events() {
            if e == vmnet_broker_core::broker::Event::IdleExit { exits += 1; }
        }
        let expected = if exit_reported { 0 } else { 1 };
        prop_assert_eq!(exits, expected, "idle exit reported once after everyone left");
    }
}
