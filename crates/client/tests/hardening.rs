//! The client against a server that accepts but never answers (a stopped
//! or stuck broker), and one that hangs up: every wait is bounded, and a
//! lost connection is noticed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixListener;
use std::time::Duration;

use vmnet_broker_client::{Client, Error, Status};

/// A listener whose connections are accepted and kept, never answered.
fn silent_server() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    vmnet_broker_testkit::silent_server(&path).unwrap();
    (dir, path)
}

#[test]
fn requests_to_a_silent_server_time_out_as_transport_failures() {
    let (_dir, path) = silent_server();
    let client = Client::connect_socket_with_timeout(&path, Duration::from_millis(200)).unwrap();
    let e = client.status().unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert_eq!(e.status(), Status::XPC_FAILURE);
    assert!(e.to_string().contains("did not answer in time"), "{e}");

    let client = Client::connect_socket(&path).unwrap();
    client.set_timeout(Duration::from_millis(100));
    let e = client.acquire("shared").unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
}

#[test]
fn wait_closed_returns_when_the_server_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hangup.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        // Hang up when the test says so.
        let _ = rx.recv();
        drop(stream);
    });
    let client = Client::connect_socket(&path).unwrap();
    let watcher = client.clone();
    let waiting = std::thread::spawn(move || watcher.wait_closed());
    tx.send(()).unwrap();
    let e = waiting.join().unwrap();
    assert!(matches!(e, Error::Closed), "{e:?}");
    assert_eq!(e.status(), Status::XPC_FAILURE);
}
