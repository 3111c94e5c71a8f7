//! End-to-end tests: the real `vmnet-broker` binary as daemon, with real
//! client processes (`vmnet-broker acquire --hold`) and raw socket clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use common::{Broker, bin, network_names, write_config};
use serde_json::json;

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[test]
fn two_clients_share_a_network_and_kill_9_drops_a_hold() {
    let b = Broker::start(&[], &["--no-idle-exit", "--network-idle-timeout", "1"]);
    let mut first = b.hold(&["shared"]);
    let second = b.hold(&["shared"]);
    assert_eq!(first.lines[0]["subnet"], second.lines[0]["subnet"]);
    assert_eq!(first.lines[0]["mode"], "shared");
    assert_eq!(b.holders("shared"), Some(2));

    first.kill9();
    b.wait_for("holders to drop to 1", |b| b.holders("shared") == Some(1));

    assert!(second.finish().success());
    b.wait_for("the idle network to be removed", |b| {
        b.holders("shared").is_none()
    });
    let status = b.status();
    assert_eq!(status["counters"]["creations"], 1);
    assert_eq!(status["counters"]["removals"], 1);
}

#[test]
fn an_acquire_inside_the_idle_delay_keeps_the_same_network() {
    let b = Broker::start(&[], &["--no-idle-exit", "--network-idle-timeout", "30"]);
    let holder = b.hold(&["host", "shared"]);
    let subnet = holder.lines[1]["subnet"].clone();
    assert!(holder.finish().success());
    b.wait_for("the hold to end", |b| b.holders("shared") == Some(0));
    let again = b.hold(&["shared"]);
    assert_eq!(again.lines[0]["subnet"], subnet);
    assert_eq!(b.status()["counters"]["creations"], 2, "no new creation");
    let nets = b.status()["networks"].clone();
    let shared = nets
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "shared")
        .unwrap();
    assert!(shared["idle_for_seconds"].is_null());
}

#[test]
fn unknown_network_is_5_with_the_cli_and_raw() {
    let b = Broker::start(&[], &["--no-idle-exit"]);
    let out = b.cli(&["acquire", "no-such-network"]);
    assert_eq!(code(&out), 5);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("VMNET_BROKER_NOT_FOUND"), "{err}");
    let mut c = b.connect();
    assert_eq!(c.acquire("no-such-network"), json!({"error": 5}));
    assert!(
        c.acquire("shared")["network"].is_object(),
        "same connection still served"
    );
}

#[test]
fn malformed_requests_get_4_and_the_broker_keeps_serving() {
    let b = Broker::start(&[], &["--no-idle-exit"]);
    let mut holder = b.connect();
    let held = holder.acquire("shared");
    let mut c = b.connect();
    let cases: [&[u8]; 7] = [
        b"not json\n",
        b"[1,2,3]\n",
        b"{}\n",
        b"{\"command\":\"frobnicate\",\"network_name\":\"shared\"}\n",
        b"{\"command\":\"acquire\",\"network_name\":7}\n",
        b"\xff\xfe\n",
        b"\n",
    ];
    for case in cases {
        c.send_raw(case);
        assert_eq!(
            c.read_reply(),
            json!({"error": 4}),
            "for {:?}",
            String::from_utf8_lossy(case)
        );
    }
    // An over-long line: error 4, and the next line is read normally.
    let mut long = vec![b'x'; 70 * 1024];
    long.push(b'\n');
    c.send_raw(&long);
    assert_eq!(c.read_reply(), json!({"error": 4}));
    assert_eq!(c.acquire("shared")["network_info"], held["network_info"]);
    assert_eq!(b.holders("shared"), Some(2));
}

#[test]
fn nine_distinct_networks_fail_on_the_ninth() {
    let names = network_names(9);
    let b = Broker::prepare(&[])
        .with_host_networks(&names)
        .spawn(&["--no-idle-exit"]);
    let mut c = b.connect();
    for i in 0..8 {
        assert!(
            c.acquire(&format!("net{i}"))["network"].is_object(),
            "net{i}"
        );
    }
    assert_eq!(c.acquire("net8"), json!({"error": 7}));
    assert!(b.holders("net8").is_none());
    // The CLI reports the same status as its exit code.
    let mut args = vec!["acquire"];
    args.extend(names.iter().map(String::as_str));
    assert_eq!(code(&b.cli(&args)), 7);
}

