#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `serve --ready-fd N`: the byte arrives once the socket accepts
//! connections, and bad descriptors are refused before anything starts.

mod common;

use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use common::{Broker, bin};

#[test]
fn the_socket_accepts_connections_when_the_ready_byte_arrives() {
    // The harness waits for the byte (no polling): connecting right after
    // it must work, and the broker answers.
    let b = Broker::start(&[], &["--no-idle-exit"]);
    UnixStream::connect(&b.socket).expect("connect right after the ready byte");
    assert!(b.status()["pid"].as_u64().is_some());
}

#[test]
fn a_descriptor_that_is_not_usable_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for fd in ["1", "987"] {
        let out = Command::new(bin())
            .args(["serve", "--no-idle-exit", "--ready-fd", fd, "--socket"])
            .arg(dir.path().join("b.sock"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "--ready-fd {fd}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--ready-fd"), "{stderr}");
        assert!(!dir.path().join("b.sock").exists(), "nothing was started");
    }
}
