//! The original C client's entry point, `vmnet_broker_acquire_network`,
//! over "XPC" on Linux: the real broker binary built with the `fake-apple`
//! feature serves the default Mach service through the contract-enforcing
//! fakes of crates/fake-apple (docs/macos-fakes.md). This process links the
//! same fakes, so it ends with their leak report too (status 87 on a
//! leak).
//!
//! Build the broker first: `cargo build -p vmnet-broker --features
//! fake-apple`, then `cargo test -p vmnet-broker-ffi --features fake-apple
//! --test fake_xpc`.

#![cfg(feature = "fake-apple")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{CString, c_void};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmnet_broker_testkit::{broker_bin, resume_process, spawn_serving, suspend_process};

use vmnet_broker::vmnet_broker_acquire_network;
use vmnet_broker_proto::Status;

unsafe extern "C" {
    // libxpc (here: the fake), as a C caller would use it.
    fn xpc_release(object: *mut c_void);
    fn xpc_get_type(object: *mut c_void) -> *const c_void;
    static _xpc_type_dictionary: u8;
}

/// The broker process, killed when the test ends, also when it fails (a
/// stopped broker left behind would keep the test's output open).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One test only: it points this whole process at a private fake-XPC
/// directory, where the broker listens on the default service name. Its
/// requests time out after 3 s (`VMNET_BROKER_TIMEOUT`, read when the
/// process-wide connection is made); the 30 s default is the client
/// contract's `hung-request-default` case, which scripts/test-fake-clients
/// runs for this entry point over the fake XPC.
#[test]
fn the_upstream_entry_point_acquires_over_xpc() {
    let dir = tempfile::tempdir().unwrap();
    let xpc_dir = dir.path().join("xpc");
    std::fs::create_dir(&xpc_dir).unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    // SAFETY: the only test of this binary sets the variables before any
    // thread of its own reads the environment.
    unsafe {
        std::env::set_var("VMNET_BROKER_FAKE_XPC_DIR", &xpc_dir);
        std::env::set_var("VMNET_BROKER_TIMEOUT", "3");
    }

    let mut serve = Command::new(broker_bin());
    serve
        .args(["serve", "--backend", "vmnet", "--no-idle-exit"])
        .arg("--config-dir")
        .arg(&conf)
        .arg("--state-dir")
        .arg(xpc_dir.with_file_name("state"))
        .env("VMNET_BROKER_FAKE_XPC_DIR", &xpc_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let broker = KillOnDrop(spawn_serving(&mut serve).unwrap_or_else(|e| {
        panic!("{e}; was it built with `cargo build -p vmnet-broker --features fake-apple`?")
    }));

    let name = CString::new("shared").unwrap();
    let mut status = -1;
    // SAFETY: a C string and a writable status.
    let serialization = unsafe { vmnet_broker_acquire_network(name.as_ptr(), &mut status) };
    assert_eq!(status, 0);
    assert!(!serialization.is_null());
    // SAFETY: a live XPC object; the fake's type descriptors are statics.
    unsafe {
        assert_eq!(
            xpc_get_type(serialization),
            (&raw const _xpc_type_dictionary).cast()
        );
    }
    // The caller owns the returned reference.
    // SAFETY: released once, as the header asks.
    unsafe { xpc_release(serialization) };

    let unknown = CString::new("no-such-network").unwrap();
    // SAFETY: as above.
    let none = unsafe { vmnet_broker_acquire_network(unknown.as_ptr(), &mut status) };
    assert!(none.is_null());
    assert_eq!(status, i32::try_from(Status::NOT_FOUND.code()).unwrap());

    // SAFETY: NULL name and status are refused without a crash.
    let null = unsafe { vmnet_broker_acquire_network(std::ptr::null(), std::ptr::null_mut()) };
    assert!(null.is_null());

    // A stopped broker still takes connections but never answers: the
    // request gives up after the 3 s set above with XPC_FAILURE, and once
    // the broker runs again the next call connects again and succeeds.
    suspend_process(broker.0.id()).unwrap();
    let started = Instant::now();
    // SAFETY: as above.
    let stuck = unsafe { vmnet_broker_acquire_network(name.as_ptr(), &mut status) };
    let waited = started.elapsed();
    resume_process(broker.0.id()).unwrap();
    assert!(stuck.is_null());
    assert_eq!(status, i32::try_from(Status::XPC_FAILURE.code()).unwrap());
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(20),
        "gave up after {waited:?}, not after the 3 s of VMNET_BROKER_TIMEOUT"
    );
    // SAFETY: as above.
    let again = unsafe { vmnet_broker_acquire_network(name.as_ptr(), &mut status) };
    assert_eq!(status, 0);
    assert!(!again.is_null());
    // SAFETY: released once, as the header asks.
    unsafe { xpc_release(again) };

    // The process-wide connection stays open by design (as upstream), so
    // the broker keeps this client and ignores SIGTERM; it is killed when
    // `broker` is dropped.
}
