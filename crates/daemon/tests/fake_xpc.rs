//! End to end over "XPC" on Linux: the real `vmnet-broker` binary, built
//! with the `fake-apple` feature, serves `--backend vmnet --mach-service
//! NAME` (no socket) through the XPC driver and the vmnet backend, against
//! the contract-enforcing fakes of crates/fake-apple. Clients are real
//! `vmnet-broker acquire/status --mach-service NAME` processes, the Rust
//! client's XPC transport, and raw XPC clients of the macOS crate.
//!
//! Every process ends with the fakes' leak report: a broker or client that
//! leaked an XPC, dispatch or CF object exits with status 87, and the
//! broker's report is also checked here. This exercises our code against
//! our reading of Apple's contracts; it is not a run on macOS
//! (docs/macos-fakes.md).
//!
//! Run with `cargo test -p vmnet-broker --features fake-apple --test fake_xpc`.

#![cfg(feature = "fake-apple")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Broker, bin, network_names, unique_service};
use vmnet_broker_client::{Client, Status};
use vmnet_broker_macos::vmnet::{VmnetInterface, VmnetNetwork};
use vmnet_broker_macos::xpc::{XpcClient, XpcDictionary};

/// A broker on a private Mach service over the fakes.
fn start(files: &[(&str, &str)], extra: &[&str]) -> Broker {
    Broker::prepare_xpc(files).spawn(extra)
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[test]
fn two_clients_share_a_network_and_a_killed_clients_hold_is_dropped() {
    let mut b = start(&[], &["--no-idle-exit", "--network-idle-timeout", "1"]);
    let mut first = b.hold(&["shared"]);
    let second = b.hold(&["shared"]);
    assert_eq!(first.lines[0]["subnet"], second.lines[0]["subnet"]);
    assert_eq!(first.lines[0]["subnet"], "192.168.64.0");
    assert_eq!(first.lines[0]["mode"], "shared");
    assert_eq!(b.holders("shared"), Some(2));

    first.kill9();
    b.wait_for("holders to drop to 1", |b| b.holders("shared") == Some(1));

    let status = second.finish();
    assert!(status.success(), "the holder exited with {status}");
    b.wait_for("the idle network to be removed", |b| {
        b.holders("shared").is_none()
    });
    let report = b.status();
    assert_eq!(report["counters"]["creations"], 1);
    assert_eq!(report["counters"]["removals"], 1);
    let status = b.stop();
    b.assert_clean_exit(status);
}

#[test]
fn the_ninth_network_is_refused() {
    let names = network_names(9);
    let mut b = Broker::prepare_xpc(&[])
        .with_host_networks(&names)
        .spawn(&["--no-idle-exit"]);

    // The CLI, as a separate process: its exit code is the status.
    let mut args = vec!["acquire"];
    args.extend(names.iter().map(String::as_str));
    assert_eq!(code(&b.cli(&args)), 7);

    // The Rust client's XPC transport, in this process.
    let client = Client::connect_xpc_service(b.service()).unwrap();
    let mut held = Vec::new();
    for name in &names[..8] {
        held.push(client.acquire(name).unwrap());
    }
    let err = client.acquire("net8").unwrap_err();
    assert_eq!(err.status(), Status::INTERNAL_ERROR, "{err}");
    assert!(b.holders("net8").is_none());
    assert_eq!(b.holders("net7"), Some(1));
    for n in held {
        n.release().unwrap();
    }
    drop(client);
    let status = b.stop();
    b.assert_clean_exit(status);
}

#[test]
fn sigterm_and_sigint_are_ignored_with_clients_and_exit_0_without() {
    let mut b = start(&[], &["--no-idle-exit"]);
    let status = b.signals_wait_for_holders();
    b.assert_clean_exit(status);
    let log = b.log_text();
    assert!(log.contains("network removed"), "{log}");
}

#[test]
fn the_broker_exits_when_idle_and_releases_every_network() {
    let mut b = start(&[], &["--idle-timeout", "0.5"]);
    let out = b.cli(&["acquire", "shared", "host"]);
    assert!(out.status.success(), "{out:?}");
    let status = b
        .wait_exit(Duration::from_secs(20))
        .expect("the broker should exit when idle");
    b.assert_clean_exit(status);
    let log = b.log_text();
    assert!(log.contains("no clients for the idle delay"), "{log}");
    assert_eq!(log.matches("network removed").count(), 2, "{log}");
}

#[test]
fn the_rust_client_acquires_over_xpc_and_the_serialization_makes_a_network() {
    let mut b = start(&[], &["--no-idle-exit"]);
    let client = Client::connect_xpc_service(b.service()).unwrap();
    let network = client.acquire("shared").unwrap();
    let info = network
        .info()
        .cloned()
        .expect("our broker sends network_info");
    assert_eq!(info.subnet.to_string(), "192.168.64.0");
    assert!(network.serialization_json().is_none());

    // What a VM tool does with the serialization: a network of its own,
    // then an interface on it.
    let serialization = network.xpc_serialization().unwrap().retained();
    let mine = VmnetNetwork::create_with_serialization(&serialization).unwrap();
    assert_eq!(mine.info(info.mode), info);
    let (interface, params) = VmnetInterface::start(&mine).unwrap();
    assert!(params.unwrap().get_string("vmnet_mac_address").is_some());
    interface.stop().unwrap();
    drop(mine);
    drop(serialization);

    let status = client.status().unwrap();
    assert_eq!(status.networks.len(), 1);
    // The broker sees this process's credentials (the kernel's, through
    // the fake's SO_PEERCRED).
    let me = status
        .clients
        .iter()
        .find(|p| p.pid == i32::try_from(std::process::id()).unwrap())
        .expect("this process among the clients");
    assert_eq!(me.uid, vmnet_broker_client::effective_uid());
    network.release().unwrap();
    // The hold is gone; the network idles until removed.
    b.wait_for("holders to drop to 0", |b| b.holders("shared") == Some(0));
    drop(client);
    let status = b.stop();
    b.assert_clean_exit(status);
}

#[test]
fn bad_requests_get_error_4_and_a_message_without_reply_is_only_logged() {
    let mut b = start(&[], &["--no-idle-exit"]);
    let raw = XpcClient::connect(b.service(), false).unwrap();

    let empty = XpcDictionary::new();
    let reply = raw.request(&empty).unwrap();
    assert_eq!(reply.get_i64("error"), Some(4));

    let mut no_name = XpcDictionary::new();
    no_name.set_string("command", "acquire").unwrap();
    assert_eq!(raw.request(&no_name).unwrap().get_i64("error"), Some(4));

    let mut wrong_type = XpcDictionary::new();
    wrong_type.set_string("command", "acquire").unwrap();
    wrong_type.set_i64("network_name", 7).unwrap();
    assert_eq!(raw.request(&wrong_type).unwrap().get_i64("error"), Some(4));

    // A message sent without expecting a reply: nothing to answer.
    let mut status = XpcDictionary::new();
    status.set_string("command", "status").unwrap();
    raw.connection().send(&status);
    b.wait_for("the broker to log that it cannot reply", |b| {
        b.log_text().contains("cannot reply")
    });

    // Still serving, on the same connection.
    let reply = raw.request(&status).unwrap();
    assert!(reply.get("status").is_some());
    assert_eq!(reply.get_i64("error"), None);
    drop(raw);
    let status = b.stop();
    b.assert_clean_exit(status);
}

#[test]
fn a_stopped_broker_makes_xpc_requests_time_out_and_it_serves_again_when_continued() {
    let b = start(&[], &["--no-idle-exit"]);
    b.status();
    b.suspend();

    // The CLI gives up after --timeout with XPC_FAILURE and says why.
    let started = Instant::now();
    let out = b.cli(&["status", "--timeout", "1"]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 1, "{stderr}");
    assert!(stderr.contains("did not answer in time"), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");

    // So does the Rust client, with its own timeout.
    let client = Client::connect_xpc_service(b.service()).unwrap();
    client.set_timeout(Duration::from_millis(500));
    let e = client.status().unwrap_err();
    assert_eq!(e.status(), Status::XPC_FAILURE, "{e}");
    assert!(e.to_string().contains("did not answer in time"), "{e}");

    // Once continued, the broker answers again, and so does the same
    // client (it connects again).
    b.resume();
    client.set_timeout(Duration::from_secs(10));
    client.status().unwrap();
    let out = b.cli(&["acquire", "shared"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_second_broker_on_the_same_service_exits_1() {
    let mut b = start(&[], &["--no-idle-exit"]);
    let mut second = b.serve_command(&["--no-idle-exit"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the second broker kept running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1), "{}", b.log_text());
    assert!(
        b.log_text().contains("listener is invalid"),
        "{}",
        b.log_text()
    );
    // The first one is unaffected.
    assert!(b.cli(&["status"]).status.success());
    let status = b.stop();
    b.assert_clean_exit(status);
}

#[test]
fn a_client_of_a_missing_service_gets_xpc_failure() {
    let out = Command::new(bin())
        .args(["status", "--mach-service", &unique_service()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{out:?}");
}
