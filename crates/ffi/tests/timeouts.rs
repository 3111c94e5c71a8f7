//! `vmnet_broker_client_set_timeout` against a server that accepts but
//! never answers (a stopped or stuck broker).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{CString, c_char};
use std::ptr;

use vmnet_broker::*;

#[test]
fn a_silent_server_fails_requests_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    vmnet_broker_testkit::silent_server(&path).unwrap();
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    let mut status = -1;
    // SAFETY: valid C string and status pointer.
    let client = unsafe { vmnet_broker_client_connect_socket(c_path.as_ptr(), &mut status) };
    assert!(!client.is_null(), "status {status}");

    // SAFETY: NULL and a live client are both allowed.
    unsafe {
        assert_eq!(vmnet_broker_client_set_timeout(ptr::null(), 1.0), 4);
        assert_eq!(vmnet_broker_client_set_timeout(client, 0.0), 4);
        assert_eq!(vmnet_broker_client_set_timeout(client, f64::NAN), 4);
        // Less than a millisecond cannot be told from a broker that never
        // answers.
        assert_eq!(vmnet_broker_client_set_timeout(client, 0.0009), 4);
        assert_eq!(vmnet_broker_client_set_timeout(client, 0.001), 0);
        assert_eq!(vmnet_broker_client_set_timeout(client, 0.2), 0);
    }
    let mut out: *mut c_char = ptr::null_mut();
    // SAFETY: live client and a writable output pointer.
    let rc = unsafe { vmnet_broker_client_status_json(client, &mut out) };
    assert_eq!(rc, 1, "a silent server must fail with XPC_FAILURE");
    assert!(out.is_null());
    // SAFETY: the client is live and freed once.
    unsafe { vmnet_broker_client_free(client) };
}
