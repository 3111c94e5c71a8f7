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
//! It has never been run by us (we have no Mac); it is type-checked in CI.

#![cfg(all(target_os = "macos", feature = "acceptance"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::thread;

use vmnet_broker_client::{Client, Network, Status};
use vmnet_broker_macos::vmnet::{VmnetInterface, VmnetNetwork};

/// Turns the broker's serialization into a network of this process and
/// starts and stops an interface on it.
fn use_network(net: &Network) {
    let serialization = net
        .xpc_serialization()
        .expect("an XPC broker sends an XPC serialization");
    let network = VmnetNetwork::create_with_serialization(&serialization.retained())
        .unwrap_or_else(|e| panic!("{}: create_with_serialization: {e}", net.name()));
    let (interface, _params) = VmnetInterface::start(&network)
        .unwrap_or_else(|e| panic!("{}: start interface: {e}", net.name()));
    interface
        .stop()
        .unwrap_or_else(|e| panic!("{}: stop interface: {e}", net.name()));
}

fn acquire(client: &Client, name: &str) -> Network {
    let net = client
        .acquire(name)
        .unwrap_or_else(|e| panic!("acquire {name}: {e}"));
    use_network(&net);
    net
}

#[test]
fn acquire_shared() {
    let c = Client::connect_xpc().unwrap();
    let net = acquire(&c, "shared");
    assert_eq!(net.info().map(|i| i.mode.as_str()), Some("shared"));
}

#[test]
fn acquire_host() {
    let c = Client::connect_xpc().unwrap();
    acquire(&c, "host");
}

#[test]
fn acquire_both() {
    let c = Client::connect_xpc().unwrap();
    let a = acquire(&c, "shared");
    let b = acquire(&c, "host");
    assert_ne!(a.info().map(|i| i.subnet), b.info().map(|i| i.subnet));
}

#[test]
fn acquire_the_same_three_and_nine_times() {
    for times in [3, 9] {
        let c = Client::connect_xpc().unwrap();
        let nets: Vec<Network> = (0..times).map(|_| acquire(&c, "shared")).collect();
        let first = nets[0].info().map(|i| i.subnet);
        assert!(nets.iter().all(|n| n.info().map(|i| i.subnet) == first));
    }
}

#[test]
fn three_serial_clients_reuse_the_network() {
    let mut subnets = Vec::new();
    for _ in 0..3 {
        let c = Client::connect_xpc().unwrap();
        subnets.push(acquire(&c, "shared").info().map(|i| i.subnet));
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
                    let c = Client::connect_xpc().unwrap();
                    acquire(&c, name).info().map(|i| i.subnet)
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
fn no_such_network_is_5() {
    let c = Client::connect_xpc().unwrap();
    let e = c.acquire("no-such-network").unwrap_err();
    assert_eq!(e.status(), Status::NOT_FOUND);
}
