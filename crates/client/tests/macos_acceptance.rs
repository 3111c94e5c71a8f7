//! macOS acceptance suite: the cases of the original project's end-to-end
//! tests, run against an installed broker over XPC, plus proof that each
//! serialization gives a usable vmnet network in this process.
//!
//! Compiled only on macOS with the `acceptance` feature, because it needs
//! macOS 26, an installed broker (`sudo vmnet-broker install`) and a test
//! binary signed with the `com.apple.security.virtualization` entitlement:
//!
//! ```sh
//! cargo test -p vmnet-broker-client --features acceptance --test macos_acceptance --no-run
//! scripts/macos-sign target/debug/deps/macos_acceptance-*   # the test binary
//! cargo test -p vmnet-broker-client --features acceptance --test macos_acceptance
//! ```
//!
//! Environment:
//!
//! - `VMNET_BROKER_ORIGINAL=1`: certify the original C broker. Nothing of
//!   our additions is used: no `network_info` (subnets are read from the
//!   network each serialization gives), no `release` (handles are
//!   detached, holds end with the connection), no `status`. The same cases
//!   then prove the original and this broker interchangeable for clients.
//! - `VMNET_BROKER_NINE_NETWORKS=1`: the broker has the networks `acc-0` to
//!   `acc-8` configured (for example `/etc/vmnet-broker.d/acc-N.json` with
//!   `{"mode": "host"}`); runs the "ninth distinct network is 7" case.
//! - `VMNET_BROKER_SLOW=1`: runs the idle-removal case, which waits for the
//!   broker's idle delay (ours only: it reads the delay from `status`).
//! - Run as root to include the SIGTERM case (it signals the broker).
//!
//! Run the suite with `-- --test-threads=1`: the idle and SIGTERM cases look
//! at the broker's shared state, which parallel cases would disturb.
//!
//! It has never been run by us (we have no Mac); it is type-checked in CI.

#![cfg(all(target_os = "macos", feature = "acceptance"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::Duration;

use vmnet_broker_client::{Client, Network, Status};
use vmnet_broker_macos::vmnet::{VmnetInterface, VmnetNetwork};

/// Whether the suite certifies the original broker (no extensions used).
fn original() -> bool {
    std::env::var_os("VMNET_BROKER_ORIGINAL").is_some_and(|v| !v.is_empty())
}

