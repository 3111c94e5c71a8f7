//! Micro-benchmarks of the sans-IO broker.
//!
//! Each operation is measured on a broker that already has `clients`
//! connected clients and `networks` live networks, to show that the cost of
//! one operation does not depend on how many clients or networks exist. Only
//! `status` is expected to grow: it describes every client and network.
//!
//! Operations that change state are measured with `iter_custom`: the
//! operation itself is timed, and the step that puts the broker back into
//! its starting state (a release after an acquire, an acquire after a
//! release...) runs outside the timed region. The clock reads add a constant
//! of a few tens of nanoseconds to every figure.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vmnet_broker_core::backend::sim::SimBackend;
use vmnet_broker_core::broker::{BrokerOptions, ClientCredentials, ClientId, NoAccounts, Reply};
use vmnet_broker_core::config::{Ipv4Subnet, NetworkConfig, StaticConfig};
use vmnet_broker_core::proto::{Mode, NetworkName, Request};
use vmnet_broker_core::testing::Harness;

const CLIENTS: [usize; 3] = [1, 100, 10_000];
const NETWORKS: [usize; 3] = [1, 100, 1_000];
/// Networks one owner client holds (the default per-client limit).
const PER_OWNER: usize = 8;
/// Client ids of the owners start here, far above the measured clients.
const OWNER_BASE: u64 = 1 << 32;

/// The shared fake-clock driver; timed regions call its broker directly.
type SimHarness = Harness<SimBackend, StaticConfig, NoAccounts>;

const CREDS: ClientCredentials = ClientCredentials {
    pid: 1000,
    uid: 501,
    gid: 20,
};

fn net_name(i: usize) -> NetworkName {
    NetworkName::new(&format!("net-{i}")).expect("valid name")
}

/// A host network on its own static /24 in 10.0.0.0/8, so that the
/// simulated backend never runs out of automatic subnets.
fn net_config(i: usize) -> NetworkConfig {
    let mut c = NetworkConfig::new(Mode::Host);
    let i = u32::try_from(i).expect("small index");
    c.ipv4 = Some(Ipv4Subnet::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)), 24));
    c
}

/// A broker with `clients` idle clients (ids 0..clients) and `networks` live
/// networks (`net-0`...), held by extra owner clients so that none of them is
/// idle. The configuration also knows `fresh`, which is not live.
fn setup(clients: usize, networks: usize) -> SimHarness {
    let mut config = StaticConfig::empty();
    for i in 0..networks {
        config = config.with(&format!("net-{i}"), net_config(i));
    }
    config = config.with("fresh", net_config(networks + 1));
    let options = BrokerOptions {
        network_idle_timeout: Duration::ZERO,
        exit_idle_timeout: None,
        max_clients: clients + networks + 16,
        // All of them are one user's.
        max_clients_per_user: clients + networks + 16,
        max_networks: networks + 16,
        ..BrokerOptions::default()
    };
    let mut d = Harness::sim(options, config, NoAccounts, 1);
    // Invariant checks visit every client: far too slow for this setup.
    d.check = false;
    for p in 0..clients {
        d.connect(p as u64, CREDS).expect("connect");
    }
    for i in 0..networks {
        let owner = OWNER_BASE + (i / PER_OWNER) as u64;
        if i % PER_OWNER == 0 {
            d.connect(owner, CREDS).expect("connect owner");
        }
        let reply = d.request(
            owner,
            Request::Acquire {
                network: net_name(i),
            },
        );
        assert!(
            matches!(reply, Reply::Acquired { .. }),
            "setup acquire failed"
        );
    }
    d.events.clear();
    d
}

fn names(networks: usize) -> Vec<NetworkName> {
    (0..networks).map(net_name).collect()
}

/// Which half of an acquire/release pair a benchmark times.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Timed {
    Acquire,
    Release,
}

