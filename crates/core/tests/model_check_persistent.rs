#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Exhaustive exploration of persistent networks and configuration changes
//! in a small world.
//!
//! Two client slots; two networks, `always` (persistent in version A, not in
//! version B) and `lab` (never persistent), each with a configuration the
//! test switches between two versions (two subnets); operations: connect,
//! disconnect, acquire, release, fire the next deadline, a clock tick, edit
//! a network's file, reload (SIGHUP), and a switch that makes every backend
//! creation fail. Every operation is tried in every reachable state,
//! breadth first, up to a fixed depth; states are merged by an abstract key.
//! States are rebuilt by replaying their traces (the broker cannot be
//! cloned; the simulation is deterministic).
//!
//! In every state the checker requires the broker's invariants and these
//! rules:
//!
//! - holder counts match the clients' holds;
//! - a network held before and after an operation keeps its subnet;
//! - a configuration change is pending only while the network is held;
//! - no IdleExit while clients are connected or a persistent network is
//!   live or waiting;
//! - the backend has exactly the broker's live networks.
//!
//! And from every state it checks that things settle: with failures off,
//! everyone gone and a reload, after time passes exactly the persistent
//! networks of the current configuration are live, with its subnets, and
//! the broker does not exit; once nothing is persistent (files edited,
//! reload), every network goes and IdleExit is reported.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vmnet_broker_core::backend::sim::{FailurePlan, SimBackend};
use vmnet_broker_core::broker::{BrokerOptions, ClientCredentials, Event, NoAccounts, Reply};
use vmnet_broker_core::config::{ConfigSource, Ipv4Subnet, Lookup, NetworkConfig};
use vmnet_broker_core::proto::{Mode, NetworkName, Request};
use vmnet_broker_core::testing::Harness;

const SLOTS: usize = 2;
const NETS: [&str; 2] = ["always", "lab"];
const NET_IDLE: Duration = Duration::from_secs(10);
const EXIT_IDLE: Duration = Duration::from_secs(15);
const TICK: Duration = Duration::from_secs(4);
const MAX_DEPTH: usize = 8;
const MIN_STATES: usize = 2_000;

/// The configuration: a version per network.
#[derive(Clone, Default)]
struct Files(Arc<Mutex<[u8; 2]>>);

fn config_of(net: usize, version: u8) -> NetworkConfig {
    let mut c = NetworkConfig::new(Mode::Host);
    c.ipv4 = Some(Ipv4Subnet::new(
        std::net::Ipv4Addr::new(192, 168, 100 + 10 * u8::try_from(net).unwrap() + version, 0),
        24,
    ));
    c.persistent = net == 0 && version == 0;
    c
}

impl ConfigSource for Files {
    fn lookup(&self, name: &NetworkName) -> Lookup {
        let v = *self.0.lock().unwrap();
        match NETS.iter().position(|n| *n == name.as_str()) {
            Some(i) => Lookup::Found(config_of(i, v[i])),
            None => Lookup::NotFound,
        }
    }
    fn configured_names(&self) -> Vec<NetworkName> {
        NETS.iter().map(|n| NetworkName::new(n).unwrap()).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Connect(usize),
    Disconnect(usize),
    Acquire(usize, usize),
    Release(usize, usize),
    FireTimer,
    Tick,
    Edit(usize),
    Reload,
    ToggleFailure,
}

struct World {
    d: Harness<SimBackend, Files>,
    files: Files,
    ids: [Option<u64>; SLOTS],
    held: [BTreeSet<usize>; SLOTS],
    next_id: u64,
    failing: bool,
}

impl World {
    fn new() -> Self {
        let options = BrokerOptions {
            network_idle_timeout: NET_IDLE,
            exit_idle_timeout: Some(EXIT_IDLE),
            ..BrokerOptions::default()
        };
        let files = Files::default();
        let mut d = Harness::sim(options, files.clone(), NoAccounts, 5);
        d.check = false;
        d.broker.reload(d.now);
        d.settle();
        Self {
            d,
            files,
            ids: [None; SLOTS],
            held: Default::default(),
            next_id: 1,
            failing: false,
        }
    }

