#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Exhaustive exploration of the broker state machine in a small world.
//!
//! Three client slots, three networks (`shared`, `host`, and `flaky`, whose
//! backend creation fails while a switch is on), at most two networks per
//! client. From the initial state, every operation is tried in every
//! reachable state, breadth first, up to a fixed depth; states are merged by
//! an abstract key (who holds what, which networks are live, deadlines
//! relative to now, the failure switch).
//!
//! The broker cannot be cloned, so a state is kept as the operations that
//! lead to it and rebuilt by replaying them (the simulated backend is
//! deterministic).
//!
//! After every transition the checker compares the broker with a reference
//! model: holder counts, which networks are live, reply statuses, the next
//! deadline, and the events (no held network removed, idle exit only with no
//! clients and after the delay). For every new state it then lets everyone
//! leave and time pass, and requires that nothing is left: no network in the
//! broker, none in the backend, and the idle exit reported.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use vmnet_broker_core::backend::sim::{FailurePlan, SimBackend};
use vmnet_broker_core::broker::{
    BrokerOptions, ClientCredentials, ClientId, Event, NoAccounts, Reply,
};
use vmnet_broker_core::config::{NetworkConfig, StaticConfig};
use vmnet_broker_core::proto::{Mode, NetworkName, Request, Status};
use vmnet_broker_core::testing::Harness;

const SLOTS: usize = 3;
const NETS: [&str; 3] = ["shared", "host", "flaky"];
const FLAKY: usize = 2;
const PER_CLIENT: usize = 2;
const NET_IDLE: Duration = Duration::from_secs(10);
const EXIT_IDLE: Duration = Duration::from_secs(15);
/// A small clock step, so that deadlines can be at different distances.
const TICK: Duration = Duration::from_secs(4);
const MAX_DEPTH: usize = 9;
/// The exploration must reach at least this many distinct states.
const MIN_STATES: usize = 3_500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Connect(usize),
    Disconnect(usize),
    Acquire(usize, usize),
    Release(usize, usize),
    /// Advance the clock to the broker's next deadline and fire it.
    FireTimer,
    /// Advance the clock by [`TICK`].
    Tick,
    /// Toggle whether creating `flaky` fails in the backend.
    ToggleFailure,
}

/// What the broker should look like.
#[derive(Debug, Default, Clone)]
struct Model {
    /// Slot -> networks held (by index), for connected slots.
    clients: BTreeMap<usize, Vec<usize>>,
    /// Live networks: index -> idle since (None while held).
    live: BTreeMap<usize, Option<Instant>>,
    exit_deadline: Option<Instant>,
    failing: bool,
}

impl Model {
    fn holders(&self, net: usize) -> usize {
        self.clients.values().filter(|h| h.contains(&net)).count()
    }
}

struct World {
    /// The broker and its fake clock.
    d: Harness<SimBackend, StaticConfig>,
    model: Model,
    ids: [Option<u64>; SLOTS],
    next_id: u64,
    /// Whether to compare with the model after each step.
    checking: bool,
}

fn name(net: usize) -> NetworkName {
    NetworkName::new(NETS[net]).unwrap()
}

impl World {
    fn new() -> Self {
        let options = BrokerOptions {
            network_idle_timeout: NET_IDLE,
            exit_idle_timeout: Some(EXIT_IDLE),
            max_networks_per_client: PER_CLIENT,
            ..BrokerOptions::default()
        };
        let config = StaticConfig::new().with("flaky", NetworkConfig::new(Mode::Host));
        let mut d = Harness::sim(options, config, NoAccounts, 3);
        // `check_state` checks the invariants, naming the operation.
        d.check = false;
        let start = d.now;
        Self {
            d,
            model: Model {
                exit_deadline: Some(start + EXIT_IDLE),
                ..Model::default()
            },
            ids: [None; SLOTS],
            next_id: 1,
            checking: true,
        }
    }

