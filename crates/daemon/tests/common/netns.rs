//! Running the real broker inside a network namespace of the test's own,
//! with made-up interfaces, so that host-network behaviour (collisions with
//! interface addresses and routes) is tested against real kernel state
//! without touching the machine's interfaces.
//!
//! Each process is started through `unshare --net` (plus `--map-root-user`
//! when the test does not run as root), which gives it a new, empty network
//! namespace; a shell then creates the interfaces and routes with `ip` and
//! execs the program, so the program's pid is the one the test sees and
//! signals go straight to it. The namespace disappears with the process:
//! there is no name to clean up and nothing outside it is changed. Unix
//! sockets are files, so the test reaches the broker from outside.
//!
//! Interfaces are `dummy` links where the kernel has that driver, and
//! otherwise bridges without ports, which behave the same for addresses
//! and routes (and are what vmnet's own interfaces are on macOS).
//!
//! Where namespaces cannot be made (a container without the privilege,
//! `unshare` missing), [`skip_without_netns!`] prints a SKIPPED line and
//! returns from the test; with `VMNET_BROKER_REQUIRE_NETNS=1` it fails
//! instead, so CI can insist.

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Broker, bin};

/// Interfaces and routes to create in a fresh namespace.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetNs {
    /// Shell commands run in the namespace before the program.
    steps: Vec<String>,
}

impl NetNs {
    /// An empty namespace (only a loopback interface, down).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// An interface `name` that is up, with the addresses given as CIDR
    /// (`192.168.105.1/24`, `fd00:105::1/64`).
    pub(crate) fn interface(mut self, name: &str, addrs: &[&str]) -> Self {
        assert!(is_simple(name), "interface name {name:?}");
        self.steps.push(format!(
            "{{ ip link add {name} type dummy 2>/dev/null || ip link add {name} type bridge; }}"
        ));
        self.steps.push(format!("ip link set {name} up"));
        for addr in addrs {
            assert!(is_simple(addr), "address {addr:?}");
            let nodad = if addr.contains(':') { " nodad" } else { "" };
            self.steps
                .push(format!("ip addr add {addr} dev {name}{nodad}"));
        }
        self
    }

    /// A route to `dest` (CIDR) through the interface `dev`, without an
    /// address of that network on any interface (a VPN's route, say).
    pub(crate) fn route(mut self, dest: &str, dev: &str) -> Self {
        assert!(is_simple(dest) && is_simple(dev), "route {dest} {dev}");
        self.steps.push(format!("ip route add {dest} dev {dev}"));
        self
    }

    /// `program args...` to run inside a new namespace set up as described.
    pub(crate) fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.arg("--net");
        if !is_root() {
            cmd.arg("--map-root-user");
        }
        let mut script = String::from("set -e\n");
        for step in &self.steps {
            script.push_str(step);
            script.push('\n');
        }
        script.push_str("exec \"$@\"\n");
        cmd.args(["--", "sh", "-c", &script, "sh"]).arg(program);
        cmd
    }

    /// Runs `ip ARGS` in a namespace set up like this one and returns its
    /// output (to look at the namespace the way the broker sees it).
    pub(crate) fn ip(&self, args: &[&str]) -> String {
        let out = self.command("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn is_simple(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '/' | '-' | '_'))
}

fn is_root() -> bool {
    effective_uid() == 0
}

/// The effective uid, from `id -u` (the test crate does not link nix).
fn effective_uid() -> u32 {
    static EUID: OnceLock<u32> = OnceLock::new();
    *EUID.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u32::MAX)
    })
}

/// Whether this machine lets the test make a network namespace with an
/// interface in it; the reason when not. Probed once.
pub(crate) fn netns_available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let out = NetNs::new()
                .interface("probe0", &["192.168.250.1/24"])
                .command("true")
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run unshare: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "unshare --net with an interface failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        })
        .clone()
}

/// Returns from the calling test with a SKIPPED line when network
/// namespaces are not available, or fails it when
/// `VMNET_BROKER_REQUIRE_NETNS=1`.
#[macro_export]
macro_rules! skip_without_netns {
    () => {
        if let Err(why) = $crate::common::netns::netns_available() {
            if std::env::var_os("VMNET_BROKER_REQUIRE_NETNS").is_some_and(|v| v == "1") {
                panic!("network namespaces are required but unavailable: {why}");
            }
            eprintln!("SKIPPED: network namespaces are not available here: {why}");
            return;
        }
    };
}

impl Broker {
    /// Starts `serve` inside a new network namespace set up by `ns` and
    /// waits until the socket answers.
    pub(crate) fn spawn_in(mut self, ns: &NetNs, extra: &[&str]) -> Self {
        let log = std::fs::File::create(&self.log).unwrap();
        let mut cmd = ns.command(bin());
        cmd.arg("serve")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--config-dir")
            .arg(&self.config)
            .args(["--sim-seed", "1", "--log-level", "debug"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("broker exited early ({status}):\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "broker did not start:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self
    }

    /// Runs `vmnet-broker ARGS` (a client command such as `check`) inside
    /// a namespace set up by `ns`.
    pub(crate) fn cli_in(&self, ns: &NetNs, args: &[&str]) -> std::process::Output {
        ns.command(bin())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}
