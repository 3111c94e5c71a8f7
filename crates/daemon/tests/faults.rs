#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Faults around the running broker: clients killed with SIGKILL, backend
//! creation failures, a broker killed and replaced, configuration files
//! changed under a live network, a second broker on the same path, and
//! SIGTERM while clients are connected.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::{Broker, bin, write_config};
use serde_json::json;

const SIGTERM: i32 = 15;

#[test]
fn killing_holders_with_sigkill_leaves_exact_counts() {
    let broker = Broker::start(&[], &["--no-idle-exit"]);
    // 24 processes hold `shared`, half of them `host` too.
    let mut victims = Vec::new();
    for i in 0..24 {
        let names: &[&str] = if i % 2 == 0 {
            &["shared", "host"]
        } else {
            &["shared"]
        };
        victims.push(broker.hold(names));
    }
    assert_eq!(broker.holders("shared"), Some(24));
    assert_eq!(broker.holders("host"), Some(12));

    // Kill 16 of them (8 holding both) while 10 new holders arrive.
    let survivors_thread = std::thread::scope(|s| {
        let arriving = s.spawn(|| {
            (0..10)
                .map(|_| broker.hold(&["shared"]))
                .collect::<Vec<_>>()
        });
        for v in victims.iter_mut().take(16) {
            v.kill9();
        }
        arriving.join().unwrap()
    });
    // Left: 8 original (4 with host) + 10 new, all on shared.
    broker.wait_for("holds of killed clients to be dropped", |b| {
        b.holders("shared") == Some(18) && b.holders("host") == Some(4)
    });
    let status = broker.status();
    let peers_holding_shared = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["networks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == "shared")
        })
        .count();
    assert_eq!(peers_holding_shared, 18, "{status}");

    // Killing the rest drops everything; nothing is left held.
    for v in victims.iter_mut() {
        v.kill9();
    }
    drop(survivors_thread);
    broker.wait_for("every hold to be dropped", |b| {
        b.holders("shared") == Some(0) && b.holders("host") == Some(0)
    });
}