fn enabled(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

/// A started interface that is stopped, and waited for, whatever happens:
/// also when an assertion fails while it runs, so a failing case never
/// leaves interfaces behind.
struct Running(Option<VmnetInterface>);

impl Running {
    fn start(network: &VmnetNetwork, what: &str) -> Self {
        let (interface, _params) = VmnetInterface::start(network)
            .unwrap_or_else(|e| panic!("{what}: start interface: {e}"));
        Self(Some(interface))
    }

    fn stop(mut self, what: &str) {
        if let Some(i) = self.0.take() {
            i.stop()
                .unwrap_or_else(|e| panic!("{what}: stop interface: {e}"));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(i) = self.0.take() {
            // Already failing: stop and wait, but do not panic again.
            let _ = i.stop();
        }
    }
}

/// This process's own network from the broker's serialization.
fn network_of(net: &Network) -> VmnetNetwork {
    let serialization = net
        .xpc_serialization()
        .expect("an XPC broker sends an XPC serialization");
    VmnetNetwork::create_with_serialization(&serialization.retained())
        .unwrap_or_else(|e| panic!("{}: create_with_serialization: {e}", net.name()))
}

/// Turns the serialization into a network, starts and stops an interface
/// on it, and returns the network's subnet (read from the network, so it
/// works with the original broker, which sends no `network_info`).
fn use_network(net: &Network) -> Ipv4Addr {
    let network = network_of(net);
    Running::start(&network, net.name()).stop(net.name());
    network.ipv4_subnet().0
}

fn acquire(client: &Client, name: &str) -> (Network, Ipv4Addr) {
    let net = client
        .acquire(name)
        .unwrap_or_else(|e| panic!("acquire {name}: {e}"));
    let subnet = use_network(&net);
    if let Some(info) = net.info() {
        assert_eq!(
            info.subnet, subnet,
            "{name}: network_info and the network disagree"
        );
    }
    (net, subnet)
}

/// Lets go of a handle: `release` with our broker; with the original,
/// which has no `release`, the hold stays until the connection closes.
fn finish(net: Network) {
    if original() {
        net.detach();
    } else {
        net.release().unwrap();
    }
}

fn connect() -> Client {
    Client::connect_xpc().unwrap()
}

#[test]
fn acquire_shared() {
    let c = connect();
    let (net, _) = acquire(&c, "shared");
    if !original() {
        assert_eq!(net.info().map(|i| i.mode.as_str()), Some("shared"));
    }
    finish(net);
}

#[test]
fn acquire_host() {
    let c = connect();
    let (net, _) = acquire(&c, "host");
    finish(net);
}

#[test]
fn acquire_both() {
    let c = connect();
    let (a, sa) = acquire(&c, "shared");
    let (b, sb) = acquire(&c, "host");
    assert_ne!(sa, sb);
    finish(a);
    finish(b);
}

#[test]
fn acquire_the_same_three_and_nine_times() {
    for times in [3, 9] {
        let c = connect();
        let nets: Vec<(Network, Ipv4Addr)> = (0..times).map(|_| acquire(&c, "shared")).collect();
        let first = nets[0].1;
        assert!(nets.iter().all(|(_, s)| *s == first));
        nets.into_iter().for_each(|(n, _)| finish(n));
    }
}

/// Nine interfaces on one network, all running at the same time.
#[test]
fn nine_interfaces_of_one_network_run_at_once() {
    let c = connect();
    let net = c.acquire("shared").unwrap();
    let network = network_of(&net);
    let running: Vec<Running> = (0..9)
        .map(|i| Running::start(&network, &format!("interface {i}")))
        .collect();
    for (i, r) in running.into_iter().enumerate() {
        r.stop(&format!("interface {i}"));
    }
    finish(net);
}

#[test]
fn three_serial_clients_reuse_the_network() {
    let mut subnets = Vec::new();
    for _ in 0..3 {
        let c = connect();
        let (net, subnet) = acquire(&c, "shared");
        subnets.push(subnet);
        finish(net);
    }
    assert!(subnets.windows(2).all(|w| w[0] == w[1]), "{subnets:?}");
}

#[test]
fn parallel_clients_on_different_and_on_the_same_network() {
    for names in [["shared", "host"], ["shared", "shared"]] {
        let handles: Vec<_> = names
            .into_iter()
            .map(|name| {
                thread::spawn(move || {
                    let c = connect();
                    let (net, subnet) = acquire(&c, name);
                    finish(net);
                    subnet
                })
            })
            .collect();
        let subnets: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        if names[0] == names[1] {
            assert_eq!(subnets[0], subnets[1]);
        }
    }
}

#[test]
fn no_such_network_is_5_whatever_the_name() {
    let c = connect();
    for name in [
        "no-such-network",
        "",
        "a b",
        "../etc/passwd",
        &"x".repeat(65),
    ] {
        let e = c.acquire(name).unwrap_err();
        assert_eq!(e.status(), Status::NOT_FOUND, "{name:?}");
    }
}

/// Environment variable that turns this test binary into a holding client
/// for [`three_client_processes_share_a_network`].
const CHILD_ENV: &str = "VMNET_BROKER_ACCEPTANCE_CHILD";

/// Not a test of its own: the body of the child processes of
/// [`three_client_processes_share_a_network`] (it returns at once unless
/// started by it). The child acquires `shared`, prints `READY <subnet>`,
/// answers each `use` line by starting and stopping an interface (`OK`),
/// and exits at end of input, dropping its connection.
#[test]
fn child_holder() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let c = connect();
    let net = c.acquire("shared").unwrap();
    let network = network_of(&net);
    println!("READY {}", network.ipv4_subnet().0);
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        if line.trim() == "use" {
            Running::start(&network, "child").stop("child");
            println!("OK");
        }
    }
    net.detach();
}

