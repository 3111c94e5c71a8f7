//! Deterministic tests of the state machine, driven with a fake clock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use vmnet_broker_proto::{Mode, NetworkName, Request, Status};

use super::*;
use crate::backend::BackendError;
use crate::backend::sim::SimBackend;
use crate::config::{ConfigError, Ipv4Subnet, NetworkConfig, Principal, StaticConfig};
use crate::testing::Harness;

/// A config source whose contents tests can change between lookups.
#[derive(Default)]
struct Editable(RefCell<StaticConfig>);

impl ConfigSource for Editable {
    fn lookup(&self, name: &NetworkName) -> Lookup {
        self.0.borrow().lookup(name)
    }
}

#[derive(Default)]
struct FakeAccounts {
    users: HashMap<String, u32>,
    groups: HashMap<String, u32>,
    members: HashMap<u32, Vec<u32>>,
}

impl AccountLookup for FakeAccounts {
    fn user_id(&self, name: &str) -> Option<u32> {
        self.users.get(name).copied()
    }
    fn group_id(&self, name: &str) -> Option<u32> {
        self.groups.get(name).copied()
    }
    fn is_member(&self, uid: u32, gid: u32, group: u32) -> bool {
        gid == group || self.members.get(&uid).is_some_and(|g| g.contains(&group))
    }
}

/// The shared fake-clock driver, with shorthands for these tests.
struct Fixture<C: ConfigSource = StaticConfig, A: AccountLookup = NoAccounts>(
    Harness<SimBackend, C, A>,
);

impl<C: ConfigSource, A: AccountLookup> Deref for Fixture<C, A> {
    type Target = Harness<SimBackend, C, A>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<C: ConfigSource, A: AccountLookup> DerefMut for Fixture<C, A> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

const IDLE: Duration = Duration::from_secs(120);

fn name(s: &str) -> NetworkName {
    NetworkName::new(s).unwrap()
}

fn creds(uid: u32) -> ClientCredentials {
    ClientCredentials {
        pid: 1000 + i32::try_from(uid).unwrap(),
        uid,
        gid: 20,
    }
}

impl Fixture {
    fn new() -> Self {
        Self::with(StaticConfig::new(), NoAccounts, BrokerOptions::default())
    }

    fn with_config(config: StaticConfig) -> Self {
        Self::with(config, NoAccounts, BrokerOptions::default())
    }
}

impl<C: ConfigSource, A: AccountLookup> Fixture<C, A> {
    fn with(config: C, accounts: A, options: BrokerOptions) -> Self {
        Self(Harness::sim(options, config, accounts, 1))
    }

    fn connect(&mut self, id: u64, uid: u32) {
        self.0.connect(id, creds(uid)).unwrap();
    }

    fn acquire(&mut self, id: u64, net: &str) -> Reply<serde_json::Value> {
        self.request(id, Request::Acquire { network: name(net) })
    }

    fn subnet(&mut self, id: u64, net: &str) -> String {
        match self.acquire(id, net) {
            Reply::Acquired { info, .. } => info.subnet.to_string(),
            other => panic!("acquire {net} by {id} failed: {other:?}"),
        }
    }

    fn release(&mut self, id: u64, net: &str) -> Reply<serde_json::Value> {
        self.request(id, Request::Release { network: name(net) })
    }
}

fn status<S: std::fmt::Debug>(r: &Reply<S>) -> Status {
    r.status()
}

#[test]
fn first_acquire_creates_later_ones_share() {
    let mut h = Fixture::new();
    h.connect(1, 501);
    h.connect(2, 501);
    assert_eq!(h.subnet(1, "shared"), "192.168.64.0");
    assert_eq!(h.subnet(2, "shared"), "192.168.64.0");
    assert_eq!(h.broker.holders("shared"), Some(2));
    assert_eq!(h.broker.backend().live_count(), 1);
    let created: Vec<_> = h
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, Event::NetworkCreated { .. }))
        .collect();
    assert_eq!(created.len(), 1);
    // A different network gets its own subnet.
    assert_eq!(h.subnet(1, "host"), "192.168.65.0");
}

#[test]
fn reacquiring_a_held_network_does_not_count_twice() {
    let mut h = Fixture::new();
    h.connect(1, 501);
    for _ in 0..3 {
        assert_eq!(h.subnet(1, "shared"), "192.168.64.0");
    }
    assert_eq!(h.broker.holders("shared"), Some(1));
    h.disconnect(1);
    assert_eq!(h.broker.holders("shared"), Some(0));
}

