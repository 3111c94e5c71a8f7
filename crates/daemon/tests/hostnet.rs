//! End-to-end tests of the broker among the host's networks, each in a
//! network namespace of its own with made-up interfaces (see
//! `common/netns.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Broker;
use common::netns::NetNs;

/// The namespace has exactly the interfaces and routes the test asked for,
/// and nothing is created outside it.
#[test]
fn a_test_namespace_holds_only_its_own_interfaces() {
    skip_without_netns!();
    let ns = NetNs::new()
        .interface("vmbt0", &["192.168.105.1/24", "fd00:105::1/64"])
        .route("10.20.0.0/16", "vmbt0");
    let addrs = ns.ip(&["-o", "addr", "show"]);
    assert!(addrs.contains("192.168.105.1/24"), "{addrs}");
    assert!(addrs.contains("fd00:105::1/64"), "{addrs}");
    let links = ns.ip(&["-o", "link", "show"]);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .collect();
    assert_eq!(names, ["lo", "vmbt0"], "{links}");
    let routes = ns.ip(&["route", "show"]);
    assert!(routes.contains("10.20.0.0/16 dev vmbt0"), "{routes}");
    // Outside, the machine has no such interface.
    let outside = std::process::Command::new("ip")
        .args(["link", "show", "vmbt0"])
        .output()
        .unwrap();
    assert!(
        !outside.status.success(),
        "vmbt0 leaked out of the namespace"
    );
}