    fn replay(trace: &[Op]) -> Self {
        let mut w = Self::new();
        for op in trace {
            w.apply(*op).unwrap();
        }
        w
    }

    fn ops(&self) -> Vec<Op> {
        let mut ops = vec![
            Op::FireTimer,
            Op::Tick,
            Op::Edit(0),
            Op::Edit(1),
            Op::Reload,
            Op::ToggleFailure,
        ];
        for s in 0..SLOTS {
            if self.ids[s].is_some() {
                ops.push(Op::Disconnect(s));
                for n in 0..NETS.len() {
                    ops.push(Op::Acquire(s, n));
                    ops.push(Op::Release(s, n));
                }
            } else {
                ops.push(Op::Connect(s));
            }
        }
        ops
    }

    fn subnets(&self) -> BTreeMap<String, (String, usize, bool)> {
        self.d
            .broker
            .status(self.d.now, None)
            .networks
            .into_iter()
            .map(|n| {
                (
                    n.name,
                    (
                        n.info.subnet.to_string(),
                        n.holders,
                        n.configuration_pending,
                    ),
                )
            })
            .collect()
    }

    fn apply(&mut self, op: Op) -> Result<(), String> {
        let before = self.subnets();
        match op {
            Op::Connect(s) => {
                let id = self.next_id;
                self.next_id += 1;
                self.d
                    .connect(
                        id,
                        ClientCredentials {
                            pid: 1,
                            uid: 501,
                            gid: 20,
                        },
                    )
                    .map_err(|e| e.to_string())?;
                self.ids[s] = Some(id);
            }
            Op::Disconnect(s) => {
                let id = self.ids[s].take().ok_or("not connected")?;
                self.d.disconnect(id);
                self.held[s].clear();
            }
            Op::Acquire(s, n) => {
                let id = self.ids[s].ok_or("not connected")?;
                let r = self.d.request(
                    id,
                    Request::Acquire {
                        network: NetworkName::new(NETS[n]).unwrap(),
                    },
                );
                if matches!(r, Reply::Acquired { .. }) {
                    self.held[s].insert(n);
                }
            }
            Op::Release(s, n) => {
                let id = self.ids[s].ok_or("not connected")?;
                let _ = self.d.request(
                    id,
                    Request::Release {
                        network: NetworkName::new(NETS[n]).unwrap(),
                    },
                );
                self.held[s].remove(&n);
            }
            Op::FireTimer => {
                let _ = self.d.fire_next();
            }
            Op::Tick => self.d.advance(TICK),
            Op::Edit(n) => {
                self.files.0.lock().unwrap()[n] ^= 1;
            }
            Op::Reload => {
                self.d.broker.reload(self.d.now);
                self.d.settle();
            }
            Op::ToggleFailure => {
                self.failing = !self.failing;
                self.d.broker.backend_mut().set_failures(FailurePlan {
                    all: self.failing,
                    ..FailurePlan::default()
                });
            }
        }
        self.check(&before, op)
    }

    fn check(
        &mut self,
        before: &BTreeMap<String, (String, usize, bool)>,
        op: Op,
    ) -> Result<(), String> {
        let ctx = |e: String| format!("after {op:?}: {e}");
        self.d.broker.check_invariants().map_err(ctx)?;
        let now = self.subnets();
        for (i, net) in NETS.iter().enumerate() {
            let expected = self.held.iter().filter(|h| h.contains(&i)).count();
            let got = now.get(*net).map_or(0, |n| n.1);
            if got != expected {
                return Err(ctx(format!("{net} has {got} holders, expected {expected}")));
            }
            if let (Some(b), Some(a)) = (before.get(*net), now.get(*net))
                && b.1 > 0
                && a.1 > 0
                && b.0 != a.0
            {
                return Err(ctx(format!("held {net} changed subnet {} -> {}", b.0, a.0)));
            }
            if let Some(a) = now.get(*net)
                && a.2
                && a.1 == 0
            {
                return Err(ctx(format!("{net} has a pending change while idle")));
            }
        }
        for e in self.d.take_events() {
            if e == Event::IdleExit {
                if self.ids.iter().any(Option::is_some) {
                    return Err(ctx("idle exit with clients".into()));
                }
                if self.d.broker.keeps_running() {
                    return Err(ctx("idle exit with a persistent network".into()));
                }
            }
        }
        if self.d.broker.backend().live_count() != self.d.broker.network_count() {
            return Err(ctx("backend and broker disagree on live networks".into()));
        }
        Ok(())
    }

