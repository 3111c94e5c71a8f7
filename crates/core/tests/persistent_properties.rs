//! Property tests of persistent networks and configuration changes:
//! random sequences of connects, acquires, releases, disconnects, time
//! steps, creation failures, configuration edits (a network's subnet, a
//! network made persistent or not, a file deleted or broken) and reloads,
//! checked after every step against the broker's invariants and these
//! rules:
//!
//! - a held network always keeps the configuration it was created with;
//!   a change is pending only while the network is held;
//! - after a reload, every network configured persistent is live or
//!   waiting for a retry, and a live idle network matches its
//!   configuration;
//! - the broker never reports IdleExit while a persistent network is live
//!   or waiting, nor while clients are connected;
//! - holder counts match a reference model exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use vmnet_broker_core::broker::{BrokerOptions, ClientCredentials, Event, NoAccounts, Reply};
use vmnet_broker_core::config::{ConfigError, ConfigSource, Ipv4Subnet, Lookup, NetworkConfig};
use vmnet_broker_core::proto::{Mode, NetworkName, Request};
use vmnet_broker_core::testing::Harness;

const NETS: [&str; 3] = ["lab", "always", "other"];

/// What the test may set a network's configuration to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conf {
    /// Absent (file deleted).
    Gone,
    /// Broken (unusable file).
    Broken,
    /// Host mode on 192.168.(100 + third).0/24, persistent or not.
    Net { third: u8, persistent: bool },
}

