//! End-to-end tests: the real broker binary against this client, over the
//! development socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{Broker, holders, wait_for_status};
use vmnet_broker_client::{Client, Error, Mode, Network, Status};

#[test]
fn acquire_shared_and_host_with_info() {
    let broker = Broker::start();
    let client = broker.client();

    let shared = client.acquire("shared").unwrap();
    assert_eq!(shared.name(), "shared");
    let info = shared.info().expect("our broker sends network_info");
    assert_eq!(info.mode, Mode::Shared);
    assert!((8..=30).contains(&info.prefix_len()), "{info:?}");
    assert!(shared.serialization_json().is_some());

    let host = client.acquire("host").unwrap();
    assert_eq!(host.info().map(|i| i.mode), Some(Mode::Host));
    assert_ne!(host.info().map(|i| i.subnet), Some(info.subnet));
}

#[test]
fn a_configured_network_can_be_acquired() {
    let broker = Broker::start_with_config(&[("lab.json", r#"{"mode": "host"}"#)]);
    let net = broker.client().acquire("lab").unwrap();
    assert_eq!(net.info().map(|i| i.mode), Some(Mode::Host));
}

#[test]
fn two_clients_share_the_network() {
    let broker = Broker::start();
    let (a, b) = (broker.client(), broker.client());
    let na = a.acquire("shared").unwrap();
    let nb = b.acquire("shared").unwrap();
    assert_eq!(na.info(), nb.info());
    assert_eq!(na.serialization_json(), nb.serialization_json());
    assert_eq!(holders(&a.status().unwrap(), "shared"), 2);
}

#[test]
fn release_then_release_again_is_not_found() {
    let broker = Broker::start();
    let client = broker.client();
    client.acquire("shared").unwrap().release().unwrap();
    assert_eq!(holders(&client.status().unwrap(), "shared"), 0);
    let err = client.release("shared").unwrap_err();
    assert_eq!(err.status(), Status::NOT_FOUND, "{err}");
}

#[test]
fn unknown_network_is_not_found() {
    let broker = Broker::start();
    let err = broker.client().acquire("no-such-network").unwrap_err();
    assert_eq!(err.status(), Status::NOT_FOUND);
    assert!(err.is_not_found());
    assert!(err.to_string().contains("no-such-network"), "{err}");
}

#[test]
fn dropping_a_network_releases_it() {
    let broker = Broker::start();
    let (a, b) = (broker.client(), broker.client());
    let _held = a.acquire("shared").unwrap();
    let nb = b.acquire("shared").unwrap();
    assert_eq!(holders(&a.status().unwrap(), "shared"), 2);
    drop(nb);
    // The release is a request on b's connection, answered before drop
    // returns, so the broker already knows.
    assert_eq!(holders(&a.status().unwrap(), "shared"), 1);
}

#[test]
fn handles_for_one_name_share_one_hold() {
    let broker = Broker::start();
    let (watcher, client) = (broker.client(), broker.client());
    let first = client.acquire("host").unwrap();
    let second = client.acquire("host").unwrap();
    assert_eq!(holders(&watcher.status().unwrap(), "host"), 1);
    first.release().unwrap();
    assert_eq!(holders(&watcher.status().unwrap(), "host"), 1);
    drop(second);
    assert_eq!(holders(&watcher.status().unwrap(), "host"), 0);
}

#[test]
fn dropping_the_client_releases_every_hold() {
    let broker = Broker::start();
    let watcher = broker.client();
    let _keep_alive = watcher.acquire("shared").unwrap();
    let client = broker.client();
    client.acquire("shared").unwrap().detach();
    client.acquire("host").unwrap().detach();
    let report = watcher.status().unwrap();
    assert_eq!(holders(&report, "shared"), 2);
    assert_eq!(holders(&report, "host"), 1);
    drop(client);
    wait_for_status(&watcher, "the dropped client's holds to go", |r| {
        holders(r, "shared") == 1 && holders(r, "host") == 0
    });
}

#[test]
fn a_network_keeps_its_connection_after_the_client_is_dropped() {
    let broker = Broker::start();
    let watcher = broker.client();
    let client = broker.client();
    let net = client.acquire("host").unwrap();
    drop(client);
    assert_eq!(holders(&watcher.status().unwrap(), "host"), 1);
    // Release succeeds only if the connection and its hold are still there.
    net.release().unwrap();
    assert_eq!(holders(&watcher.status().unwrap(), "host"), 0);
}

#[test]
fn request_vectors_give_their_errors() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/protocol-vectors.json"),
    )
    .unwrap();
    let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut sent = 0;
    for v in vectors["requests"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let Some(request) = v.get("request").and_then(|r| r.as_object()) else {
            continue; // a raw line; the client only sends well-formed JSON
        };
        let (Some(command), network) = (
            request.get("command").and_then(|c| c.as_str()),
            request.get("network_name").map(|n| n.as_str()),
        ) else {
            continue; // a command the client API cannot express
        };
        // Each vector runs on a fresh connection to a fresh broker.
        let broker = Broker::start();
        let client = broker.client();
        let result: Result<(), Error> = match (command, network) {
            ("acquire", Some(Some(n))) => client.acquire(n).map(Network::detach),
            ("release", Some(Some(n))) => client.release(n),
            ("status", None) => client.status().map(drop),
            _ => continue,
        };
        let want = v["expect_error"].as_i64();
        assert_eq!(
            result.as_ref().err().map(|e| e.status().code()),
            want,
            "vector {name:?}: {result:?}"
        );
        sent += 1;
    }
    assert!(sent >= 10, "only {sent} vectors could be sent");
}

#[test]
fn threads_share_one_client() {
    let broker = Broker::start();
    let client = Arc::new(broker.client());
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let client = Arc::clone(&client);
            std::thread::spawn(move || {
                let name = if i % 2 == 0 { "shared" } else { "host" };
                for _ in 0..25 {
                    let net = client.acquire(name).unwrap();
                    assert_eq!(net.name(), name);
                    let report = client.status().unwrap();
                    assert!(holders(&report, name) >= 1);
                    net.release().unwrap();
                }
                client.acquire(name).unwrap()
            })
        })
        .collect();
    let nets: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let report = client.status().unwrap();
    assert_eq!(holders(&report, "shared"), 1);
    assert_eq!(holders(&report, "host"), 1);
    drop(nets);
    let report = client.status().unwrap();
    assert_eq!(holders(&report, "shared") + holders(&report, "host"), 0);
}

#[test]
fn no_broker_is_a_transport_failure() {
    let dir = tempfile::tempdir().unwrap();
    let err = Client::connect_socket(dir.path().join("nobody.sock")).unwrap_err();
    assert_eq!(err.status(), Status::XPC_FAILURE);
    assert!(err.to_string().contains("nobody.sock"), "{err}");
}

#[test]
fn the_client_reconnects_after_the_broker_restarts() {
    let mut broker = Broker::start();
    let client = broker.client();
    let old = client.acquire("shared").unwrap();
    broker.restart();
    // The request in flight when the connection turns out dead fails ...
    let err = client.acquire("host").unwrap_err();
    assert_eq!(err.status(), Status::XPC_FAILURE, "{err}");
    // ... the next one reconnects.
    let host = client.acquire("host").unwrap();
    assert_eq!(holders(&client.status().unwrap(), "host"), 1);
    // The old hold died with the old broker; releasing it says so and
    // sends nothing.
    let err = old.release().unwrap_err();
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err}");
    host.release().unwrap();
}