#[test]
fn last_holder_leaving_starts_the_idle_delay() {
    let mut h = Fixture::new();
    h.connect(1, 501);
    h.connect(2, 501);
    h.subnet(1, "shared");
    h.subnet(2, "shared");
    h.disconnect(1);
    assert_eq!(h.broker.holders("shared"), Some(1));
    h.advance(IDLE * 2);
    assert_eq!(
        h.broker.holders("shared"),
        Some(1),
        "still held by client 2"
    );
    h.disconnect(2);
    h.take_events();
    h.advance(IDLE - Duration::from_millis(1));
    assert_eq!(h.broker.network_count(), 1, "not removed before the delay");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.broker.network_count(), 0);
    assert_eq!(
        h.broker.backend().live_count(),
        0,
        "released in the backend"
    );
    assert!(h.take_events().contains(&Event::NetworkRemoved {
        name: name("shared"),
        reason: RemovalReason::Idle
    }));
}

#[test]
fn acquire_inside_the_delay_keeps_the_same_network() {
    let mut h = Fixture::new();
    h.connect(1, 501);
    h.subnet(1, "host"); // takes .64
    h.subnet(1, "shared"); // takes .65
    h.disconnect(1);
    h.advance(IDLE / 2);
    h.connect(2, 501);
    assert_eq!(h.subnet(2, "shared"), "192.168.65.0");
    h.advance(IDLE);
    assert_eq!(h.broker.holders("shared"), Some(1), "removal was cancelled");
    assert_eq!(
        h.broker.holders("host"),
        None,
        "the other idle network went"
    );
    assert_eq!(h.broker.backend().totals(), (2, 1));
}

#[test]
fn a_client_holds_at_most_eight_networks() {
    let mut config = StaticConfig::new();
    for i in 0..9 {
        config = config.with(&format!("n{i}"), NetworkConfig::new(Mode::Host));
    }
    let mut h = Fixture::with_config(config);
    h.connect(1, 501);
    for i in 0..8 {
        h.subnet(1, &format!("n{i}"));
    }
    assert_eq!(status(&h.acquire(1, "n8")), Status::INTERNAL_ERROR);
    assert_eq!(h.broker.holders("n8"), None, "nothing created");
    // Re-acquiring one it holds still works.
    h.subnet(1, "n3");
    // Another client can take the ninth.
    h.connect(2, 501);
    h.subnet(2, "n8");
    // After a release, the first client has room again.
    assert_eq!(status(&h.release(1, "n0")), Status::SUCCESS);
    assert_eq!(status(&h.acquire(1, "n8")), Status::SUCCESS);
}

#[test]
fn unknown_and_broken_networks_are_not_found() {
    let broken = ConfigError::Syntax {
        path: "/etc/vmnet-broker.d/bad.json".into(),
        format: "JSON",
        message: "EOF".into(),
    };
    let mut h = Fixture::with_config(StaticConfig::new().with_broken("bad", broken));
    h.connect(1, 501);
    assert_eq!(status(&h.acquire(1, "no-such-network")), Status::NOT_FOUND);
    assert_eq!(status(&h.acquire(1, "bad")), Status::NOT_FOUND);
    assert_eq!(h.subnet(1, "shared"), "192.168.64.0");
    let report = h.broker.status(h.now, None);
    assert_eq!(report.counters.failures.get("not_found"), Some(&2));
}

#[test]
fn backend_failure_leaves_no_partial_state() {
    let mut h = Fixture::new();
    h.connect(1, 501);
    h.broker.backend_mut().fail_next(1);
    assert_eq!(status(&h.acquire(1, "shared")), Status::CREATE_FAILURE);
    assert_eq!(h.broker.network_count(), 0);
    assert_eq!(h.broker.held_by(ClientId(1)), Some(&[][..]));
    assert_eq!(h.subnet(1, "shared"), "192.168.64.0");
}

#[test]
fn overlapping_static_subnet_fails_to_create() {
    let mut a = NetworkConfig::new(Mode::Host);
    a.ipv4 = Some(Ipv4Subnet::new("192.168.100.0".parse().unwrap(), 24));
    let b = a.clone();
    let mut h = Fixture::with_config(StaticConfig::new().with("a", a).with("b", b));
    h.connect(1, 501);
    assert_eq!(h.subnet(1, "a"), "192.168.100.0");
    assert_eq!(status(&h.acquire(1, "b")), Status::CREATE_FAILURE);
    assert_eq!(h.broker.holders("a"), Some(1));
}