    fn replay(trace: &[Op]) -> Self {
        let mut w = Self::new();
        // Every step was checked when the state was first reached.
        w.checking = false;
        for (i, op) in trace.iter().enumerate() {
            if let Err(e) = w.apply(*op) {
                panic!("replay failed at step {i} of {trace:?}: {e}");
            }
        }
        w.checking = true;
        w
    }

    /// Operations that make sense in this state.
    fn ops(&self) -> Vec<Op> {
        let mut ops = Vec::new();
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
        if self.d.broker.poll_timeout().is_some() {
            ops.push(Op::FireTimer);
        }
        ops.push(Op::Tick);
        ops.push(Op::ToggleFailure);
        ops
    }

    /// Drops the holds of a slot in the model.
    fn model_drop(&mut self, net: usize) {
        if self.model.holders(net) == 0
            && let Some(idle) = self.model.live.get_mut(&net)
        {
            *idle = Some(self.d.now);
        }
    }

    /// Applies the model's view of time passing to `self.d.now`; returns
    /// whether an idle exit is due.
    fn model_time(&mut self) -> bool {
        let now = self.d.now;
        self.model
            .live
            .retain(|_, idle| !idle.is_some_and(|t| t + NET_IDLE <= now));
        match self.model.exit_deadline {
            Some(t) if t <= now && self.model.clients.is_empty() => {
                self.model.exit_deadline = None;
                true
            }
            _ => false,
        }
    }

    fn apply(&mut self, op: Op) -> Result<(), String> {
        let mut exit_due = false;
        match op {
            Op::Connect(s) => {
                let id = self.next_id;
                self.next_id += 1;
                let creds = ClientCredentials {
                    pid: 100 + i32::try_from(s).unwrap(),
                    uid: 501,
                    gid: 20,
                };
                self.d
                    .connect(id, creds)
                    .map_err(|e| format!("connect refused: {e}"))?;
                self.ids[s] = Some(id);
                self.model.clients.insert(s, Vec::new());
                self.model.exit_deadline = None;
            }
            Op::Disconnect(s) => {
                let id = self.ids[s].take().ok_or("disconnect of a free slot")?;
                self.d.disconnect(id);
                let held = self.model.clients.remove(&s).unwrap_or_default();
                for n in held {
                    self.model_drop(n);
                }
                if self.model.clients.is_empty() {
                    self.model.exit_deadline = Some(self.d.now + EXIT_IDLE);
                }
            }
            Op::Acquire(s, n) => {
                let id = self.ids[s].ok_or("acquire from a free slot")?;
                let reply = self.d.request(id, Request::Acquire { network: name(n) });
                let held = self.model.clients.get(&s).cloned().unwrap_or_default();
                let expected = if held.contains(&n) {
                    Status::SUCCESS
                } else if held.len() >= PER_CLIENT {
                    Status::INTERNAL_ERROR
                } else if !self.model.live.contains_key(&n) && n == FLAKY && self.model.failing {
                    Status::CREATE_FAILURE
                } else {
                    Status::SUCCESS
                };
                if reply.status() != expected {
                    return Err(format!(
                        "{op:?}: got {:?}, want {expected:?}",
                        reply.status()
                    ));
                }
                if let Reply::Acquired { info, .. } = &reply
                    && info.mode != if n == 0 { Mode::Shared } else { Mode::Host }
                {
                    return Err(format!("{op:?}: wrong mode {:?}", info.mode));
                }
                if expected == Status::SUCCESS && !held.contains(&n) {
                    self.model.clients.entry(s).or_default().push(n);
                    self.model.live.insert(n, None);
                }
            }
            Op::Release(s, n) => {
                let id = self.ids[s].ok_or("release from a free slot")?;
                let reply = self.d.request(id, Request::Release { network: name(n) });
                let held = self.model.clients.entry(s).or_default();
                let was_held = held.contains(&n);
                held.retain(|x| *x != n);
                let expected = if was_held {
                    Status::SUCCESS
                } else {
                    Status::NOT_FOUND
                };
                if reply.status() != expected {
                    return Err(format!(
                        "{op:?}: got {:?}, want {expected:?}",
                        reply.status()
                    ));
                }
                if was_held {
                    self.model_drop(n);
                }
            }
            Op::FireTimer => {
                let before = self.d.now;
                let t = self.d.fire_next().ok_or("no timer to fire")?;
                if t < before {
                    return Err("a deadline in the past".into());
                }
                exit_due = self.model_time();
            }
            Op::Tick => {
                self.d.advance(TICK);
                exit_due = self.model_time();
            }
            Op::ToggleFailure => {
                self.model.failing = !self.model.failing;
                let names = if self.model.failing {
                    vec![NETS[FLAKY].to_owned()]
                } else {
                    vec![]
                };
                self.d.broker.backend_mut().set_failures(FailurePlan {
                    names,
                    ..FailurePlan::default()
                });
            }
        }
        if !self.checking {
            self.d.events.clear();
            return Ok(());
        }
        self.check_events(op, exit_due)?;
        self.check_state(op)
    }

