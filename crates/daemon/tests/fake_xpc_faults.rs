//! A property test over the fake XPC: the real broker (built with
//! `fake-apple`) and real client processes run through random, seeded
//! fault schedules of the fakes (`VMNET_BROKER_FAKE_FAULTS`,
//! docs/macos-fakes.md "Injected faults"): vmnet creation failing, the
//! serialization missing, replies that cannot be made, dropped replies,
//! connections interrupted between a request and its reply, events
//! delivered late. After each schedule:
//!
//! - every client ended by itself within its timeout and a margin, with
//!   success or a status (never a signal, never the fakes' leak status);
//! - the broker's holder counts are exactly those of the holders that were
//!   answered and are still running, also after some are killed (no hold
//!   lost or duplicated);
//! - the broker still serves a client without faults;
//! - after SIGTERM it exits 0 and its leak report says "0 leaked".
//!
//! `VMNET_BROKER_FAULT_CASES` (default 8) and `VMNET_BROKER_FAULT_SEED`
//! (default 2026) choose the schedules; a failure prints the schedule and
//! its seed, and `VMNET_BROKER_FAULT_SEED=S VMNET_BROKER_FAULT_CASES=1`
//! replays it.
//!
//! Run with `cargo test -p vmnet-broker --features fake-apple --test
//! fake_xpc_faults -- --nocapture`.

#![cfg(feature = "fake-apple")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Broker, LEAK_EXIT_STATUS, bin};

/// A small deterministic generator (SplitMix64), so that a seed names a
/// schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const NETWORKS: [&str; 3] = ["shared", "host", "lab"];

/// The client's timeout: a dropped reply costs this much.
const CLIENT_TIMEOUT: &str = "1";

/// How long a client may take beyond its timeout before it counts as hung.
const MARGIN: Duration = Duration::from_secs(15);

/// A random schedule for the broker: two to four rules.
fn broker_schedule(rng: &mut Rng, seed: u64) -> String {
    let mut rules = vec![format!("seed={seed}")];
    let count = 2 + rng.below(3);
    for _ in 0..count {
        let nth = 1 + rng.below(4);
        let p = [0.1, 0.2, 0.3][usize::try_from(rng.below(3)).unwrap()];
        let rule = match rng.below(6) {
            0 if rng.chance(50) => format!("vmnet_network_create@{nth}=fail"),
            0 => format!("vmnet_network_create%{p}=fail"),
            1 if rng.chance(50) => format!("vmnet_network_copy_serialization@{nth}=null"),
            1 => format!("vmnet_network_copy_serialization%{p}=null"),
            2 => format!("xpc_dictionary_create_reply%{p}=null"),
            3 => format!("reply%{p}=drop"),
            4 => format!("reply%{p}=interrupt"),
            _ => format!("event%{p}=delay:{}", 10 + rng.below(150)),
        };
        rules.push(rule);
    }
    rules.join(";")
}

/// A client process's schedule: late events, sometimes.
fn client_schedule(rng: &mut Rng, seed: u64) -> Option<String> {
    rng.chance(30)
        .then(|| format!("seed={seed};event%0.3=delay:{}", 5 + rng.below(100)))
}

/// A `vmnet-broker acquire` process and what it printed.
struct Client {
    child: Child,
    names: Vec<&'static str>,
    hold: bool,
    started: Instant,
    /// Lines of standard output, from a reader thread.
    lines: mpsc::Receiver<String>,
}

enum Outcome {
    /// Answered: the networks it acquired (a holder keeps them).
    Acquired,
    /// Ended by itself with this status.
    Ended(ExitStatus),
}