#[test]
fn release_rules() {
    let mut h = Fixture::new();
    h.connect(1, 501);
    assert_eq!(status(&h.release(1, "shared")), Status::NOT_FOUND);
    h.subnet(1, "shared");
    assert!(matches!(h.release(1, "shared"), Reply::Released));
    assert_eq!(status(&h.release(1, "shared")), Status::NOT_FOUND);
    assert_eq!(h.broker.holders("shared"), Some(0));
    h.advance(IDLE);
    assert_eq!(h.broker.network_count(), 0);
}

#[test]
fn idle_exit_only_without_clients() {
    let mut h = Fixture::new();
    assert_eq!(h.broker.poll_timeout(), Some(h.now + IDLE));
    h.advance(IDLE / 2);
    h.connect(1, 501);
    assert_eq!(
        h.broker.poll_timeout(),
        None,
        "no deadline while a client is connected"
    );
    h.advance(IDLE * 3);
    assert!(!h.take_events().contains(&Event::IdleExit));
    h.disconnect(1);
    h.advance(IDLE - Duration::from_secs(1));
    assert!(!h.take_events().contains(&Event::IdleExit));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.take_events(), vec![Event::IdleExit]);
    h.advance(IDLE * 5);
    assert!(h.take_events().is_empty(), "reported once");
}

#[test]
fn no_idle_exit_when_disabled() {
    let options = BrokerOptions {
        exit_idle_timeout: None,
        ..BrokerOptions::default()
    };
    let mut h = Fixture::with(StaticConfig::new(), NoAccounts, options);
    assert_eq!(h.broker.poll_timeout(), None);
    h.advance(IDLE * 10);
    assert!(h.take_events().is_empty());
}

#[test]
fn poll_timeout_is_the_earliest_deadline() {
    let options = BrokerOptions {
        network_idle_timeout: Duration::from_secs(10),
        exit_idle_timeout: Some(Duration::from_secs(30)),
        ..BrokerOptions::default()
    };
    let mut h = Fixture::with(StaticConfig::new(), NoAccounts, options);
    h.connect(1, 501);
    h.subnet(1, "shared");
    h.disconnect(1);
    assert_eq!(
        h.broker.poll_timeout(),
        Some(h.now + Duration::from_secs(10))
    );
    h.advance(Duration::from_secs(10));
    assert_eq!(
        h.broker.poll_timeout(),
        Some(h.now + Duration::from_secs(20))
    );
}

#[test]
fn shutdown_releases_every_network() {
    let mut h = Fixture::new();
    h.connect(1, 501);
    h.subnet(1, "shared");
    h.subnet(1, "host");
    assert!(h.release(1, "host").status().is_success());
    h.take_events();
    assert_eq!(h.shutdown(), 2);
    assert_eq!(h.broker.backend().live_count(), 0);
    assert_eq!(h.broker.network_count(), 0);
    let removed = h
        .take_events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::NetworkRemoved {
                    reason: RemovalReason::Shutdown,
                    ..
                }
            )
        })
        .count();
    assert_eq!(removed, 2);
    assert_eq!(h.broker.held_by(ClientId(1)), Some(&[][..]));
}

#[test]
fn config_edits_apply_to_the_next_creation_only() {
    let cfg = Editable::default();
    *cfg.0.borrow_mut() = StaticConfig::new().with("lab", NetworkConfig::new(Mode::Host));
    let mut h = Fixture::with(cfg, NoAccounts, BrokerOptions::default());
    h.connect(1, 501);
    let Reply::Acquired { info, .. } = h.acquire(1, "lab") else {
        panic!()
    };
    assert_eq!(info.mode, Mode::Host);
    *h.broker.config.0.borrow_mut() =
        StaticConfig::new().with("lab", NetworkConfig::new(Mode::Shared));
    h.connect(2, 501);
    let Reply::Acquired { info, .. } = h.acquire(2, "lab") else {
        panic!()
    };
    assert_eq!(info.mode, Mode::Host, "live network unchanged");
    h.disconnect(1);
    h.disconnect(2);
    h.advance(IDLE);
    h.connect(3, 501);
    let Reply::Acquired { info, .. } = h.acquire(3, "lab") else {
        panic!()
    };
    assert_eq!(info.mode, Mode::Shared, "new creation reads the new file");
    // A deleted file makes the name unknown for the next creation.
    *h.broker.config.0.borrow_mut() = StaticConfig::empty();
    h.disconnect(3);
    h.advance(IDLE);
    h.connect(4, 501);
    assert_eq!(status(&h.acquire(4, "lab")), Status::NOT_FOUND);
}