struct ChildClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl ChildClient {
    fn spawn() -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_holder",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// The next line starting with `prefix` (the test harness prints its
    /// own lines around ours).
    fn expect(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "child ended before printing {prefix}");
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }

    fn use_network(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "use").unwrap();
        stdin.flush().unwrap();
        self.expect("OK");
    }

    fn exit(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for ChildClient {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Three separate client processes share one network; when one exits, the
/// other two keep theirs (they can still start interfaces on it).
#[test]
fn three_client_processes_share_a_network() {
    let mut children: Vec<ChildClient> = (0..3).map(|_| ChildClient::spawn()).collect();
    let subnets: Vec<String> = children.iter_mut().map(|c| c.expect("READY")).collect();
    assert!(subnets.windows(2).all(|w| w[0] == w[1]), "{subnets:?}");
    let first = children.remove(0);
    first.exit();
    for c in &mut children {
        c.use_network();
    }
    if !original() {
        let status = connect().status().unwrap();
        let shared = status.networks.iter().find(|n| n.name == "shared").unwrap();
        assert!(shared.holders >= 2, "holders: {}", shared.holders);
    }
    for c in children {
        c.exit();
    }
}

/// A client holds at most eight distinct networks: the ninth is refused
/// with 7 (internal error), as the original broker answers.
#[test]
fn the_ninth_distinct_network_is_refused_with_7() {
    if !enabled("VMNET_BROKER_NINE_NETWORKS") {
        eprintln!("skipped: set VMNET_BROKER_NINE_NETWORKS=1 with acc-0..acc-8 configured");
        return;
    }
    let c = connect();
    let held: Vec<Network> = (0..8)
        .map(|i| c.acquire(&format!("acc-{i}")).unwrap())
        .collect();
    let e = c.acquire("acc-8").unwrap_err();
    assert_eq!(e.status(), Status::INTERNAL_ERROR);
    // Acquiring one it holds again is still fine.
    finish(c.acquire("acc-0").unwrap());
    held.into_iter().for_each(finish);
}

/// A network nobody holds stays for the idle delay: acquiring it again in
/// that window gives the same network; after the delay it is removed.
#[test]
fn idle_network_is_reused_within_the_delay_and_removed_after() {
    let (a, subnet_a) = {
        let c = connect();
        let (net, subnet) = acquire(&c, "host");
        finish(net);
        (c, subnet)
    };
    drop(a); // the last holder is gone: the removal delay starts
    let c = connect();
    let (net, subnet_b) = acquire(&c, "host");
    assert_eq!(subnet_a, subnet_b, "re-acquired within the delay");
    if original() {
        finish(net);
        return;
    }
    let before = c.status().unwrap();
    let created = before.counters.creations;
    finish(net);
    drop(c);
    if !enabled("VMNET_BROKER_SLOW") {
        eprintln!("skipped the removal half: set VMNET_BROKER_SLOW=1");
        return;
    }
    let delay = Duration::from_secs_f64(before.network_idle_timeout_seconds);
    thread::sleep(delay + Duration::from_secs(5));
    let after = connect().status().unwrap();
    assert!(
        after
            .networks
            .iter()
            .all(|n| n.name != "host" || n.holders > 0),
        "host still listed idle after the delay"
    );
    assert!(after.counters.removals >= 1);
    assert!(after.counters.creations >= created);
}

/// The broker's pid: from launchd (works for the original too).
fn broker_pid() -> Option<i32> {
    let out = Command::new("launchctl")
        .args(["print", &format!("system/{LABEL}")])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("pid = ")?.parse().ok())
}

/// The launchd label of the installed broker (the original's and ours).
const LABEL: &str = "com.github.nirs.vmnet-broker";

/// SIGTERM while a client holds a network is ignored: the broker keeps
/// running and the client keeps its network.
#[test]
fn sigterm_is_ignored_while_networks_are_held() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: run as root to signal the broker");
        return;
    }
    let c = connect();
    let (net, subnet) = acquire(&c, "shared");
    let pid = broker_pid().expect("the broker runs while a client holds a network");
    // SAFETY: kill with a valid signal number; pid comes from launchd.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    thread::sleep(Duration::from_secs(2));
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "the broker exited");
    assert_eq!(broker_pid(), Some(pid), "the broker was replaced");
    assert_eq!(use_network(&net), subnet);
    let (again, subnet_again) = acquire(&c, "shared");
    assert_eq!(subnet_again, subnet);
    finish(again);
    finish(net);
}