    /// Everyone leaves, failures stop, the configuration is read again and
    /// time passes: exactly the persistent networks of the current files
    /// are live, and the broker stays. Then nothing is persistent any more:
    /// everything goes and the broker reports IdleExit.
    fn settles(mut self) -> Result<(), String> {
        for s in 0..SLOTS {
            if self.ids[s].is_some() {
                self.apply(Op::Disconnect(s))?;
            }
        }
        if self.failing {
            self.apply(Op::ToggleFailure)?;
        }
        self.apply(Op::Reload)?;
        self.d.advance(Duration::from_secs(200));
        let versions = *self.files.0.lock().unwrap();
        let live = self.subnets();
        for (i, net) in NETS.iter().enumerate() {
            let want = config_of(i, versions[i]);
            match (want.persistent, live.get(*net)) {
                (true, Some((subnet, _, _))) => {
                    let expected = want.ipv4.unwrap().network().to_string();
                    if *subnet != expected {
                        return Err(format!(
                            "persistent {net} on {subnet}, configured {expected}"
                        ));
                    }
                }
                (true, None) => return Err(format!("persistent {net} is not live after settling")),
                (false, Some(_)) => return Err(format!("{net} is still live after settling")),
                (false, None) => {}
            }
        }
        if self.d.take_events().contains(&Event::IdleExit) == self.d.broker.keeps_running() {
            return Err("idle exit does not match the persistent networks".into());
        }
        // Nothing persistent any more.
        if versions[0] == 0 {
            self.apply(Op::Edit(0))?;
        }
        self.apply(Op::Reload)?;
        self.d.advance(Duration::from_secs(200));
        if self.d.broker.network_count() != 0 {
            return Err("networks left once nothing is persistent".into());
        }
        if !self.d.take_events().contains(&Event::IdleExit)
            && self.d.broker.poll_timeout().is_some()
        {
            return Err("no idle exit once nothing is persistent".into());
        }
        Ok(())
    }

    fn key(&self) -> String {
        let status = self.subnets();
        format!(
            "{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}",
            self.ids.map(|i| i.is_some()),
            self.held,
            status,
            *self.files.0.lock().unwrap(),
            self.failing,
            self.d.broker.waiting_persistent(),
            self.d
                .broker
                .poll_timeout()
                .map(|t| t.saturating_duration_since(self.d.now)),
        )
    }
}

#[test]
fn exhaustive_exploration_of_persistent_and_pending_states() {
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<Vec<Op>> = VecDeque::new();
    let start = World::new();
    seen.insert(start.key());
    queue.push_back(Vec::new());
    let mut states = 1;
    while let Some(trace) = queue.pop_front() {
        if trace.len() >= MAX_DEPTH {
            continue;
        }
        let ops = World::replay(&trace).ops();
        for op in ops {
            let mut w = World::replay(&trace);
            let mut next = trace.clone();
            next.push(op);
            if let Err(e) = w.apply(op) {
                panic!("violation after {next:?}: {e}");
            }
            let key = w.key();
            if seen.insert(key) {
                states += 1;
                if let Err(e) = w.settles() {
                    panic!("does not settle after {next:?}: {e}");
                }
                queue.push_back(next);
            }
        }
    }
    assert!(states >= MIN_STATES, "only {states} states explored");
    eprintln!("{states} states explored");
}