#[test]
fn access_lists() {
    let mut users = NetworkConfig::new(Mode::Host);
    users.allowed_users = Some(vec![Principal::Id(501), Principal::Name("carol".into())]);
    let mut groups = NetworkConfig::new(Mode::Host);
    groups.allowed_groups = Some(vec![Principal::Name("vm".into())]);
    let accounts = FakeAccounts {
        users: [("carol".to_owned(), 503)].into(),
        groups: [("vm".to_owned(), 600)].into(),
        members: [(504, vec![600])].into(),
    };
    let config = StaticConfig::new()
        .with("users", users)
        .with("groups", groups);
    let mut h = Fixture::with(config, accounts, BrokerOptions::default());
    for uid in [0, 501, 502, 503, 504] {
        h.connect(u64::from(uid) + 1, uid);
    }
    let ok = |h: &mut Fixture<StaticConfig, FakeAccounts>, uid: u32, net: &str| {
        status(&h.acquire(u64::from(uid) + 1, net))
    };
    assert_eq!(ok(&mut h, 502, "users"), Status::NOT_ALLOWED);
    assert_eq!(
        h.broker.network_count(),
        0,
        "not created for a refused client"
    );
    assert_eq!(ok(&mut h, 501, "users"), Status::SUCCESS);
    assert_eq!(
        ok(&mut h, 502, "users"),
        Status::NOT_ALLOWED,
        "also when live"
    );
    assert_eq!(ok(&mut h, 503, "users"), Status::SUCCESS, "by name");
    assert_eq!(ok(&mut h, 0, "users"), Status::SUCCESS, "root always");
    assert_eq!(
        ok(&mut h, 504, "groups"),
        Status::SUCCESS,
        "supplementary group"
    );
    assert_eq!(ok(&mut h, 501, "groups"), Status::NOT_ALLOWED);
    assert_eq!(
        ok(&mut h, 502, "shared"),
        Status::SUCCESS,
        "built-ins are open"
    );
    assert_eq!(
        h.broker
            .status(h.now, None)
            .counters
            .failures
            .get("not_allowed"),
        Some(&3)
    );
}

#[test]
fn one_user_cannot_take_every_client_slot() {
    let options = BrokerOptions {
        max_clients: 10,
        max_clients_per_user: 2,
        ..BrokerOptions::default()
    };
    let mut h = Fixture::with(StaticConfig::new(), NoAccounts, options);
    h.connect(1, 501);
    h.connect(2, 501);
    assert_eq!(
        h.0.connect(3, creds(501)),
        Err(ConnectError::TooManyClientsOfUser { uid: 501, limit: 2 })
    );
    // Another user, and root, still get in.
    h.connect(4, 502);
    for id in 5..8 {
        h.connect(id, 0);
    }
    // A slot of the user's is free again once a client has gone.
    h.0.disconnect(1);
    h.connect(3, 501);
}

#[test]
fn a_client_whose_input_ended_holds_nothing_but_still_counts() {
    let options = BrokerOptions {
        max_clients_per_user: 1,
        ..BrokerOptions::default()
    };
    let mut h = Fixture::with(StaticConfig::new(), NoAccounts, options);
    h.connect(1, 501);
    h.subnet(1, "shared");
    let now = h.now;
    h.broker.handle_end_of_input(now, ClientId(1));
    // Its hold ended at once...
    assert_eq!(h.broker.holders("shared"), Some(0));
    // ...it can take no new one...
    assert_eq!(status(&h.acquire(1, "host")), Status::INTERNAL_ERROR);
    // ...and it keeps its user's slot until it is gone.
    assert!(matches!(
        h.0.connect(2, creds(501)),
        Err(ConnectError::TooManyClientsOfUser { .. })
    ));
    h.0.disconnect(1);
    h.connect(2, 501);
}