fn to_config(c: Conf) -> Option<Result<NetworkConfig, ConfigError>> {
    match c {
        Conf::Gone => None,
        Conf::Broken => Some(Err(ConfigError::Read {
            path: "x.json".into(),
            message: "broken".into(),
        })),
        Conf::Net { third, persistent } => {
            let mut n = NetworkConfig::new(Mode::Host);
            n.ipv4 = Some(Ipv4Subnet::new(
                std::net::Ipv4Addr::new(192, 168, 100 + third, 0),
                24,
            ));
            n.persistent = persistent;
            Some(Ok(n))
        }
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<BTreeMap<&'static str, Conf>>>);

impl ConfigSource for Shared {
    fn lookup(&self, name: &NetworkName) -> Lookup {
        let map = self.0.lock().unwrap();
        match map.get(name.as_str()).copied().and_then(to_config) {
            Some(Ok(c)) => Lookup::Found(c),
            Some(Err(e)) => Lookup::Broken(e),
            None => Lookup::NotFound,
        }
    }
    fn configured_names(&self) -> Vec<NetworkName> {
        let map = self.0.lock().unwrap();
        map.iter()
            .filter(|(_, c)| **c != Conf::Gone)
            .map(|(n, _)| NetworkName::new(n).unwrap())
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Connect(u64),
    Disconnect(u64),
    Acquire(u64, usize),
    Release(u64, usize),
    Advance(u64),
    FailNextCreate,
    Edit(usize, Conf),
    Reload,
}

fn conf() -> impl Strategy<Value = Conf> {
    prop_oneof![
        1 => Just(Conf::Gone),
        1 => Just(Conf::Broken),
        6 => (0..3u8, any::<bool>()).prop_map(|(third, persistent)| Conf::Net { third, persistent }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..4u64).prop_map(Op::Connect),
        1 => (0..4u64).prop_map(Op::Disconnect),
        4 => (0..4u64, 0..NETS.len()).prop_map(|(c, n)| Op::Acquire(c, n)),
        2 => (0..4u64, 0..NETS.len()).prop_map(|(c, n)| Op::Release(c, n)),
        2 => (0..200u64).prop_map(Op::Advance),
        1 => Just(Op::FailNextCreate),
        2 => (0..NETS.len(), conf()).prop_map(|(n, c)| Op::Edit(n, c)),
        1 => Just(Op::Reload),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn persistent_and_pending_states_follow_the_rules(ops in proptest::collection::vec(op(), 1..100)) {
        let options = BrokerOptions {
            network_idle_timeout: Duration::from_secs(60),
            exit_idle_timeout: Some(Duration::from_secs(90)),
            ..BrokerOptions::default()
        };
        let config = Shared::default();
        {
            let mut m = config.0.lock().unwrap();
            m.insert("lab", Conf::Net { third: 0, persistent: false });
            m.insert("always", Conf::Net { third: 1, persistent: true });
            m.insert("other", Conf::Net { third: 2, persistent: false });
        }
        let mut d = Harness::sim(options, config.clone(), NoAccounts, 3);
        d.check = false;
        d.broker.reload(d.now);
        d.settle();
        let mut model: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
        // The configuration of each live network, and its holders, at the
        // previous step.
        let mut before: BTreeMap<usize, (Conf, usize)> = BTreeMap::new();

        for op in ops {
            let mut reloaded = false;
            match op {
                Op::Connect(c) => {
                    let _ = d.connect(c, ClientCredentials { pid: 1, uid: 501, gid: 20 });
                    model.entry(c).or_default();
                }
                Op::Disconnect(c) => {
                    d.disconnect(c);
                    model.remove(&c);
                }
                Op::Acquire(c, n) => {
                    let reply = d.request(c, Request::Acquire { network: NetworkName::new(NETS[n]).unwrap() });
                    if let (Some(held), Reply::Acquired { .. }) = (model.get_mut(&c), &reply) {
                        held.insert(n);
                    }
                }
                Op::Release(c, n) => {
                    let _ = d.request(c, Request::Release { network: NetworkName::new(NETS[n]).unwrap() });
                    if let Some(held) = model.get_mut(&c) {
                        held.remove(&n);
                    }
                }
                Op::Advance(s) => d.advance(Duration::from_secs(s)),
                Op::FailNextCreate => d.broker.backend_mut().fail_next(1),
                Op::Edit(n, c) => {
                    config.0.lock().unwrap().insert(NETS[n], c);
                }
                Op::Reload => {
                    d.broker.reload(d.now);
                    d.settle();
                    reloaded = true;
                }
            }
            if let Err(e) = d.broker.check_invariants() {
                return Err(TestCaseError::fail(e));
            }
            let current: BTreeMap<&str, Conf> = config.0.lock().unwrap().clone();
            let status = d.broker.status(d.now, None);
            for (i, net) in NETS.iter().enumerate() {
                let expected = model.values().filter(|h| h.contains(&i)).count();
                let live = status.networks.iter().find(|s| s.name == *net);
                match live {
                    None => {
                        prop_assert_eq!(expected, 0, "{} held but not live", net);
                        before.remove(&i);
                    }
                    Some(s) => {
                        prop_assert_eq!(s.holders, expected, "holders of {}", net);
                        // The subnet the network has is the one it was
                        // created with (from some configuration of it).
                        let third = s.info.subnet.octets()[2] - 100;
                        let persistent = d.broker.is_persistent(net);
                        let now_conf = Conf::Net { third, persistent };
                        if let Some((was, holders)) = before.get(&i)
                            && *holders > 0
                            && s.holders > 0
                        {
                            prop_assert_eq!(*was, now_conf, "a held {} changed", net);
                        }
                        before.insert(i, (now_conf, s.holders));
                        if s.configuration_pending {
                            prop_assert!(s.holders > 0, "{} pending while idle", net);
                        }
                        if reloaded && s.holders == 0 {
                            let cur = current.get(net).copied().unwrap_or(Conf::Gone);
                            if cur != Conf::Broken {
                                prop_assert_eq!(cur, now_conf, "idle {} out of date after reload", net);
                            }
                        }
                    }
                }
                if reloaded
                    && let Some(Conf::Net { persistent: true, .. }) = current.get(net)
                {
                    let waiting = d.broker.waiting_persistent().iter().any(|(n, _)| n == net);
                    prop_assert!(live.is_some() || waiting, "persistent {} neither live nor waiting", net);
                }
            }
            for e in d.take_events() {
                if e == Event::IdleExit {
                    prop_assert!(model.is_empty(), "idle exit with clients connected");
                    prop_assert!(!d.broker.keeps_running(), "idle exit with persistent networks");
                }
            }
            prop_assert_eq!(d.broker.backend().live_count(), d.broker.network_count());
        }
    }
}