#[test]
fn static_subnets_are_honoured_and_overlaps_fail_with_6() {
    let b = Broker::start(
        &[
            (
                "lab.json",
                r#"{"mode": "shared", "subnet": "192.168.105.1", "mask": "255.255.255.0"}"#,
            ),
            (
                "clash.json",
                r#"{"mode": "host", "subnet": "192.168.104.0", "mask": "255.255.254.0"}"#,
            ),
            (
                "iso.plist",
                r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>mode</key><string>host</string>
<key>subnet</key><string>10.77.0.0</string>
<key>mask</key><string>255.255.0.0</string>
</dict></plist>"#,
            ),
        ],
        &["--no-idle-exit"],
    );
    let out = b.cli(&["acquire", "lab"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let mut c = b.connect();
    let lab = c.acquire("lab");
    assert_eq!(lab["network_info"]["subnet"], "192.168.105.0");
    assert_eq!(lab["network_info"]["mask"], "255.255.255.0");
    assert_eq!(lab["network_info"]["mode"], "shared");
    assert_eq!(c.acquire("clash"), json!({"error": 6}));
    let iso = c.acquire("iso");
    assert_eq!(iso["network_info"]["subnet"], "10.77.0.0");
    assert_eq!(iso["network_info"]["mask"], "255.255.0.0");
    assert!(b.log_text().contains("overlaps the live network \"lab\""));
}

#[test]
fn a_broken_config_file_gives_5_for_that_name_only() {
    let b = Broker::start(
        &[
            ("broken.json", r#"{"mode": "shared", "nat4": true"#),
            ("typo.json", r#"{"mode": "shared", "nat4": true}"#),
            ("good.json", r#"{"mode": "host"}"#),
        ],
        &["--no-idle-exit"],
    );
    let mut c = b.connect();
    assert_eq!(c.acquire("broken"), json!({"error": 5}));
    assert_eq!(c.acquire("typo"), json!({"error": 5}));
    assert_eq!(c.acquire("good")["network_info"]["mode"], "host");
    assert_eq!(c.acquire("shared")["network_info"]["mode"], "shared");
    let log = b.log_text();
    assert!(
        log.contains("did you mean \\\"nat44\\\"") || log.contains("did you mean \"nat44\""),
        "{log}"
    );
}

#[test]
fn a_world_writable_config_file_is_ignored() {
    let b = Broker::prepare(&[("open.json", r#"{"mode": "host"}"#)]);
    let p = b.config.join("open.json");
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let b = b.spawn(&["--no-idle-exit"]);
    assert_eq!(b.connect().acquire("open"), json!({"error": 5}));
    assert!(b.log_text().contains("chmod go-w"));
}

#[test]
fn sigterm_is_ignored_with_clients_and_exits_0_without() {
    let mut b = Broker::start(&[], &["--no-idle-exit"]);
    let status = b.signals_wait_for_holders();
    assert!(status.success(), "{status}");
    assert!(!b.socket.exists(), "socket file removed");
}

#[test]
fn the_broker_exits_when_idle() {
    let mut b = Broker::start(&[], &["--idle-timeout", "0.5"]);
    {
        let mut c = b.connect();
        assert!(c.acquire("shared")["network"].is_object());
    }
    let status = b.wait_exit(Duration::from_secs(20)).expect("idle exit");
    assert!(status.success());
    let log = b.log_text();
    assert!(log.contains("network removed"), "{log}");
    assert!(log.contains("no clients for the idle delay"), "{log}");
}

#[test]
fn no_idle_exit_keeps_running() {
    let mut b = Broker::start(&[], &["--idle-timeout", "0.2", "--no-idle-exit"]);
    assert!(b.wait_exit(Duration::from_secs(1)).is_none());
    assert!(b.connect().acquire("host")["network"].is_object());
}

#[test]
fn a_second_broker_refuses_and_a_stale_socket_is_replaced() {
    let b = Broker::start(&[], &["--no-idle-exit"]);
    let out = Command::new(bin())
        .args(["serve", "--socket"])
        .arg(&b.socket)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already serving"));
    assert!(
        b.connect().acquire("shared")["network"].is_object(),
        "first unaffected"
    );

    // A stale socket file (nobody listening) is replaced.
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let mut b2 = Broker::prepare(&[])
        .with_socket(stale.clone())
        .spawn(&["--no-idle-exit"]);
    assert!(UnixStream::connect(&stale).is_ok());
    assert!(b2.log_text().contains("replacing a stale socket file"));
    assert!(b2.stop().success());

    // A regular file is never deleted.
    let file = dir.path().join("file.sock");
    std::fs::write(&file, "data").unwrap();
    let out = Command::new(bin())
        .args(["serve", "--socket"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a socket"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
}

#[test]
fn clients_find_the_socket_through_the_environment() {
    let b = Broker::start(&[], &["--no-idle-exit"]);
    let out = Command::new(bin())
        .args(["acquire", "host"])
        .env("VMNET_BROKER_SOCKET", &b.socket)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["name"], "host");
    assert_eq!(line["mode"], "host");
    for key in ["subnet", "mask", "ipv6_prefix", "ipv6_prefix_length"] {
        assert!(!line[key].is_null(), "{key}");
    }
    // Nothing listening there: status 1.
    let out = Command::new(bin())
        .args(["status"])
        .env("VMNET_BROKER_SOCKET", b.dir.path().join("nobody.sock"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the broker running"));
}

#[test]
fn transport_failures_get_hints_that_match_their_cause() {
    // A broker at its connection limit accepts and closes at once: the CLI
    // says so instead of asking whether the broker runs.
    let b = Broker::start(&[], &["--no-idle-exit", "--max-clients", "2"]);
    let held: Vec<_> = (0..2).map(|_| b.connect()).collect();
    // The broker may not have taken both in yet: ask until it refuses.
    let mut out = b.cli(&["status"]);
    for _ in 0..50 {
        if code(&out) == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        out = b.cli(&["status"]);
    }
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(code(&out), 1, "{err}");
    assert!(err.contains("--max-clients"), "{err}");
    assert!(!err.contains("is the broker running"), "{err}");
    drop(held);
    // A path too long for a Unix socket.
    let long = b.dir.path().join("x".repeat(120));
    let out = Command::new(bin())
        .args(["status", "--socket"])
        .arg(&long)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(code(&out), 1, "{err}");
    assert!(err.contains("shorter --socket path"), "{err}");
    assert!(!err.contains("is the broker running"), "{err}");
}

#[test]
fn status_table_and_json() {
    let b = Broker::start(
        &[("lab.json", r#"{"mode": "host", "description": "test lab"}"#)],
        &["--no-idle-exit"],
    );
    let _holder = b.hold(&["lab", "shared"]);
    let out = b.cli(&["status"]);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NETWORK") && text.contains("HOLDERS"),
        "{text}"
    );
    assert!(text.contains("lab") && text.contains("shared"), "{text}");
    assert!(text.contains("simulated backend"), "{text}");
    let out = b.cli(&["status", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "version",
        "pid",
        "backend",
        "uptime_seconds",
        "networks",
        "peers",
        "peer_count",
        "hidden_peers",
        "counters",
    ] {
        assert!(report.get(key).is_some(), "missing {key}");
    }
    let lab = &report["networks"][0];
    assert_eq!(lab["name"], "lab");
    assert_eq!(lab["description"], "test lab");
    assert_eq!(lab["holders"], 1);
    assert_eq!(report["pid"], b.pid());
}

#[test]
fn check_reports_problems_with_their_file() {
    let b = Broker::prepare(&[
        (
            "a.json",
            r#"{"mode": "host", "subnet": "192.168.100.0", "mask": "255.255.255.0"}"#,
        ),
        (
            "b.json",
            r#"{"mode": "host", "subnet": "192.168.100.128", "mask": "255.255.255.128"}"#,
        ),
        ("c.json", r#"{"mode": "shared", "mtu": 100}"#),
    ]);
    let out = Command::new(bin())
        .arg("check")
        .arg("--config-dir")
        .arg(&b.config)
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("a.json: error: subnet 192.168.100.0/24 overlaps"),
        "{text}"
    );
    assert!(
        text.contains("c.json: error: mtu: 100 is out of range"),
        "{text}"
    );
    // Fixed: exit 0.
    std::fs::remove_file(b.config.join("b.json")).unwrap();
    write_config(&b.config, "c.json", r#"{"mode": "shared", "mtu": 9000}"#);
    let out = Command::new(bin())
        .arg("check")
        .arg("--config-dir")
        .arg(&b.config)
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Configuration OK"));
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        "serve",
        "acquire",
        "status",
        "check",
        "install",
        "uninstall",
    ] {
        let out = Command::new(bin()).args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("vmnet-broker "), "{cmd}: {text}");
        assert!(
            text.to_lowercase().contains("example"),
            "{cmd} help has no example"
        );
    }
    let out = Command::new(bin()).arg("--bogus").output().unwrap();
    assert_eq!(code(&out), 64);
}

#[test]
fn release_over_the_wire() {
    let b = Broker::start(&[], &["--no-idle-exit"]);
    let mut c = b.connect();
    assert_eq!(
        c.request(&json!({"command": "release", "network_name": "shared"})),
        json!({"error": 5})
    );
    c.acquire("shared");
    assert_eq!(
        c.request(&json!({"command": "release", "network_name": "shared"})),
        json!({})
    );
    assert_eq!(b.holders("shared"), Some(0));
}

#[test]
fn protocol_vectors() {
    let text = include_str!("../../../testdata/protocol-vectors.json");
    let vectors: serde_json::Value = serde_json::from_str(text).unwrap();
    let b = Broker::start(&[], &["--no-idle-exit"]);
    for v in vectors["requests"].as_array().unwrap() {
        let mut c = b.connect();
        let reply = match v.get("raw") {
            Some(raw) => {
                c.send_raw(format!("{}\n", raw.as_str().unwrap()).as_bytes());
                c.read_reply()
            }
            None => c.request(&v["request"]),
        };
        assert_eq!(
            reply
                .get("error")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            v["expect_error"],
            "{}",
            v["name"]
        );
        for key in v["expect_keys"].as_array().into_iter().flatten() {
            assert!(
                reply.get(key.as_str().unwrap()).is_some(),
                "{}: no {key}",
                v["name"]
            );
        }
    }
}

#[test]
fn install_dry_run_prints_the_launchd_plan() {
    let out = Command::new(bin())
        .args(["install", "--dry-run"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "/Library/LaunchDaemons/com.github.nirs.vmnet-broker.plist",
        "<key>ExitTimeOut</key>",
        "<key>MachServices</key>",
        "<key>EnableTransactions</key>",
        "_vmnetbroker",
        "launchctl bootstrap system",
        "com.apple.security.virtualization",
    ] {
        assert!(script.contains(needle), "plan lacks {needle}:\n{script}");
    }
    assert!(!script.contains("com.apple.vm.networking"));
    let user = Command::new(bin())
        .args(["install", "--user", "--dry-run"])
        .env("HOME", "/Users/someone")
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&user.stdout);
    assert!(
        script.contains("/Users/someone/Library/LaunchAgents/"),
        "{script}"
    );
    assert!(script.contains("launchctl bootstrap gui/"), "{script}");
    assert!(!script.contains("dscl"), "no account for a user agent");
    // Without --dry-run, not on macOS: refused, nothing done.
    if !cfg!(target_os = "macos") {
        let out = Command::new(bin()).arg("install").output().unwrap();
        assert_eq!(code(&out), 70);
        assert!(String::from_utf8_lossy(&out.stderr).contains("only on macOS"));
        let out = Command::new(bin())
            .args(["uninstall", "--dry-run"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Nothing to do"));
    }
}

/// `install` keeps the daemon options in the job's ProgramArguments and
/// refuses bad ones before doing anything.
#[test]
fn install_writes_the_daemon_options_into_the_job() {
    let out = Command::new(bin())
        .args([
            "install",
            "--dry-run",
            "--network-idle-timeout",
            "600",
            "--exit-idle-timeout",
            "30.5",
            "--config-dir",
            "/opt/vmnet/conf.d",
            "--log-level",
            "debug",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = String::from_utf8_lossy(&out.stdout);
    let args = [
        "<string>serve</string>",
        "<string>--mach-service</string>",
        "<string>com.github.nirs.vmnet-broker</string>",
        "<string>--network-idle-timeout</string>",
        "<string>600</string>",
        "<string>--exit-idle-timeout</string>",
        "<string>30.5</string>",
        "<string>--config-dir</string>",
        "<string>/opt/vmnet/conf.d</string>",
        "<string>--log-level</string>",
        "<string>debug</string>",
    ];
    let mut at = 0;
    for a in args {
        let found = script[at..]
            .find(a)
            .unwrap_or_else(|| panic!("{a} missing or out of order in\n{script}"));
        at += found + a.len();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--network-idle-timeout 600, --exit-idle-timeout 30.5"),
        "{stderr}"
    );

    for bad in [
        &["--config-dir", "relative/dir"][..],
        &["--network-idle-timeout", "-5"][..],
        &["--log-level", ""][..],
    ] {
        let out = Command::new(bin())
            .args(["install", "--dry-run"])
            .args(bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?} accepted");
        assert!(out.stdout.is_empty(), "{bad:?} printed a plan");
    }
}

/// The original broker's launchd job runs the binary with no arguments; ours
/// must then serve exactly as `serve` does (here: the development socket,
/// taken from $VMNET_BROKER_SOCKET), and `--help` must still be help.
#[test]
fn no_arguments_run_the_daemon_with_its_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("noargs.sock");
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = Command::new(bin())
        .env("VMNET_BROKER_SOCKET", &socket)
        .stdin(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let stream = loop {
        if let Ok(s) = UnixStream::connect(&socket) {
            break s;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
            panic!("exited without serving ({status}):\n{log}");
        }
        assert!(std::time::Instant::now() < deadline, "no socket");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut c = common::Conn::new(stream);
    assert!(c.acquire("shared")["network"].is_object());
    assert_eq!(c.acquire("no-such-network"), json!({"error": 5}));
    drop(c);
    // With no client left, SIGTERM ends it with status 0, as for `serve`.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let _ = Command::new("kill")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "still running");
    };
    assert!(status.success(), "{status}");

    let help = Command::new(bin()).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage:") && text.contains("serve"), "{text}");
}