    fn check_events(&mut self, op: Op, exit_due: bool) -> Result<(), String> {
        let mut exits = 0;
        for event in self.d.take_events() {
            match event {
                Event::IdleExit => {
                    if !self.model.clients.is_empty() || self.d.broker.client_count() != 0 {
                        return Err(format!("{op:?}: idle exit with clients connected"));
                    }
                    exits += 1;
                }
                Event::NetworkRemoved { name, .. } => {
                    let n = NETS.iter().position(|x| *x == name.as_str()).unwrap();
                    if self.model.holders(n) > 0 {
                        return Err(format!("{op:?}: held network {name} was removed"));
                    }
                    if self.model.live.contains_key(&n) {
                        return Err(format!("{op:?}: {name} removed before its idle delay"));
                    }
                }
                Event::NetworkCreated { .. } => {}
            }
        }
        if exits != usize::from(exit_due) {
            return Err(format!(
                "{op:?}: {exits} idle exits, expected {}",
                u8::from(exit_due)
            ));
        }
        Ok(())
    }

    fn check_state(&self, op: Op) -> Result<(), String> {
        self.d
            .broker
            .check_invariants()
            .map_err(|e| format!("{op:?}: {e}"))?;
        for (n, net) in NETS.iter().enumerate() {
            let want = self
                .model
                .live
                .contains_key(&n)
                .then(|| self.model.holders(n));
            if self.d.broker.holders(net) != want {
                return Err(format!(
                    "{op:?}: {net} holders {:?}, model {want:?}",
                    self.d.broker.holders(net)
                ));
            }
        }
        for (s, held) in &self.model.clients {
            let mut got: Vec<String> = self
                .d
                .broker
                .held_by(ClientId(self.ids[*s].ok_or("model slot without id")?))
                .ok_or("connected slot unknown to the broker")?
                .iter()
                .map(|n| n.to_string())
                .collect();
            let mut want: Vec<String> = held.iter().map(|n| NETS[*n].to_owned()).collect();
            got.sort();
            want.sort();
            if got != want {
                return Err(format!("{op:?}: slot {s} holds {got:?}, model {want:?}"));
            }
        }
        if self.d.broker.client_count() != self.model.clients.len() {
            return Err(format!("{op:?}: client count differs"));
        }
        if self.d.broker.backend().live_count() != self.model.live.len() {
            return Err(format!(
                "{op:?}: backend has {} networks, model {}",
                self.d.broker.backend().live_count(),
                self.model.live.len()
            ));
        }
        let removals = self.model.live.values().flatten().map(|t| *t + NET_IDLE);
        let want = removals.chain(self.model.exit_deadline).min();
        if self.d.broker.poll_timeout() != want {
            return Err(format!("{op:?}: next deadline differs from the model"));
        }
        Ok(())
    }