#[test]
fn limits_on_clients_and_networks() {
    let options = BrokerOptions {
        max_clients: 2,
        max_networks: 1,
        ..BrokerOptions::default()
    };
    let mut h = Fixture::with(StaticConfig::new(), NoAccounts, options);
    h.connect(1, 501);
    h.connect(2, 501);
    assert_eq!(
        h.0.connect(3, creds(501)),
        Err(ConnectError::TooManyClients { limit: 2 })
    );
    h.subnet(1, "shared");
    assert_eq!(status(&h.acquire(2, "host")), Status::CREATE_FAILURE);
    h.subnet(2, "shared");
    assert_eq!(
        h.0.connect(1, creds(501)),
        Err(ConnectError::DuplicateClient(ClientId(1)))
    );
}

#[test]
fn requests_from_unknown_clients_are_internal_errors() {
    let mut h = Fixture::new();
    assert_eq!(status(&h.acquire(9, "shared")), Status::INTERNAL_ERROR);
    assert_eq!(h.broker.network_count(), 0);
    h.disconnect(9); // ignored
}

#[test]
fn status_shows_networks_clients_and_hides_other_users() {
    let mut h = Fixture::new();
    h.connect(1, 501);
    h.connect(2, 502);
    h.connect(3, 0);
    h.subnet(1, "shared");
    h.subnet(2, "shared");
    h.subnet(2, "host");
    assert!(h.release(2, "host").status().is_success());
    h.advance(Duration::from_secs(30));
    let seen_by_1 = h.broker.status(h.now, Some(ClientId(1)));
    assert_eq!(seen_by_1.client_count, 3);
    assert_eq!(seen_by_1.hidden_clients, 2);
    assert_eq!(seen_by_1.clients.len(), 1);
    assert_eq!(seen_by_1.clients[0].networks, vec!["shared"]);
    let by_root = h.broker.status(h.now, Some(ClientId(3)));
    assert_eq!(by_root.clients.len(), 3);
    assert_eq!(by_root.hidden_clients, 0);
    let nets = &by_root.networks;
    assert_eq!(nets.len(), 2);
    assert_eq!((nets[0].name.as_str(), nets[0].holders), ("host", 0));
    assert_eq!(nets[0].idle_for_seconds, Some(30.0));
    assert_eq!(nets[0].removal_in_seconds, Some(90.0));
    assert_eq!((nets[1].name.as_str(), nets[1].holders), ("shared", 2));
    assert_eq!(nets[1].idle_for_seconds, None);
    assert_eq!(by_root.counters.creations, 2);
    assert_eq!(by_root.counters.releases, 1);
    assert_eq!(by_root.backend, "simulated");
    assert_eq!(by_root.uptime_seconds, 30.0);
    // A status request answers with the caller's view.
    let r = h.request(2, Request::Status);
    let Reply::Status(report) = r else { panic!() };
    assert_eq!(report.clients.len(), 1);
    assert_eq!(report.clients[0].uid, 502);
}

#[test]
fn a_status_report_lists_the_first_clients_up_to_the_cap() {
    // More clients of one user than a report lists (and than one user may
    // have by default).
    let options = BrokerOptions {
        max_clients_per_user: 4096,
        ..BrokerOptions::default()
    };
    let mut h = Fixture::with(StaticConfig::new(), NoAccounts, options);
    let count = u64::try_from(MAX_STATUS_CLIENTS).unwrap() + 6;
    // Connected in reverse order: the report lists the lowest ids.
    for id in (1..=count).rev() {
        h.connect(id, 501);
    }
    let report = h.broker.status(h.now, Some(ClientId(1)));
    assert_eq!(report.client_count, MAX_STATUS_CLIENTS + 6);
    assert_eq!(report.clients.len(), MAX_STATUS_CLIENTS);
    assert_eq!(report.hidden_clients, 6);
    let ids: Vec<u64> = report.clients.iter().map(|c| c.id).collect();
    let expected: Vec<u64> = (1..=count - 6).collect();
    assert_eq!(ids, expected);
}

#[test]
fn bad_requests_are_counted() {
    let mut h = Fixture::new();
    h.connect(1, 501);
    let r = h.bad_request(1, "not JSON");
    assert_eq!(status(&r), Status::INVALID_REQUEST);
    let report = h.broker.status(h.now, None);
    assert_eq!(report.counters.requests, 1);
    assert_eq!(report.counters.failures.get("invalid_request"), Some(&1));
}

