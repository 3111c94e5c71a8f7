#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Load: a thousand client connections open at once, each acquiring and
//! releasing repeatedly, then holding a known set. The status report must
//! count every hold exactly, and every hold must go when the clients do.
//!
//! Figures for docs/reliability.md come from the line this test prints
//! (`cargo test -p vmnet-broker --test load -- --nocapture`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::Broker;
use serde_json::Value;

const CLIENTS: usize = 1000;
const THREADS: usize = 8;
const ROUNDS: usize = 10;
const NETS: [&str; 4] = ["shared", "host", "lab-a", "lab-b"];

/// One client connection; all of a thread's clients stay open together.
struct Client {
    id: usize,
    io: BufReader<UnixStream>,
}

impl Client {
    fn send(&mut self, command: &str, name: &str) {
        let line = format!("{{\"command\":\"{command}\",\"network_name\":\"{name}\"}}\n");
        self.io.get_ref().write_all(line.as_bytes()).unwrap();
    }

    fn reply(&mut self) -> Value {
        let mut line = String::new();
        self.io.read_line(&mut line).unwrap();
        assert!(
            line.ends_with('\n'),
            "client {}: short reply {line:?}",
            self.id
        );
        serde_json::from_str(&line).unwrap()
    }
}

/// The networks client `id` holds at the end.
fn final_set(id: usize) -> Vec<&'static str> {
    match id % 3 {
        0 => vec![NETS[id % 4]],
        1 => vec![NETS[id % 4], NETS[(id + 1) % 4]],
        _ => vec![],
    }
}

#[test]
fn a_thousand_clients_acquire_and_release_with_exact_counts() {
    let broker = Broker::start(
        &[
            ("lab-a.json", r#"{"mode": "host"}"#),
            ("lab-b.json", r#"{"mode": "shared"}"#),
        ],
        &["--no-idle-exit"],
    );
    let started = Instant::now();
    let barrier = std::sync::Barrier::new(THREADS);

    let clients: Vec<Vec<Client>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let broker = &broker;
                let barrier = &barrier;
                s.spawn(move || {
                    let mut mine: Vec<Client> = (t..CLIENTS)
                        .step_by(THREADS)
                        .map(|id| {
                            let stream = UnixStream::connect(&broker.socket).unwrap();
                            stream
                                .set_read_timeout(Some(Duration::from_secs(60)))
                                .unwrap();
                            Client {
                                id,
                                io: BufReader::new(stream),
                            }
                        })
                        .collect();
                    // Every connection of every thread is open from here on.
                    barrier.wait();
                    for round in 0..ROUNDS {
                        // Pipelined: every client sends acquire + release,
                        // then every client reads its two replies.
                        for c in &mut mine {
                            let name = NETS[(c.id + round) % NETS.len()];
                            c.send("acquire", name);
                            c.send("release", name);
                        }
                        for c in &mut mine {
                            let acquired = c.reply();
                            assert!(
                                acquired.get("network").is_some(),
                                "client {}: {acquired}",
                                c.id
                            );
                            let released = c.reply();
                            assert!(released.as_object().unwrap().is_empty(), "{released}");
                        }
                    }
                    // Acquire the final set; a second acquire of the same
                    // name must not count twice.
                    for c in &mut mine {
                        for name in final_set(c.id) {
                            c.send("acquire", name);
                            c.send("acquire", name);
                        }
                    }
                    for c in &mut mine {
                        for _ in 0..final_set(c.id).len() * 2 {
                            let r = c.reply();
                            assert!(r.get("network").is_some(), "client {}: {r}", c.id);
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();

    let mut expected = [0u64; 4];
    for id in 0..CLIENTS {
        for name in final_set(id) {
            expected[NETS.iter().position(|n| *n == name).unwrap()] += 1;
        }
    }
    let status = broker.status();
    for (i, name) in NETS.iter().enumerate() {
        let live = status["networks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == *name);
        assert_eq!(
            live.unwrap()["holders"].as_u64(),
            Some(expected[i]),
            "{name}"
        );
    }
    // The status connection is a peer too.
    assert_eq!(status["peer_count"].as_u64(), Some(CLIENTS as u64 + 1));
    let per_peer: usize = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["networks"].as_array().unwrap().len())
        .sum();
    assert_eq!(per_peer as u64, expected.iter().sum::<u64>());
    let counters = &status["counters"];
    let requests = (CLIENTS * ROUNDS * 2) as u64
        + (0..CLIENTS)
            .map(|id| final_set(id).len() as u64 * 2)
            .sum::<u64>();
    // The status request itself is counted before the report is built.
    assert_eq!(
        counters["requests"].as_u64(),
        Some(requests + 1),
        "{counters}"
    );
    assert_eq!(
        counters["releases"].as_u64(),
        Some((CLIENTS * ROUNDS) as u64)
    );
    assert!(
        counters
            .get("failures")
            .is_none_or(|f| f.as_object().unwrap().is_empty()),
        "{counters}"
    );

    println!(
        "load: {CLIENTS} concurrent clients on {THREADS} threads, {requests} requests \
         ({ROUNDS} acquire/release rounds each + final holds) in {:.2} s",
        elapsed.as_secs_f64()
    );

    drop(clients);
    broker.wait_for("every hold to be dropped", |b| {
        NETS.iter().all(|n| b.holders(n) == Some(0))
    });
    // Only the status connection of the moment is left.
    broker.wait_for("every client to be gone", |b| b.status()["peer_count"] == 1);
}