/// Each iteration acquires a live network and releases it again, so the
/// broker's state is the same before and after; only the `timed` request
/// is measured.
fn acquire_release_pair(c: &mut Criterion, group_name: &str, timed: Timed) {
    let mut group = c.benchmark_group(group_name);
    for &clients in &CLIENTS {
        for &networks in &NETWORKS {
            let mut d = setup(clients, networks);
            let now = d.now;
            let names = names(networks);
            let mut i = 0usize;
            group.bench_function(
                BenchmarkId::new(format!("peers={clients}"), networks),
                |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let client = ClientId((i % clients) as u64);
                            let name = &names[i % networks];
                            i = i.wrapping_add(1);
                            let requests = [
                                (
                                    Timed::Acquire,
                                    Request::Acquire {
                                        network: name.clone(),
                                    },
                                ),
                                (
                                    Timed::Release,
                                    Request::Release {
                                        network: name.clone(),
                                    },
                                ),
                            ];
                            for (which, request) in requests {
                                let start = Instant::now();
                                let reply = d.broker.handle_request(now, client, request);
                                if which == timed {
                                    total += start.elapsed();
                                }
                                let _ = black_box(reply);
                            }
                        }
                        total
                    });
                },
            );
        }
    }
    group.finish();
}

fn acquire(c: &mut Criterion) {
    acquire_release_pair(c, "acquire_live", Timed::Acquire);
}

fn release(c: &mut Criterion) {
    acquire_release_pair(c, "release", Timed::Release);
}

fn create(c: &mut Criterion) {
    let mut group = c.benchmark_group("acquire_create");
    for &clients in &CLIENTS {
        for &networks in &NETWORKS {
            let mut d = setup(clients, networks);
            let now = d.now;
            let fresh = NetworkName::new("fresh").expect("valid name");
            let mut i = 0usize;
            group.bench_function(
                BenchmarkId::new(format!("peers={clients}"), networks),
                |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let client = (i % clients) as u64;
                            i = i.wrapping_add(1);
                            let request = Request::Acquire {
                                network: fresh.clone(),
                            };
                            let start = Instant::now();
                            let reply = d.broker.handle_request(now, ClientId(client), request);
                            total += start.elapsed();
                            assert!(matches!(reply, Reply::Acquired { .. }), "create failed");
                            // With a zero idle delay the release makes the
                            // network due at once; the timeout removes it.
                            let _ = d.request(
                                client,
                                Request::Release {
                                    network: fresh.clone(),
                                },
                            );
                            d.step();
                            d.events.clear();
                        }
                        total
                    });
                },
            );
        }
    }
    group.finish();
}

fn disconnect(c: &mut Criterion) {
    let mut group = c.benchmark_group("disconnect_holding_8");
    for &clients in &CLIENTS {
        for &networks in &NETWORKS {
            let mut d = setup(clients, networks);
            let now = d.now;
            let names = names(networks);
            let held = PER_OWNER.min(networks);
            let mut next_id = OWNER_BASE * 2;
            group.bench_function(
                BenchmarkId::new(format!("peers={clients}"), networks),
                |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let client = next_id;
                            next_id += 1;
                            d.connect(client, CREDS).expect("connect");
                            for k in 0..held {
                                let name =
                                    names[(usize::try_from(next_id).expect("id fits usize") + k)
                                        % networks]
                                        .clone();
                                let _ = d.request(client, Request::Acquire { network: name });
                            }
                            let start = Instant::now();
                            d.broker.handle_disconnect(now, ClientId(client));
                            total += start.elapsed();
                        }
                        total
                    });
                },
            );
        }
    }
    group.finish();
}

fn status(c: &mut Criterion) {
    let mut group = c.benchmark_group("status");
    for &(clients, networks) in &[
        (1000, 1),
        (1000, 100),
        (1000, 1000),
        (1, 1),
        (100, 1),
        (10_000, 1),
    ] {
        let d = setup(clients, networks);
        group.bench_function(
            BenchmarkId::new(format!("peers={clients}"), networks),
            |b| {
                b.iter(|| black_box(d.broker.status(d.now, None)));
            },
        );
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = acquire, create, release, disconnect, status
}
criterion_main!(benches);
