//! Persistent networks and configuration changes, through the broker.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vmnet_broker_proto::{Mode, NetworkName, Request, Status};

use super::*;
use crate::backend::sim::SimBackend;
use crate::config::{Ipv4Subnet, NetworkConfig, StaticConfig};
use crate::testing::Harness;

/// A configuration the test edits while the broker runs.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<StaticConfig>>);

impl Shared {
    fn edit(&self, f: impl FnOnce(StaticConfig) -> StaticConfig) {
        let mut guard = self.0.lock().unwrap();
        let old = std::mem::take(&mut *guard);
        *guard = f(old);
    }
}

impl ConfigSource for Shared {
    fn lookup(&self, name: &NetworkName) -> Lookup {
        self.0.lock().unwrap().lookup(name)
    }
    fn configured_names(&self) -> Vec<NetworkName> {
        self.0.lock().unwrap().configured_names()
    }
}

/// The shared harness, with the configuration the test edits.
struct T {
    h: Harness<SimBackend, Shared>,
    config: Shared,
}

impl std::ops::Deref for T {
    type Target = Harness<SimBackend, Shared>;
    fn deref(&self) -> &Self::Target {
        &self.h
    }
}

impl std::ops::DerefMut for T {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.h
    }
}

const IDLE: Duration = Duration::from_secs(120);

fn persistent(mode: Mode) -> NetworkConfig {
    let mut c = NetworkConfig::new(mode);
    c.persistent = true;
    c
}

fn with_subnet(mut c: NetworkConfig, third: u8) -> NetworkConfig {
    c.ipv4 = Some(Ipv4Subnet::new(
        std::net::Ipv4Addr::new(192, 168, third, 0),
        24,
    ));
    c
}

impl T {
    fn new(config: StaticConfig) -> Self {
        let config = Shared(Arc::new(Mutex::new(config)));
        let now = Instant::now();
        let broker = Broker::new(
            BrokerOptions::default(),
            SimBackend::new(1),
            config.clone(),
            NoAccounts,
            DaemonInfo::default(),
            now,
        );
        Self {
            h: Harness::new(broker, now),
            config,
        }
    }

    fn reload(&mut self) -> ReloadSummary {
        let now = self.now;
        let s = self.broker.reload(now);
        self.settle();
        s
    }

    fn connect(&mut self, id: u64) {
        let creds = ClientCredentials {
            pid: 1,
            uid: 501,
            gid: 20,
        };
        self.h.connect(id, creds).unwrap();
    }

    fn acquire(&mut self, id: u64, net: &str) -> Result<NetworkInfo, Status> {
        let network = NetworkName::new(net).unwrap();
        match self.request(id, Request::Acquire { network }) {
            Reply::Acquired { info, .. } => Ok(info),
            Reply::AcquireFailed(e) => Err(e.status()),
            Reply::Error(s) => Err(s),
            other => panic!("{other:?}"),
        }
    }

    fn exited(&self) -> bool {
        self.events.contains(&Event::IdleExit)
    }
}

#[test]
fn persistent_networks_start_stay_and_keep_the_broker_running() {
    let mut t = T::new(StaticConfig::new().with("always", persistent(Mode::Host)));
    let s = t.reload();
    assert_eq!(s.started, ["always"], "{s}");
    assert!(t.broker.is_persistent("always"));
    assert_eq!(t.broker.holders("always"), Some(0));
    // No peer ever comes: no removal, no exit.
    t.advance(IDLE * 10);
    assert_eq!(t.broker.network_count(), 1);
    assert!(!t.exited());
    // A client uses it and leaves: still there.
    t.connect(1);
    let first = t.acquire(1, "always").unwrap();
    t.disconnect(1);
    t.advance(IDLE * 3);
    assert_eq!(t.broker.network_count(), 1);
    assert_eq!(t.acquire_after_reconnect(2, "always"), first);
    assert!(!t.exited());
}

impl T {
    fn acquire_after_reconnect(&mut self, id: u64, net: &str) -> NetworkInfo {
        self.connect(id);
        let info = self.acquire(id, net).unwrap();
        self.disconnect(id);
        info
    }
}