fn spawn_client(
    b: &Broker,
    names: Vec<&'static str>,
    hold: bool,
    faults: Option<String>,
) -> Client {
    let mut cmd = Command::new(bin());
    cmd.arg("acquire")
        .args(&names)
        .args(["--timeout", CLIENT_TIMEOUT, "--mach-service", b.service()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env("VMNET_BROKER_FAKE_REPORT_DIR", b.dir.path().join("reports"));
    if hold {
        cmd.arg("--hold");
    }
    if let Some(f) = faults {
        cmd.env("VMNET_BROKER_FAKE_FAULTS", f);
    }
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Client {
        child,
        names,
        hold,
        started: Instant::now(),
        lines,
    }
}

impl Client {
    /// Waits until the client was answered (a holder printed every line)
    /// or ended; panics if it does neither in time.
    fn outcome(&mut self, context: &str) -> Outcome {
        let deadline = self.started + Duration::from_secs(1) + MARGIN;
        let mut printed = 0;
        loop {
            while self.lines.try_recv().is_ok() {
                printed += 1;
            }
            if self.hold && printed == self.names.len() {
                return Outcome::Acquired;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.code().is_some(),
                    "{context}: client {:?} ended by a signal: {status}",
                    self.names
                );
                assert_ne!(
                    status.code(),
                    Some(LEAK_EXIT_STATUS),
                    "{context}: client {:?} leaked (fakes' leak report)",
                    self.names
                );
                return Outcome::Ended(status);
            }
            assert!(
                Instant::now() < deadline,
                "{context}: client {:?} neither answered nor ended in {:?}",
                self.names,
                deadline - self.started
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A CLI command of `b`'s with the client timeout, no faults of its own and
/// no standard input or error.
fn fault_free_cli(b: &Broker, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .args(["--timeout", CLIENT_TIMEOUT, "--mach-service", b.service()])
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// The broker's holder count per network, from a `status` that may need a
/// few tries (its reply may be the one a fault drops).
fn holders(b: &Broker) -> Option<BTreeMap<String, u64>> {
    for _ in 0..20 {
        let out = fault_free_cli(b, &["status", "--json"]).output().unwrap();
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            return Some(
                v["networks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|n| n["holders"].as_u64().unwrap() > 0)
                    .map(|n| {
                        (
                            n["name"].as_str().unwrap().to_owned(),
                            n["holders"].as_u64().unwrap(),
                        )
                    })
                    .collect(),
            );
        }
    }
    None
}

fn expected(holders: &[Client]) -> BTreeMap<String, u64> {
    let mut want = BTreeMap::new();
    for h in holders {
        for n in &h.names {
            *want.entry((*n).to_owned()).or_insert(0) += 1;
        }
    }
    want
}

/// Waits until the broker's holder counts are those of `holders` still
/// running. A holder may end by itself meanwhile (its liveness check can
/// meet a fault too): it must end with a status, and its holds must go.
fn wait_for_holders(b: &Broker, holders_left: &mut Vec<Client>, context: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        holders_left.retain_mut(|h| match h.child.try_wait().unwrap() {
            None => true,
            Some(status) => {
                assert!(
                    status.code().is_some() && status.code() != Some(LEAK_EXIT_STATUS),
                    "{context}: holder {:?} ended with {status}",
                    h.names
                );
                false
            }
        });
        let want = expected(holders_left);
        let got = holders(b);
        if got.as_ref() == Some(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: holders {got:?}, expected {want:?}\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_case(seed: u64) -> usize {
    let mut rng = Rng(seed);
    let schedule = broker_schedule(&mut rng, seed);
    let context = format!("seed {seed}, broker schedule {schedule:?}");
    eprintln!("fault case: {context}");
    let mut b = Broker::prepare_xpc(&[("lab.json", r#"{"mode": "host"}"#)]);
    let mut cmd = b.serve_command(&["--no-idle-exit", "--network-idle-timeout", "0.3"]);
    cmd.env("VMNET_BROKER_FAKE_FAULTS", &schedule);
    b.child = Some(vmnet_broker_testkit::spawn_serving(&mut cmd).unwrap());

    // Holders and one-shot clients, all at once.
    let mut clients = Vec::new();
    for i in 0..10 {
        let first = NETWORKS[usize::try_from(rng.below(3)).unwrap()];
        let mut names = vec![first];
        if rng.chance(30) {
            let second = NETWORKS[usize::try_from(rng.below(3)).unwrap()];
            if second != first {
                names.push(second);
            }
        }
        let faults = client_schedule(&mut rng, seed * 100 + i);
        clients.push(spawn_client(&b, names, i % 3 != 0, faults));
    }
    let mut live = Vec::new();
    let mut ended: BTreeMap<i32, usize> = BTreeMap::new();
    for mut c in clients {
        match c.outcome(&context) {
            Outcome::Acquired => live.push(c),
            Outcome::Ended(status) => {
                *ended.entry(status.code().unwrap_or(-1)).or_insert(0) += 1;
            }
        }
    }
    let answered = live.len();
    // Exactly the holders that were answered and still run hold.
    wait_for_holders(&b, &mut live, &context);

    // Kill half of them: their holds end, the others' stay.
    let mut kept = Vec::new();
    for (i, mut h) in live.into_iter().enumerate() {
        if i % 2 == 0 {
            let _ = h.child.kill();
            let _ = h.child.wait();
        } else {
            kept.push(h);
        }
    }
    wait_for_holders(&b, &mut kept, &context);

    // Still serving: a client without faults is answered (retried, since
    // the broker's own faults may hit its reply).
    let served = (0..20).any(|_| {
        fault_free_cli(&b, &["acquire", "shared"])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    });
    assert!(
        served,
        "{context}: the broker stopped serving\n{}",
        b.log_text()
    );

    // The rest leave; nothing is held; SIGTERM ends it cleanly.
    for mut h in kept {
        drop(h.child.stdin.take());
        let status = h.child.wait().unwrap();
        assert!(
            status.code().is_some(),
            "{context}: holder ended by {status}"
        );
    }
    wait_for_holders(&b, &mut Vec::new(), &context);
    let status = b.stop();
    b.assert_clean_exit(status);
    let injected = b.log_text().matches("fake-apple: injected fault:").count();
    eprintln!(
        "fault case: seed {seed}: {answered} holders answered, other clients ended with \
         {ended:?} (exit code: count), {injected} faults injected"
    );
    injected
}

#[test]
fn random_fault_schedules_keep_holds_exact_and_the_broker_serving() {
    let cases: u64 = std::env::var("VMNET_BROKER_FAULT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let first: u64 = std::env::var("VMNET_BROKER_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2026);
    let mut injected = 0;
    for seed in first..first + cases {
        injected += run_case(seed);
    }
    // The schedules must have bitten: a test whose faults never fire
    // proves nothing.
    assert!(
        injected >= usize::try_from(cases).unwrap(),
        "only {injected} faults injected"
    );
    eprintln!("fault schedules: {cases} cases, {injected} faults injected in the broker");
}
