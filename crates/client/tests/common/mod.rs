//! Starting the real broker binary for end-to-end tests.
//!
//! The binary is `$VMNET_BROKER_BIN` if set, else `vmnet-broker` in the
//! cargo target directory next to this test (`target/debug/vmnet-broker`).
//! Build it first with `cargo build -p vmnet-broker`. Starting and waiting
//! is the shared harness of `vmnet-broker-testkit`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vmnet_broker_client::{Client, StatusReport};

/// How long to wait for a condition to become true. A guard against
/// hanging, not a measurement.
const PATIENCE: Duration = vmnet_broker_testkit::PATIENCE;

/// The broker binary to test.
pub(crate) fn broker_bin() -> PathBuf {
    vmnet_broker_testkit::broker_bin()
}

/// A broker process serving a socket in a temporary directory, killed on
/// drop.
pub(crate) struct Broker {
    child: Child,
    pub socket: PathBuf,
    pub config_dir: PathBuf,
    dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker with the default configuration.
    pub(crate) fn start() -> Self {
        Self::start_with_config(&[])
    }

    /// Starts a broker with extra `NAME.json` files in its config dir.
    pub(crate) fn start_with_config(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_dir = dir.path().join("config");
        std::fs::create_dir(&config_dir).expect("config dir");
        for (name, text) in files {
            std::fs::write(config_dir.join(name), text).expect("config file");
        }
        let socket = dir.path().join("broker.sock");
        Self::spawn(dir, socket, config_dir)
    }

    fn spawn(dir: tempfile::TempDir, socket: PathBuf, config_dir: PathBuf) -> Self {
        let child = spawn_child(&socket, &config_dir);
        Self {
            child,
            socket,
            config_dir,
            dir,
        }
    }

    /// A new client connected to this broker.
    pub(crate) fn client(&self) -> Client {
        Client::connect_socket(&self.socket).expect("connect to the broker")
    }

    /// Kills the broker and starts a new one on the same socket.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.child = spawn_child(&self.socket, &self.config_dir);
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` and returns once it serves (`--ready-fd`).
fn spawn_child(socket: &Path, config_dir: &Path) -> Child {
    let mut cmd = Command::new(broker_bin());
    cmd.arg("serve")
        .arg("--socket")
        .arg(socket)
        .arg("--config-dir")
        .arg(config_dir)
        .arg("--no-idle-exit")
        .arg("--backend")
        .arg("simulated")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    vmnet_broker_testkit::spawn_serving(&mut cmd).unwrap_or_else(|e| panic!("{e}"))
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Holders of `name` in `report`; a network that is gone has none.
pub(crate) fn holders(report: &StatusReport, name: &str) -> usize {
    report
        .networks
        .iter()
        .find(|n| n.name == name)
        .map_or(0, |n| n.holders)
}

/// Asks `client` for the status until `want` holds, failing after a while.
/// The broker learns of a closed connection on its own schedule, so tests
/// that close one wait for the effect instead of expecting it at once.
pub(crate) fn wait_for_status(client: &Client, what: &str, want: impl Fn(&StatusReport) -> bool) {
    let start = Instant::now();
    loop {
        let report = client.status().expect("status");
        if want(&report) {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "gave up waiting for {what}; last status: {report:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