#[test]
fn failed_persistent_creations_are_retried_with_backoff() {
    let mut t = T::new(StaticConfig::new().with("always", persistent(Mode::Host)));
    t.broker.backend_mut().fail_next(4);
    let s = t.reload();
    assert_eq!(s.retrying, ["always"], "{s}");
    assert_eq!(t.broker.waiting_persistent(), [("always".to_owned(), 1)]);
    // The reload's attempt and those at +1, +3 and +7 s fail (waits of 1,
    // 2 and 4 s); the one 8 s later succeeds.
    let start = t.now;
    let mut attempts = Vec::new();
    while t.broker.network_count() == 0 {
        let next = t.broker.poll_timeout().unwrap();
        attempts.push(next.duration_since(start).as_secs());
        let step = next - t.now;
        t.advance(step);
    }
    assert_eq!(attempts, [1, 3, 7, 15]);
    assert!(t.broker.waiting_persistent().is_empty());
    assert!(!t.exited(), "a waiting persistent network keeps the broker");
}

#[test]
fn an_acquire_of_a_waiting_persistent_network_tries_at_once() {
    let mut t = T::new(StaticConfig::new().with("always", persistent(Mode::Host)));
    t.broker.backend_mut().fail_next(1);
    t.reload();
    t.connect(1);
    assert!(t.acquire(1, "always").is_ok());
    assert!(t.broker.waiting_persistent().is_empty());
    assert_eq!(
        t.broker.poll_timeout(),
        None,
        "no retry left, peer connected"
    );
}

#[test]
fn the_broker_exits_once_nothing_is_persistent_any_more() {
    let mut t = T::new(StaticConfig::new().with("always", persistent(Mode::Host)));
    t.reload();
    t.advance(IDLE * 2);
    assert!(!t.exited());
    t.config.edit(|c| c.without("always"));
    let s = t.reload();
    assert_eq!(s.removed, ["always"], "{s}");
    assert_eq!(t.broker.network_count(), 0);
    t.advance(IDLE);
    assert!(t.exited());
}

#[test]
fn an_idle_network_with_a_changed_file_is_created_again() {
    let mut t =
        T::new(StaticConfig::new().with("lab", with_subnet(NetworkConfig::new(Mode::Host), 105)));
    t.connect(1);
    assert_eq!(
        t.acquire(1, "lab").unwrap().subnet.to_string(),
        "192.168.105.0"
    );
    t.disconnect(1);
    t.config
        .edit(|c| c.with("lab", with_subnet(NetworkConfig::new(Mode::Host), 106)));
    t.connect(2);
    assert_eq!(
        t.acquire(2, "lab").unwrap().subnet.to_string(),
        "192.168.106.0"
    );
    assert!(t.events.contains(&Event::NetworkRemoved {
        name: NetworkName::new("lab").unwrap(),
        reason: RemovalReason::Reconfigured
    }));
}

#[test]
fn an_idle_network_whose_file_is_gone_is_removed_and_not_found() {
    let mut t = T::new(StaticConfig::new().with("lab", NetworkConfig::new(Mode::Host)));
    t.connect(1);
    t.acquire(1, "lab").unwrap();
    let network = NetworkName::new("lab").unwrap();
    let released = t.request(1, Request::Release { network });
    assert_eq!(released, Reply::Released);
    t.config.edit(|c| c.without("lab"));
    assert_eq!(t.acquire(1, "lab"), Err(Status::NOT_FOUND));
    assert_eq!(t.broker.network_count(), 0);
}

#[test]
fn a_held_network_keeps_its_configuration_until_idle() {
    let mut t =
        T::new(StaticConfig::new().with("lab", with_subnet(NetworkConfig::new(Mode::Host), 105)));
    t.connect(1);
    t.connect(2);
    t.acquire(1, "lab").unwrap();
    t.config
        .edit(|c| c.with("lab", with_subnet(NetworkConfig::new(Mode::Host), 106)));
    let s = t.reload();
    assert_eq!(s.pending, ["lab"], "{s}");
    assert!(t.broker.config_pending("lab"));
    // Another client still gets the network as it is.
    assert_eq!(
        t.acquire(2, "lab").unwrap().subnet.to_string(),
        "192.168.105.0"
    );
    t.disconnect(1);
    assert!(t.broker.config_pending("lab"));
    t.disconnect(2);
    // Idle now: the old network is gone; the next acquire gets the new one.
    assert_eq!(t.broker.network_count(), 0);
    t.connect(3);
    assert_eq!(
        t.acquire(3, "lab").unwrap().subnet.to_string(),
        "192.168.106.0"
    );
}

