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
