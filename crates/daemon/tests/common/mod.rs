//! Shared harness for end-to-end tests: starts the real `vmnet-broker`
//! binary on a private socket (or, built with the `fake-apple` feature, on
//! a private Mach service over the fakes of crates/fake-apple) and talks to
//! it as real clients do.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) mod netns;

/// Path of the binary under test.
pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vmnet-broker"))
}

/// The exit status of a process that touched the fakes and leaked (see
/// docs/macos-fakes.md).
pub(crate) const LEAK_EXIT_STATUS: i32 = 87;

/// A Mach service name no other test (or test process) uses. The fakes'
/// sockets live in their default per-user directory, which this process
/// shares with the processes it starts.
pub(crate) fn unique_service() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "test.fake-xpc.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running broker with its own temporary directory, socket and config.
pub(crate) struct Broker {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// Set by [`Broker::prepare_xpc`]: the broker serves this Mach service
    /// (through the XPC driver and the fakes) instead of `socket`.
    pub service: Option<String>,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Broker {
    /// A broker with the given config files and extra `serve` arguments.
    pub(crate) fn start(files: &[(&str, &str)], extra: &[&str]) -> Self {
        let b = Self::prepare(files);
        b.spawn(extra)
    }

    /// Creates the directory and config files without starting anything.
    pub(crate) fn prepare(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("conf");
        std::fs::create_dir(&config).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (name, body) in files {
            write_config(&config, name, body);
        }
        Self {
            socket: dir.path().join("broker.sock"),
            service: None,
            log: dir.path().join("broker.log"),
            config,
            dir,
            child: None,
        }
    }

    /// [`Broker::prepare`] for a broker that serves a private Mach service
    /// over the fakes, with the vmnet backend, and writes its leak report
    /// into its directory (the binary must be built with `fake-apple`).
    pub(crate) fn prepare_xpc(files: &[(&str, &str)]) -> Self {
        let mut b = Self::prepare(files);
        std::fs::create_dir(b.dir.path().join("reports")).unwrap();
        b.service = Some(unique_service());
        b
    }

    /// Adds a host network `NAME.json` for each of `names`.
    pub(crate) fn with_host_networks(self, names: &[String]) -> Self {
        for name in names {
            write_config(&self.config, &format!("{name}.json"), r#"{"mode": "host"}"#);
        }
        self
    }

    /// The Mach service (for a broker made by [`Broker::prepare_xpc`]).
    pub(crate) fn service(&self) -> &str {
        self.service.as_deref().expect("a broker on a Mach service")
    }

    /// The `serve` command for this broker, with `extra` arguments.
    pub(crate) fn serve_command(&self, extra: &[&str]) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("serve");
        match &self.service {
            None => {
                cmd.arg("--socket")
                    .arg(&self.socket)
                    .args(["--sim-seed", "1"]);
            }
            Some(service) => {
                cmd.args(["--backend", "vmnet", "--mach-service", service])
                    // Without --socket the state would go to the user's
                    // default directory, shared between runs.
                    .arg("--state-dir")
                    .arg(self.dir.path().join("state"))
                    .env(
                        "VMNET_BROKER_FAKE_REPORT_DIR",
                        self.dir.path().join("reports"),
                    );
            }
        }
        cmd.arg("--config-dir")
            .arg(&self.config)
            .args(["--log-level", "debug"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        cmd
    }

    /// The arguments that point a client command at this broker.
    fn client_args(&self) -> Vec<std::ffi::OsString> {
        match &self.service {
            None => vec!["--socket".into(), self.socket.clone().into()],
            Some(service) => vec!["--mach-service".into(), service.into()],
        }
    }

    /// Uses `path` as the socket instead of the default one.
    pub(crate) fn with_socket(mut self, path: PathBuf) -> Self {
        self.socket = path;
        self
    }

    /// Starts `serve` and waits until it serves (`--ready-fd`).
    pub(crate) fn spawn(mut self, extra: &[&str]) -> Self {
        let mut cmd = self.serve_command(extra);
        match vmnet_broker_testkit::spawn_serving(&mut cmd) {
            Ok(child) => self.child = Some(child),
            Err(e) => panic!("{e}:\n{}", self.log_text()),
        }
        self
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A raw JSON-lines connection.
    pub(crate) fn connect(&self) -> Conn {
        Conn::new(UnixStream::connect(&self.socket).unwrap())
    }

    /// Runs a `vmnet-broker` client command against this broker.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .args(self.client_args())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Starts `vmnet-broker acquire NAMES --hold` as a separate process and
    /// waits until it has printed one line per network.
    pub(crate) fn hold(&self, names: &[&str]) -> Holder {
        let mut child = Command::new(bin())
            .arg("acquire")
            .args(names)
            .arg("--hold")
            .args(self.client_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        for _ in names {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "holder printed nothing");
            lines.push(serde_json::from_str(&line).unwrap());
        }
        Holder { child, lines }
    }

    /// The status report as seen by a fresh connection (over a Mach
    /// service: from `status --json`).
    pub(crate) fn status(&self) -> Value {
        if self.service.is_some() {
            let out = self.cli(&["status", "--json"]);
            assert!(out.status.success(), "status: {out:?}");
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        let mut c = self.connect();
        let r = c.request(&serde_json::json!({"command": "status"}));
        r["status"].clone()
    }

    /// Holders of `name`, or None if the network is not live.
    pub(crate) fn holders(&self, name: &str) -> Option<u64> {
        self.status()["networks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .map(|n| n["holders"].as_u64().unwrap())
    }

    /// Waits until `cond` holds, polling (the broker is asynchronous to us).
    pub(crate) fn wait_for(&self, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().unwrap().id()).unwrap()
    }

    /// Sends a signal to the broker.
    pub(crate) fn signal(&self, sig: i32) {
        let r = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(r.success());
    }

    /// Suspends the broker (SIGSTOP) and returns once it has stopped
    /// running: it keeps its connections but answers nothing.
    pub(crate) fn suspend(&self) {
        vmnet_broker_testkit::suspend_process(self.child.as_ref().unwrap().id()).unwrap();
    }

    /// Resumes the broker after [`Broker::suspend`] (SIGCONT).
    pub(crate) fn resume(&self) {
        vmnet_broker_testkit::resume_process(self.child.as_ref().unwrap().id()).unwrap();
    }

    /// Stops the broker with SIGTERM, repeated until it exits (a client
    /// that just closed may still count as connected for a moment).
    pub(crate) fn stop(&mut self) -> ExitStatus {
        for _ in 0..100 {
            self.signal(15);
            if let Some(status) = self.wait_exit(Duration::from_millis(200)) {
                return status;
            }
        }
        panic!("broker did not stop on SIGTERM:\n{}", self.log_text());
    }

    /// Waits for the broker to exit on its own.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Scenarios both transports run (tests/e2e.rs, tests/fake_xpc.rs).
impl Broker {
    /// SIGTERM and SIGINT are logged and ignored while a client holds a
    /// network; once the holder has left, SIGTERM ends the broker, which
    /// releases every network. Returns the broker's exit status.
    pub(crate) fn signals_wait_for_holders(&mut self) -> ExitStatus {
        let holder = self.hold(&["shared"]);
        self.signal(15);
        self.signal(2);
        // Still serving, still holding.
        self.wait_for("the signals to be logged", |b| {
            b.log_text().contains("SIGINT received")
        });
        assert_eq!(self.holders("shared"), Some(1));
        assert!(self.wait_exit(Duration::from_millis(300)).is_none());
        assert!(holder.finish().success());
        let status = self.stop();
        let log = self.log_text();
        assert!(log.contains("all networks released"), "{log}");
        status
    }
}

impl Broker {
    /// The fakes' leak report of the broker (it must have exited; see
    /// [`Broker::prepare_xpc`]).
    pub(crate) fn leak_report(&self) -> String {
        let path = self
            .dir
            .path()
            .join("reports")
            .join(format!("report-{}.txt", self.pid()));
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "no leak report {}: {e}\n{}",
                path.display(),
                self.log_text()
            )
        })
    }

    /// Asserts that the broker exited 0 and its leak report says "0
    /// leaked".
    pub(crate) fn assert_clean_exit(&self, status: ExitStatus) {
        assert_ne!(
            status.code(),
            Some(LEAK_EXIT_STATUS),
            "the broker leaked:\n{}",
            self.leak_report()
        );
        assert!(status.success(), "{status}\n{}", self.log_text());
        let report = self.leak_report();
        assert!(report.contains(": 0 leaked,"), "{report}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `net0`, `net1`, ...: `count` network names.
pub(crate) fn network_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("net{i}")).collect()
}

/// Writes a config file with safe permissions.
pub(crate) fn write_config(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// A `vmnet-broker acquire --hold` process.
pub(crate) struct Holder {
    pub child: Child,
    /// The JSON line printed for each network.
    pub lines: Vec<Value>,
}

impl Holder {
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// Ends the hold by closing its standard input; returns its exit status.
    pub(crate) fn finish(mut self) -> ExitStatus {
        drop(self.child.stdin.take());
        self.child.wait().unwrap()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw connection speaking JSON lines.
pub(crate) struct Conn {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Conn {
    pub(crate) fn new(stream: UnixStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Self { stream, reader }
    }

    /// Sends raw bytes (add the newline yourself).
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one reply line.
    pub(crate) fn read_reply(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "no complete reply line: {line:?}");
        serde_json::from_str(&line).unwrap()
    }

    pub(crate) fn request(&mut self, v: &Value) -> Value {
        let mut line = serde_json::to_vec(v).unwrap();
        line.push(b'\n');
        self.send_raw(&line);
        self.read_reply()
    }

    pub(crate) fn acquire(&mut self, name: &str) -> Value {
        self.request(&serde_json::json!({"command": "acquire", "network_name": name}))
    }
}