#[test]
fn an_injected_creation_failure_gives_create_failure_and_spares_other_networks() {
    let broker = Broker::start(
        &[
            ("lab.json", r#"{"mode": "host"}"#),
            ("iso.json", r#"{"mode": "host"}"#),
        ],
        &["--no-idle-exit", "--sim-fail-create", "lab"],
    );
    let out = broker.cli(&["acquire", "lab"]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");

    let mut c = broker.connect();
    assert_eq!(c.acquire("lab")["error"], 6);
    assert!(c.acquire("iso").get("network").is_some());
    assert!(c.acquire("shared").get("network").is_some());
    // The failure left no trace: lab is not live, the others are held once.
    assert_eq!(broker.holders("lab"), None);
    assert_eq!(broker.holders("iso"), Some(1));
    assert_eq!(broker.holders("shared"), Some(1));
    let failures = &broker.status()["counters"]["failures"];
    assert_eq!(failures["create_failure"], 2, "{failures}");
    // It keeps failing, and the connection keeps working.
    assert_eq!(c.acquire("lab")["error"], 6);
    assert_eq!(
        c.request(&json!({"command": "release", "network_name": "iso"})),
        json!({})
    );
}

#[test]
fn a_replacement_broker_takes_over_the_socket_and_clients_reacquire() {
    let mut broker = Broker::start(&[("lab.json", r#"{"mode": "host"}"#)], &["--no-idle-exit"]);
    let mut clients: Vec<_> = (0..5).map(|_| broker.connect()).collect();
    for c in &mut clients {
        assert!(c.acquire("lab").get("network").is_some());
    }
    assert_eq!(broker.holders("lab"), Some(5));

    // The broker dies without cleaning up: the socket file stays behind.
    let mut old = broker.child.take().unwrap();
    old.kill().unwrap();
    old.wait().unwrap();
    assert!(
        broker.socket.exists(),
        "a killed broker leaves its socket file"
    );
    // Its clients see the connection end.
    for c in &mut clients {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut std::io::BufReader::new(&c.stream), &mut line);
        assert!(matches!(n, Ok(0) | Err(_)), "{line}");
    }

    // A new broker on the same path replaces the stale socket.
    let broker = broker.spawn(&["--no-idle-exit"]);
    assert!(broker.log_text().contains("stale"), "{}", broker.log_text());
    assert_eq!(broker.holders("lab"), None, "the new broker starts empty");
    let mut clients: Vec<_> = (0..5).map(|_| broker.connect()).collect();
    for c in &mut clients {
        assert!(c.acquire("lab").get("network").is_some());
    }
    assert_eq!(broker.holders("lab"), Some(5));
    let st = broker.status();
    assert_eq!(st["counters"]["creations"], 1, "{st}");
    drop(clients);
    broker.wait_for("clients to leave", |b| b.holders("lab") == Some(0));
}

#[test]
fn changing_or_deleting_a_config_file_affects_only_the_next_creation() {
    let broker = Broker::start(
        &[(
            "lab.json",
            r#"{"mode": "host", "subnet": "192.168.150.0", "mask": "255.255.255.0"}"#,
        )],
        &["--no-idle-exit", "--network-idle-timeout", "0.3"],
    );
    let mut a = broker.connect();
    let first = a.acquire("lab");
    assert_eq!(first["network_info"]["mode"], "host", "{first}");
    assert_eq!(first["network_info"]["subnet"], "192.168.150.0");

    // Rewrite the file while the network is live: nothing changes for it.
    write_config(
        &broker.config,
        "lab.json",
        r#"{"mode": "shared", "subnet": "192.168.160.0", "mask": "255.255.255.0"}"#,
    );
    let mut b = broker.connect();
    let second = b.acquire("lab");
    assert_eq!(second["network_info"], first["network_info"]);
    assert_eq!(second["network"], first["network"]);
    assert_eq!(broker.holders("lab"), Some(2));

    // Once it is released and removed, the next creation reads the new file.
    drop(a);
    drop(b);
    broker.wait_for("idle removal of lab", |b| b.holders("lab").is_none());
    let mut c = broker.connect();
    let third = c.acquire("lab");
    assert_eq!(third["network_info"]["mode"], "shared", "{third}");
    assert_eq!(third["network_info"]["subnet"], "192.168.160.0");

    // Deleting the file does not affect the live network either...
    std::fs::remove_file(broker.config.join("lab.json")).unwrap();
    let mut d = broker.connect();
    assert_eq!(d.acquire("lab")["network_info"], third["network_info"]);
    // ...but after removal the name is unknown.
    drop(c);
    drop(d);
    broker.wait_for("idle removal of lab", |b| b.holders("lab").is_none());
    assert_eq!(broker.connect().acquire("lab")["error"], 5);

    // A file that others may write is not trusted: the name is not found.
    write_config(&broker.config, "lab.json", r#"{"mode": "host"}"#);
    assert!(broker.connect().acquire("lab").get("network").is_some());
    broker.wait_for("idle removal of lab", |b| b.holders("lab").is_none());
    let p = broker.config.join("lab.json");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(broker.connect().acquire("lab")["error"], 5);
}

#[test]
fn a_second_broker_refuses_the_path_of_a_serving_one() {
    let broker = Broker::start(&[], &["--no-idle-exit"]);
    let mut holder = broker.connect();
    let first = holder.acquire("shared");

    let out = Command::new(bin())
        .arg("serve")
        .arg("--socket")
        .arg(&broker.socket)
        .arg("--config-dir")
        .arg(&broker.config)
        .args(["--no-idle-exit"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already serving"), "{stderr}");

    // The first broker is untouched: same socket, same network, same holds.
    assert!(broker.socket.exists());
    assert_eq!(broker.holders("shared"), Some(1));
    let mut other = broker.connect();
    assert_eq!(other.acquire("shared")["network"], first["network"]);
    assert_eq!(broker.holders("shared"), Some(2));
}

#[test]
fn sigterm_is_ignored_while_clients_are_connected() {
    let mut broker = Broker::start(&[], &["--no-idle-exit"]);
    let mut holder = broker.connect();
    let first = holder.acquire("shared");

    broker.signal(SIGTERM);
    broker.wait_for("the broker to log that it ignored SIGTERM", |b| {
        b.log_text()
            .contains("SIGTERM received while clients are connected")
    });
    // Still serving, network unchanged.
    assert_eq!(broker.holders("shared"), Some(1));
    assert_eq!(
        broker.connect().acquire("shared")["network"],
        first["network"]
    );

    // With every client gone, SIGTERM stops it cleanly.
    drop(holder);
    broker.wait_for("the client to leave", |b| b.status()["peer_count"] == 1);
    // `status` itself connects; wait until that connection is gone too.
    let mut exited = None;
    for _ in 0..100 {
        broker.signal(SIGTERM);
        exited = broker.wait_exit(Duration::from_millis(200));
        if exited.is_some() {
            break;
        }
    }
    let exited = exited.expect("the broker did not exit on SIGTERM without clients");
    assert!(exited.success(), "{exited:?}\n{}", broker.log_text());
    assert!(
        !broker.socket.exists(),
        "the socket file is removed on a clean exit"
    );
    assert!(broker.log_text().contains("all networks released"));
}