    /// Everyone leaves and time passes: nothing may be left.
    fn check_quiescence(mut self) -> Result<(), String> {
        for s in 0..SLOTS {
            if self.ids[s].is_some() {
                self.apply(Op::Disconnect(s))?;
            }
        }
        let mut exited = self.model.exit_deadline.is_none();
        for _ in 0..10 {
            if self.d.broker.poll_timeout().is_none() {
                break;
            }
            self.apply(Op::FireTimer)?;
            exited |= self.model.exit_deadline.is_none();
        }
        if self.d.broker.network_count() != 0 || self.d.broker.backend().live_count() != 0 {
            return Err("networks left after everyone left".into());
        }
        let (created, destroyed) = self.d.broker.backend().totals();
        if created != destroyed {
            return Err(format!("backend created {created}, destroyed {destroyed}"));
        }
        if !exited || self.d.broker.poll_timeout().is_some() {
            return Err("the broker never became idle".into());
        }
        Ok(())
    }

    /// The abstract state: equal keys behave the same from here on.
    fn key(&self) -> Vec<i64> {
        let rel = |t: Option<Instant>| -> i64 {
            t.map_or(-1, |t| {
                i64::try_from(t.saturating_duration_since(self.d.now).as_millis()).unwrap()
            })
        };
        let mut key = Vec::new();
        for s in 0..SLOTS {
            key.push(match self.model.clients.get(&s) {
                None => -1,
                Some(h) => h.iter().map(|n| 1i64 << n).sum(),
            });
        }
        for n in 0..NETS.len() {
            key.push(match self.model.live.get(&n) {
                None => -2,
                Some(None) => -1,
                Some(Some(t)) => rel(Some(*t + NET_IDLE)),
            });
        }
        key.push(rel(self.model.exit_deadline));
        key.push(i64::from(self.model.failing));
        key
    }
}

#[test]
fn exhaustive_exploration_finds_no_violation() {
    let mut seen: HashSet<Vec<i64>> = HashSet::new();
    let mut frontier: VecDeque<Vec<Op>> = VecDeque::new();
    seen.insert(World::new().key());
    frontier.push_back(Vec::new());
    let mut transitions = 0usize;
    let mut per_depth = vec![0usize; MAX_DEPTH + 1];
    per_depth[0] = 1;

    while let Some(trace) = frontier.pop_front() {
        if trace.len() >= MAX_DEPTH {
            continue;
        }
        let ops = World::replay(&trace).ops();
        for op in ops {
            let mut w = World::replay(&trace);
            transitions += 1;
            if let Err(e) = w.apply(op) {
                panic!("violation after {trace:?} then {op:?}: {e}");
            }
            if !seen.insert(w.key()) {
                continue;
            }
            let mut next = trace.clone();
            next.push(op);
            per_depth[next.len()] += 1;
            if let Err(e) = w.check_quiescence() {
                panic!("leak after {next:?}: {e}");
            }
            frontier.push_back(next);
        }
    }
    println!(
        "model check: {} states, {transitions} transitions, depth {MAX_DEPTH}, new states per depth {per_depth:?}",
        seen.len()
    );
    assert!(
        seen.len() >= MIN_STATES,
        "explored only {} states",
        seen.len()
    );
}

#[test]
fn the_checker_notices_a_wrong_model() {
    // A checker that cannot fail proves nothing: tamper with the model and
    // expect the comparison to object.
    let mut w = World::new();
    w.apply(Op::Connect(0)).unwrap();
    w.apply(Op::Acquire(0, 0)).unwrap();
    w.model.clients.get_mut(&0).unwrap().clear();
    assert!(w.check_state(Op::Tick).is_err());

    let mut w = World::new();
    w.apply(Op::Connect(0)).unwrap();
    w.apply(Op::ToggleFailure).unwrap();
    w.model.failing = false;
    assert!(w.apply(Op::Acquire(0, FLAKY)).is_err());
}