#[test]
fn a_broken_file_leaves_the_live_network_alone() {
    let mut t = T::new(StaticConfig::new().with("lab", persistent(Mode::Host)));
    t.reload();
    t.config.edit(|c| {
        c.with_broken(
            "lab",
            crate::config::ConfigError::Read {
                path: "lab.json".into(),
                message: "broken".into(),
            },
        )
    });
    let s = t.reload();
    assert_eq!(s.broken, ["lab"], "{s}");
    assert!(t.broker.is_persistent("lab"));
    t.connect(1);
    assert!(
        t.acquire(1, "lab").is_ok(),
        "the live network is still served"
    );
}

#[test]
fn a_persistent_network_that_changed_while_held_restarts_when_idle() {
    let mut t =
        T::new(StaticConfig::new().with("always", with_subnet(persistent(Mode::Host), 105)));
    t.reload();
    t.connect(1);
    t.acquire(1, "always").unwrap();
    t.config
        .edit(|c| c.with("always", with_subnet(persistent(Mode::Host), 107)));
    t.reload();
    t.disconnect(1);
    assert!(t.broker.is_persistent("always"));
    assert!(!t.broker.config_pending("always"));
    t.connect(2);
    assert_eq!(
        t.acquire(2, "always").unwrap().subnet.to_string(),
        "192.168.107.0"
    );
}

#[test]
fn a_persistent_network_that_fails_to_come_back_is_retried() {
    let mut t =
        T::new(StaticConfig::new().with("always", with_subnet(persistent(Mode::Host), 105)));
    t.reload();
    t.config
        .edit(|c| c.with("always", with_subnet(persistent(Mode::Host), 106)));
    // The acquire finds the file changed, removes the idle network, and
    // the new creation fails (both the try with the remembered IPv6 prefix
    // and the one without): the network is retried, not forgotten.
    t.broker.backend_mut().fail_next(2);
    t.connect(1);
    assert_eq!(t.acquire(1, "always"), Err(Status::CREATE_FAILURE));
    assert_eq!(t.broker.waiting_persistent(), [("always".to_owned(), 1)]);
    t.disconnect(1);
    t.advance(Duration::from_secs(1));
    assert!(t.broker.is_persistent("always"));
    assert!(t.broker.waiting_persistent().is_empty());
    t.advance(IDLE * 2);
    assert!(!t.exited());
}

/// `status` lists a persistent network waiting for its next attempt, with
/// its failed attempts, the last error and the time left, and drops it once
/// it is live.
#[test]
fn status_lists_waiting_persistent_networks() {
    let config = StaticConfig::new().with("always", persistent(Mode::Host));
    let mut h = crate::testing::Harness::sim(BrokerOptions::default(), config, NoAccounts, 1);
    h.broker.backend_mut().fail_next(2);
    let now = h.now;
    h.broker.reload(now);
    h.settle();
    let report = h.broker.status(h.now, None);
    assert!(report.networks.is_empty());
    assert_eq!(report.waiting_networks.len(), 1, "{report:?}");
    let waiting = &report.waiting_networks[0];
    assert_eq!(waiting.name, "always");
    assert_eq!(waiting.failed_attempts, 1);
    assert!(
        waiting.last_error.contains("next creation set to fail"),
        "{}",
        waiting.last_error
    );
    assert!((waiting.retry_in_seconds - 1.0).abs() < 1e-9, "{waiting:?}");

    // Half a second later, half a second is left.
    h.advance(Duration::from_millis(500));
    let waiting = h.broker.status(h.now, None).waiting_networks[0].clone();
    assert!((waiting.retry_in_seconds - 0.5).abs() < 1e-9, "{waiting:?}");

    // The attempt at 1 s fails too: two failures, next try 2 s later.
    h.advance(Duration::from_millis(500));
    let waiting = h.broker.status(h.now, None).waiting_networks[0].clone();
    assert_eq!(waiting.failed_attempts, 2);
    assert!((waiting.retry_in_seconds - 2.0).abs() < 1e-9, "{waiting:?}");

    // The one at 3 s succeeds: live, no longer waiting, and the report's
    // JSON has no `waiting_networks` key.
    h.advance(Duration::from_secs(2));
    let report = h.broker.status(h.now, None);
    assert!(report.waiting_networks.is_empty(), "{report:?}");
    assert_eq!(report.networks.len(), 1);
    let json = serde_json::to_value(&report).unwrap();
    assert!(json.get("waiting_networks").is_none(), "{json}");
}
