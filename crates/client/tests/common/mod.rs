//! Starting the real broker binary for end-to-end tests.
//!
//! The binary is `$VMNET_BROKER_BIN` if set, else `vmnet-broker` in the
//! cargo target directory next to this test (`target/debug/vmnet-broker`).
//! Build it first with `cargo build -p vmnet-broker`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vmnet_broker_client::{Client, StatusReport};

/// How long to wait for the broker to accept connections, or for a
/// condition to become true. A guard against hanging, not a measurement.
const PATIENCE: Duration = Duration::from_secs(20);

/// The broker binary to test.
pub(crate) fn broker_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("VMNET_BROKER_BIN") {
        return PathBuf::from(bin);
    }
    // target/debug/deps/<test> -> target/debug/vmnet-broker
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = dir.join(format!("vmnet-broker{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "broker binary {} not found: run `cargo build -p vmnet-broker` first \
         (or set VMNET_BROKER_BIN)",
        bin.display()
    );
    bin
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
        let mut broker = Self {
            child,
            socket,
            config_dir,
            dir,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the broker exited before accepting connections: {status}");
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the broker did not accept connections on {}",
                self.socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
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
        self.wait_ready();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_child(socket: &Path, config_dir: &Path) -> Child {
    Command::new(broker_bin())
        .arg("serve")
        .arg("--socket")
        .arg(socket)
        .arg("--config-dir")
        .arg(config_dir)
        .arg("--no-idle-exit")
        .arg("--backend")
        .arg("simulated")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the broker")
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