#[test]
fn every_refused_acquire_keeps_its_reason() {
    let broken = ConfigError::Syntax {
        path: "/etc/vmnet-broker.d/bad.json".into(),
        format: "JSON",
        message: "EOF".into(),
    };
    let mut private = NetworkConfig::new(Mode::Host);
    private.allowed_users = Some(vec![Principal::Id(0)]);
    let config = StaticConfig::new()
        .with_broken("bad", broken.clone())
        .with("private", private)
        .with("third", NetworkConfig::new(Mode::Host));
    let options = BrokerOptions {
        max_networks_per_client: 1,
        max_networks: 2,
        ..BrokerOptions::default()
    };
    let mut h = Fixture::with(config, NoAccounts, options);
    h.connect(1, 501);
    h.connect(2, 501);
    h.connect(3, 501);
    let refused = |r: Reply<serde_json::Value>| match r {
        Reply::AcquireFailed(e) => e,
        other => panic!("expected a refusal, got {other:?}"),
    };

    let e = refused(h.acquire(1, "no-such-network"));
    assert_eq!(
        (e.clone(), e.status()),
        (AcquireError::NotFound, Status::NOT_FOUND)
    );
    let e = refused(h.acquire(1, "bad"));
    assert_eq!(e, AcquireError::BrokenConfiguration(broken));
    assert_eq!(e.status(), Status::NOT_FOUND);
    let e = refused(h.acquire(1, "private"));
    assert_eq!(
        (e.clone(), e.status()),
        (AcquireError::NotAllowed, Status::NOT_ALLOWED)
    );
    h.broker.backend_mut().fail_next(1);
    let e = refused(h.acquire(1, "shared"));
    assert!(
        matches!(e, AcquireError::Backend(BackendError::Injected(_))),
        "{e:?}"
    );
    assert_eq!(e.status(), Status::CREATE_FAILURE);
    h.subnet(1, "shared");
    let e = refused(h.acquire(1, "host"));
    assert_eq!(e, AcquireError::ClientLimit { limit: 1 });
    assert_eq!(e.status(), Status::INTERNAL_ERROR);
    h.subnet(2, "host");
    let e = refused(h.acquire(3, "third"));
    assert_eq!(e, AcquireError::BrokerLimit { limit: 2 });
    assert_eq!(e.status(), Status::CREATE_FAILURE);

    // `status` counts each reason, and the statuses the clients saw.
    let counters = h.broker.status(h.now, None).counters;
    let refusals: Vec<(&str, u64)> = counters
        .acquire_refusals
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        refusals,
        [
            ("backend_failure", 1),
            ("broken_configuration", 1),
            ("broker_limit", 1),
            ("client_limit", 1),
            ("not_allowed", 1),
            ("not_found", 1),
        ]
    );
    assert_eq!(counters.failures.get("not_found"), Some(&2));
    assert_eq!(counters.failures.get("create_failure"), Some(&2));
    assert_eq!(counters.failures.get("not_allowed"), Some(&1));
    assert_eq!(counters.failures.get("internal_error"), Some(&1));
}

/// A config source that records every name it is asked about.
#[derive(Default)]
struct Recording(RefCell<Vec<String>>);

impl ConfigSource for Recording {
    fn lookup(&self, name: &NetworkName) -> Lookup {
        self.0.borrow_mut().push(name.as_str().to_owned());
        StaticConfig::new().lookup(name)
    }
}

#[test]
fn any_unconfigured_name_is_not_found_and_ill_formed_ones_are_never_looked_up() {
    let config = Recording::default();
    let mut h = Fixture::with(&config, NoAccounts, BrokerOptions::default());
    h.connect(1, 501);
    let long = "x".repeat(65);
    for raw in [
        "../x",
        "a b",
        "",
        ".shared",
        long.as_str(),
        "sha\nred",
        "no-such",
    ] {
        let network = NetworkName::requested(raw, 64);
        let r = h.request(1, Request::Acquire { network });
        assert_eq!(r.status(), Status::NOT_FOUND, "{raw:?}: {r:?}");
        let network = NetworkName::requested(raw, 64);
        let r = h.request(1, Request::Release { network });
        assert_eq!(r.status(), Status::NOT_FOUND, "{raw:?}: {r:?}");
    }
    // Only the well-formed unknown name reached the configuration.
    assert_eq!(*config.0.borrow(), vec!["no-such".to_owned()]);
    // The client still works.
    assert!(matches!(h.acquire(1, "shared"), Reply::Acquired { .. }));
}