/// The real broker runs inside a test namespace and is reached through
/// its socket from outside, by a real client process.
#[test]
fn the_broker_serves_from_inside_a_namespace() {
    skip_without_netns!();
    let ns = NetNs::new().interface("vmbt0", &["192.168.105.1/24"]);
    let mut b = Broker::prepare(&[]).spawn_in(&ns, &["--no-idle-exit"]);
    let out = b.cli(&["acquire", "shared"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        b.log_text()
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["mode"], "shared");
    assert!(b.stop().success());
}

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn static_net(third: u8) -> String {
    format!(r#"{{"mode": "host", "subnet": "192.168.{third}.0", "mask": "255.255.255.0"}}"#)
}

/// Static subnets that overlap an interface address or a route of the
/// host are refused with 6, and the log names the interface and a free
/// /24; `check` says the same. Dynamic subnets avoid the host's networks.
#[test]
fn static_subnets_colliding_with_the_host_are_refused() {
    skip_without_netns!();
    let ns = NetNs::new()
        .interface("vmbt0", &["192.168.105.1/24"])
        .interface("vmbt1", &["192.168.64.1/24"])
        .route("10.20.0.0/16", "vmbt0");
    let vpn = r#"{"mode": "host", "subnet": "10.20.5.0", "mask": "255.255.255.0"}"#;
    let b = Broker::prepare(&[
        ("lab.json", &static_net(105)),
        ("vpn.json", vpn),
        ("ok.json", &static_net(106)),
        ("sharing.json", &static_net(2)),
    ])
    .spawn_in(&ns, &["--no-idle-exit"]);

    let out = b.cli(&["acquire", "lab"]);
    assert_eq!(code(&out), 6, "{}", b.log_text());
    let out = b.cli(&["acquire", "vpn"]);
    assert_eq!(code(&out), 6);
    let out = b.cli(&["acquire", "sharing"]);
    assert_eq!(code(&out), 6);
    let log = b.log_text();
    for needle in [
        "subnet 192.168.105.0/24 overlaps interface vmbt0 (address 192.168.105.1/24)",
        "subnet 10.20.5.0/24 overlaps interface vmbt0 (route to 10.20.0.0/16)",
        "Internet Sharing",
        "192.168.65.0/24 is free",
    ] {
        assert!(log.contains(needle), "{needle:?} not in the log:\n{log}");
    }
    assert!(b.cli(&["acquire", "ok"]).status.success());
    // vmnet's choice avoids vmbt1's 192.168.64.0/24.
    let out = b.cli(&["acquire", "shared"]);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["subnet"], "192.168.65.0", "{}", b.log_text());

    let conf = b.config.to_str().unwrap().to_owned();
    let out = b.cli_in(&ns, &["check", "--config-dir", &conf]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("lab.json: error: collides with the host: subnet 192.168.105.0/24 overlaps interface vmbt0"),
        "{text}"
    );
    assert!(
        text.contains("vpn.json: error: collides with the host"),
        "{text}"
    );
    assert!(!text.contains("ok.json: error"), "{text}");
    assert!(text.contains("ownership rule:"), "{text}");
}

/// Subnets are remembered across a restart, whatever order the networks
/// are acquired in the second time.
#[test]
fn a_restart_keeps_the_subnets() {
    let mut b = Broker::start(&[], &["--no-idle-exit"]);
    let first: Vec<serde_json::Value> = ["shared", "host"]
        .iter()
        .map(|n| serde_json::from_slice(&b.cli(&["acquire", n]).stdout).unwrap())
        .collect();
    assert_eq!(first[0]["subnet"], "192.168.64.0");
    assert_eq!(first[1]["subnet"], "192.168.65.0");
    assert!(b.stop().success());
    let state = b.dir.path().join("broker.state").join("state.json");
    assert!(state.exists(), "no state file beside the socket");

    let b = b.spawn(&["--no-idle-exit"]);
    let host: serde_json::Value =
        serde_json::from_slice(&b.cli(&["acquire", "host"]).stdout).unwrap();
    let shared: serde_json::Value =
        serde_json::from_slice(&b.cli(&["acquire", "shared"]).stdout).unwrap();
    assert_eq!(host, first[1], "{}", b.log_text());
    assert_eq!(shared, first[0]);
    let status = b.status();
    let origins: Vec<&str> = status["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["subnet_origin"].as_str().unwrap())
        .collect();
    assert_eq!(origins, ["remembered", "remembered"]);
}

/// A damaged state file is a warning; the broker starts and writes a good
/// one again.
#[test]
fn a_corrupted_state_file_is_survived() {
    let b = Broker::prepare(&[]);
    let state_dir = b.dir.path().join("broker.state");
    std::fs::create_dir(&state_dir).unwrap();
    std::fs::set_permissions(
        &state_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let file = state_dir.join("state.json");
    std::fs::write(&file, b"{\"version\": 1, \"networks\": {\"shared\": {\"sub").unwrap();
    let b = b.spawn(&["--no-idle-exit"]);
    assert!(
        b.log_text()
            .contains("state.json: the state file is not valid JSON"),
        "{}",
        b.log_text()
    );
    assert!(b.cli(&["acquire", "shared"]).status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["networks"]["shared"]["subnet"], "192.168.64.0");
}

/// A persistent network exists without any client, survives the idle
/// delay, and keeps the broker from exiting; once its file is deleted and
/// the broker told with SIGHUP, the broker goes idle and exits.
#[test]
fn persistent_networks_live_without_clients() {
    let mut b = Broker::start(
        &[("always.json", r#"{"mode": "host", "persistent": true}"#)],
        &["--idle-timeout", "1"],
    );
    let status = b.status();
    let net = &status["networks"][0];
    assert_eq!(net["name"], "always");
    assert_eq!(net["holders"], 0);
    assert_eq!(net["persistent"], true);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        b.wait_exit(std::time::Duration::ZERO).is_none(),
        "the broker exited"
    );
    assert_eq!(b.holders("always"), Some(0));

    std::fs::remove_file(b.config.join("always.json")).unwrap();
    b.signal(1); // SIGHUP
    let status = b.wait_exit(std::time::Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{}", b.log_text());
    assert!(b.log_text().contains("removed: always"), "{}", b.log_text());
}

/// A persistent network whose creation keeps failing is listed by
/// `status` (JSON and text) with its failed attempts, its last error and
/// when it is tried next, and the attempts go on with backoff.
#[test]
fn status_lists_persistent_networks_waiting_for_a_retry() {
    let b = Broker::start(
        &[("always.json", r#"{"mode": "host", "persistent": true}"#)],
        &["--no-idle-exit", "--sim-fail-create", "always"],
    );
    // The attempt at start and the one 1 s later fail.
    b.wait_for("a second failed attempt", |b| {
        let out = b.cli(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["waiting_networks"][0]["failed_attempts"].as_u64() >= Some(2)
    });
    let out = b.cli(&["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["networks"], serde_json::json!([]), "{v}");
    let waiting = &v["waiting_networks"][0];
    assert_eq!(waiting["name"], "always", "{v}");
    let error = waiting["last_error"].as_str().unwrap();
    assert!(error.contains("always"), "{error}");
    let next = waiting["retry_in_seconds"].as_f64().unwrap();
    assert!((0.0..=60.0).contains(&next), "{next}");

    let text = stdout(&b.cli(&["status"]));
    assert!(
        text.contains("Persistent networks waiting to be created:"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("always "))
        .unwrap_or_else(|| panic!("no row for always in\n{text}"));
    assert!(row.contains(error), "{row}");
    assert_eq!(b.holders("always"), None);
}

/// Editing and deleting a file takes effect without a restart: a held
/// network keeps its configuration until idle (status says so), an idle
/// one is created again, and a deleted one answers 5.
#[test]
fn edits_and_deletions_apply_without_a_restart() {
    let b = Broker::start(&[("lab.json", &static_net(105))], &["--no-idle-exit"]);
    let holder = b.hold(&["lab"]);
    assert_eq!(holder.lines[0]["subnet"], "192.168.105.0");
    common::write_config(&b.config, "lab.json", &static_net(106));
    b.signal(1); // SIGHUP
    b.wait_for("the pending change in status", |b| {
        b.status()["networks"][0]["configuration_pending"] == true
    });
    let out = b.cli(&["status"]);
    assert!(
        stdout(&out).contains("configuration changed, applies when idle"),
        "{}",
        stdout(&out)
    );
    // Still the old network for everyone while it is held.
    let again: serde_json::Value =
        serde_json::from_slice(&b.cli(&["acquire", "lab"]).stdout).unwrap();
    assert_eq!(again["subnet"], "192.168.105.0");
    holder.finish();
    b.wait_for("the old network to go", |b| b.holders("lab").is_none());
    let now: serde_json::Value =
        serde_json::from_slice(&b.cli(&["acquire", "lab"]).stdout).unwrap();
    assert_eq!(now["subnet"], "192.168.106.0");
    // Idle again, then the file is deleted: removed, answer 5.
    std::fs::remove_file(b.config.join("lab.json")).unwrap();
    assert_eq!(code(&b.cli(&["acquire", "lab"])), 5);
    assert_eq!(b.holders("lab"), None);
}

/// A broker running as root accepts only root's files; `check` states
/// the rule.
#[test]
fn a_root_broker_accepts_only_roots_files() {
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if !is_root {
        eprintln!("SKIPPED: needs root to give a file another owner");
        return;
    }
    let b = Broker::start(
        &[
            ("mine.json", &static_net(105)),
            ("theirs.json", &static_net(106)),
        ],
        &["--no-idle-exit"],
    );
    let theirs = b.config.join("theirs.json");
    let chown = std::process::Command::new("chown")
        .args(["1234", theirs.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(chown.success());
    assert!(b.cli(&["acquire", "mine"]).status.success());
    assert_eq!(code(&b.cli(&["acquire", "theirs"])), 5);
    assert!(
        b.log_text().contains("owned by uid 1234"),
        "{}",
        b.log_text()
    );
    let out = std::process::Command::new(common::bin())
        .args(["check", "--config-dir", b.config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        text.contains(
            "ownership rule: the broker runs as root: only files owned by root are accepted"
        ),
        "{text}"
    );
}

/// SIGHUP with a broken file reports it and leaves the live network as it
/// was; fixing the file and SIGHUP again applies the fix.
#[test]
fn a_broken_file_on_sighup_leaves_the_previous_good_state() {
    let b = Broker::start(
        &[(
            "always.json",
            r#"{"mode": "host", "persistent": true, "subnet": "192.168.105.0", "mask": "255.255.255.0"}"#,
        )],
        &["--no-idle-exit"],
    );
    assert_eq!(b.holders("always"), Some(0));
    common::write_config(
        &b.config,
        "always.json",
        r#"{"mode": "host", "persistent": tru"#,
    );
    b.signal(1); // SIGHUP
    b.wait_for("the broken file in the log", |b| {
        b.log_text().contains("broken, left as they were: always")
    });
    let net = b.status()["networks"][0].clone();
    assert_eq!(net["name"], "always");
    assert_eq!(net["subnet"], "192.168.105.0");
    let got: serde_json::Value =
        serde_json::from_slice(&b.cli(&["acquire", "always"]).stdout).unwrap();
    assert_eq!(got["subnet"], "192.168.105.0", "{}", b.log_text());

    common::write_config(
        &b.config,
        "always.json",
        r#"{"mode": "host", "persistent": true, "subnet": "192.168.107.0", "mask": "255.255.255.0"}"#,
    );
    b.signal(1);
    b.wait_for("the fixed file applied", |b| {
        b.status()["networks"][0]["subnet"] == "192.168.107.0"
    });
}
