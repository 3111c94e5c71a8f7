//! The exported C functions called from Rust against the real broker
//! binary (started as in the client's tests; build it first with
//! `cargo build -p vmnet-broker`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../client/tests/common/mod.rs"]
mod common;

use std::ffi::{CStr, CString, c_char};
use std::ptr;

use common::Broker;
use vmnet_broker::*;
use vmnet_broker_proto::Status;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// A C string returned by the library, copied.
fn text(p: *const c_char) -> Option<String> {
    // SAFETY: the library returns NULL or a valid C string that lives at
    // least until the next call on the same handle.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn connect(broker: &Broker) -> *mut vmnet_broker_client {
    let path = c(broker.socket.to_str().unwrap());
    let mut status = -1;
    // SAFETY: valid C string and status pointer.
    let client = unsafe { vmnet_broker_client_connect_socket(path.as_ptr(), &mut status) };
    assert!(!client.is_null(), "status {status}");
    assert_eq!(status, 0);
    client
}

fn acquire(client: *mut vmnet_broker_client, name: &str) -> (*mut vmnet_broker_network, i32) {
    let name = c(name);
    let mut status = -1;
    // SAFETY: live client, valid C string and status pointer.
    let net = unsafe { vmnet_broker_client_acquire(client, name.as_ptr(), &mut status) };
    (net, status)
}

fn status_json(client: *mut vmnet_broker_client) -> serde_json::Value {
    let mut out: *mut c_char = ptr::null_mut();
    // SAFETY: live client and a writable output pointer.
    let rc = unsafe { vmnet_broker_client_status_json(client, &mut out) };
    assert_eq!(rc, 0);
    let json = text(out).unwrap();
    // SAFETY: `out` came from the library and is freed once.
    unsafe { vmnet_broker_string_free(out) };
    serde_json::from_str(&json).unwrap()
}

fn holders(report: &serde_json::Value, name: &str) -> i64 {
    report["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .map_or(0, |n| n["holders"].as_i64().unwrap())
}

#[test]
fn acquire_read_and_release_through_the_c_api() {
    let broker = Broker::start();
    let client = connect(&broker);
    let (net, status) = acquire(client, "host");
    assert_eq!(status, 0);
    assert!(!net.is_null());
    // SAFETY: `net` is a live handle (all accessor calls in this block).
    unsafe {
        assert_eq!(
            text(vmnet_broker_network_name(net)).as_deref(),
            Some("host")
        );
        assert_eq!(
            text(vmnet_broker_network_mode(net)).as_deref(),
            Some("host")
        );
        let subnet: std::net::Ipv4Addr = text(vmnet_broker_network_subnet(net))
            .unwrap()
            .parse()
            .unwrap();
        let mask: std::net::Ipv4Addr = text(vmnet_broker_network_mask(net))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(u32::from(subnet) & !u32::from(mask), 0, "{subnet}/{mask}");
        let prefix: std::net::Ipv6Addr = text(vmnet_broker_network_ipv6_prefix(net))
            .unwrap()
            .parse()
            .unwrap();
        assert!(prefix.segments()[0] != 0);
        assert!((1..=128).contains(&vmnet_broker_network_ipv6_prefix_length(net)));
        let json = text(vmnet_broker_network_serialization_json(net)).unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
    }
    assert_eq!(holders(&status_json(client), "host"), 1);
    // SAFETY: live handle, released once.
    assert_eq!(unsafe { vmnet_broker_release(net) }, 0);
    assert_eq!(holders(&status_json(client), "host"), 0);
    // SAFETY: live client, freed once.
    unsafe { vmnet_broker_client_free(client) };
}

#[test]
fn broker_errors_come_through_as_statuses() {
    let broker = Broker::start();
    let client = connect(&broker);
    for (name, want) in [
        ("no-such-network", Status::NOT_FOUND),
        ("", Status::NOT_FOUND),
        (".hidden", Status::NOT_FOUND),
    ] {
        let (net, status) = acquire(client, name);
        assert!(net.is_null(), "{name:?}");
        assert_eq!(i64::from(status), want.code(), "{name:?}");
    }
    // SAFETY: live client, freed once.
    unsafe { vmnet_broker_client_free(client) };
}

#[test]
fn freeing_the_client_keeps_its_networks_until_released() {
    let broker = Broker::start();
    let watcher = connect(&broker);
    let client = connect(&broker);
    let (net, _) = acquire(client, "shared");
    assert!(!net.is_null());
    // SAFETY: live client, freed once.
    unsafe { vmnet_broker_client_free(client) };
    assert_eq!(holders(&status_json(watcher), "shared"), 1);
    // SAFETY: live handle, released once.
    assert_eq!(unsafe { vmnet_broker_release(net) }, 0);
    assert_eq!(holders(&status_json(watcher), "shared"), 0);
    // SAFETY: live client, freed once.
    unsafe { vmnet_broker_client_free(watcher) };
}

#[test]
fn null_arguments_are_refused() {
    let mut status = -1;
    // SAFETY: NULL is allowed for every pointer argument (all calls here).
    unsafe {
        assert!(vmnet_broker_acquire(ptr::null(), &mut status).is_null());
        assert_eq!(status, 4);
        status = -1;
        let name = c("shared");
        assert!(vmnet_broker_client_acquire(ptr::null(), name.as_ptr(), &mut status).is_null());
        assert_eq!(status, 4);
        assert!(vmnet_broker_client_connect_socket(ptr::null(), ptr::null_mut()).is_null());
        let mut out: *mut c_char = ptr::null_mut();
        assert_eq!(vmnet_broker_client_status_json(ptr::null(), &mut out), 4);
        assert!(out.is_null());
        assert_eq!(vmnet_broker_release(ptr::null_mut()), 0);
        vmnet_broker_client_free(ptr::null_mut());
        vmnet_broker_string_free(ptr::null_mut());
        assert!(vmnet_broker_network_name(ptr::null()).is_null());
        assert_eq!(vmnet_broker_network_ipv6_prefix_length(ptr::null()), -1);
    }
}

#[test]
fn a_missing_broker_is_an_xpc_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = c(dir.path().join("none.sock").to_str().unwrap());
    let mut status = -1;
    // SAFETY: valid C string and status pointer.
    let client = unsafe { vmnet_broker_client_connect_socket(path.as_ptr(), &mut status) };
    assert!(client.is_null());
    assert_eq!(status, 1);
}
