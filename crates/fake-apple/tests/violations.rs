//! The fakes catch what they claim to: each case runs in a child process
//! (this test binary again, test `child`) and must abort naming the rule,
//! exit with the leak status, or, for what Apple calls harmless, exit 0.
//!
//! Run with `cargo test -p vmnet-broker-fake-apple --features enabled`.

#![cfg(all(feature = "enabled", target_os = "linux", debug_assertions))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{c_char, c_void};
use std::process::Command;

use block2::{Block, RcBlock};
use vmnet_broker_fake_apple as _;

type Obj = *mut c_void;

unsafe extern "C" {
    fn xpc_int64_create(v: i64) -> Obj;
    fn xpc_retain(o: Obj) -> Obj;
    fn xpc_release(o: Obj);
    fn xpc_dictionary_create(k: *const *const c_char, v: *const Obj, n: usize) -> Obj;
    fn xpc_connection_create_mach_service(name: *const c_char, q: Obj, flags: u64) -> Obj;
    fn xpc_connection_set_event_handler(c: Obj, h: &Block<dyn Fn(Obj)>);
    fn xpc_connection_activate(c: Obj);
    fn xpc_connection_cancel(c: Obj);
    fn xpc_connection_send_message_with_reply_sync(c: Obj, m: Obj) -> Obj;
    fn xpc_connection_send_message(c: Obj, m: Obj);
    fn xpc_connection_send_message_with_reply(c: Obj, m: Obj, q: Obj, h: *const Block<dyn Fn(Obj)>);
    fn xpc_connection_set_target_queue(c: Obj, q: Obj);
    fn xpc_dictionary_create_reply(m: Obj) -> Obj;
    fn xpc_dictionary_get_remote_connection(m: Obj) -> Obj;
    fn xpc_dictionary_set_int64(d: Obj, k: *const c_char, v: i64);
    fn xpc_dictionary_get_int64(d: Obj, k: *const c_char) -> i64;
    fn xpc_get_type(o: Obj) -> *const c_void;
    static _xpc_type_connection: u8;
    static _xpc_type_dictionary: u8;
    static _xpc_error_connection_invalid: u8;
    fn dispatch_queue_create(label: *const c_char, attr: Obj) -> Obj;
    fn dispatch_release(o: Obj);
    fn dispatch_source_create(t: *const c_void, h: usize, m: usize, q: Obj) -> Obj;
    fn dispatch_source_set_event_handler(s: Obj, h: &Block<dyn Fn()>);
    fn dispatch_source_set_timer(s: Obj, start: u64, interval: u64, leeway: u64);
    fn dispatch_activate(o: Obj);
    fn dispatch_time(when: u64, delta: i64) -> u64;
    fn dispatch_semaphore_create(value: isize) -> Obj;
    fn dispatch_semaphore_wait(s: Obj, timeout: u64) -> isize;
    fn dispatch_semaphore_signal(s: Obj) -> isize;
    static _dispatch_source_type_timer: u8;
}

/// Runs one case (from `FAKE_CASE`) in this process; nothing without it.
#[test]
fn child() {
    let Ok(case) = std::env::var("FAKE_CASE") else {
        return;
    };
    // SAFETY: each case misuses the fake on purpose, with valid pointers
    // otherwise; the fake aborts before anything undefined happens.
    unsafe { run(&case) };
}

unsafe fn run(case: &str) {
    // SAFETY: see `child`.
    unsafe {
        match case {
            "over-release" => {
                let o = xpc_int64_create(1);
                xpc_release(o);
                xpc_release(o);
            }
            "foreign" => {
                let mut x = 0u64;
                xpc_retain((&raw mut x).cast());
            }
            "leak" => {
                let o = xpc_int64_create(1);
                let _ = xpc_retain(o);
                xpc_release(o);
            }
            "semaphore-in-use-release" => {
                let s = dispatch_semaphore_create(1);
                assert_eq!(dispatch_semaphore_wait(s, !0), 0);
                dispatch_release(s);
            }
            "semaphore" => {
                assert!(dispatch_semaphore_create(-1).is_null());
                let s = dispatch_semaphore_create(0);
                // Nothing signals it: the wait times out (non-zero).
                let started = std::time::Instant::now();
                assert_ne!(dispatch_semaphore_wait(s, dispatch_time(0, 50_000_000)), 0);
                assert!(started.elapsed() >= std::time::Duration::from_millis(50));
                // A signal from another thread ends a wait with no bound.
                let su = s as usize;
                let t = std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    dispatch_semaphore_signal(su as Obj)
                });
                assert_eq!(dispatch_semaphore_wait(s, !0), 0);
                assert_eq!(t.join().unwrap(), 1, "the signal woke the waiter");
                // A signal with no waiter is kept for the next wait.
                assert_eq!(dispatch_semaphore_signal(s), 0);
                assert_eq!(dispatch_semaphore_wait(s, 0), 0);
                dispatch_release(s);
            }
            "inactive-release" => {
                let c = xpc_connection_create_mach_service(c"x".as_ptr(), std::ptr::null_mut(), 0);
                xpc_release(c);
            }
            "activate-twice" => {
                let name = format!("no-such-service-{}\0", std::process::id());
                let c = xpc_connection_create_mach_service(
                    name.as_ptr().cast(),
                    std::ptr::null_mut(),
                    0,
                );
                let h = RcBlock::new(|_e: Obj| {});
                xpc_connection_set_event_handler(c, &h);
                xpc_connection_activate(c);
                xpc_connection_activate(c);
                xpc_connection_cancel(c);
                xpc_connection_cancel(c);
                xpc_release(c);
            }
            "peer-ignored" | "sync-from-own-queue" => {
                let name = format!("svc-{}\0", std::process::id());
                let q = dispatch_queue_create(c"listener".as_ptr(), std::ptr::null_mut());
                // A listener that ignores new peers (for the first case).
                let h = RcBlock::new(|_e: Obj| {});
                if case == "peer-ignored" {
                    let l = xpc_connection_create_mach_service(name.as_ptr().cast(), q, 1);
                    xpc_connection_set_event_handler(l, &h);
                    xpc_connection_activate(l);
                }
                let cq = dispatch_queue_create(c"client".as_ptr(), std::ptr::null_mut());
                let c = xpc_connection_create_mach_service(name.as_ptr().cast(), cq, 0);
                xpc_connection_set_event_handler(c, &h);
                xpc_connection_activate(c);
                let msg = xpc_dictionary_create(std::ptr::null(), std::ptr::null(), 0);
                if case == "peer-ignored" {
                    // Blocks until the fake aborts the process.
                    xpc_connection_send_message_with_reply_sync(c, msg);
                } else {
                    let (cu, mu) = (c as usize, msg as usize);
                    let t = dispatch_source_create(
                        (&raw const _dispatch_source_type_timer).cast(),
                        0,
                        0,
                        cq,
                    );
                    let fire = RcBlock::new(move || {
                        xpc_connection_send_message_with_reply_sync(cu as Obj, mu as Obj);
                    });
                    dispatch_source_set_event_handler(t, &fire);
                    dispatch_source_set_timer(t, 0, !0, 0);
                    dispatch_activate(t);
                    std::thread::sleep(std::time::Duration::from_secs(10));
                }
            }
            "reply-once" => {
                let name = format!("svc-{}\0", std::process::id());
                let (l, q, peer_gone) = answering_listener(&name, usize::MAX);
                let (c, cq) = client(&name);
                let msg = xpc_dictionary_create(std::ptr::null(), std::ptr::null(), 0);
                let reply = xpc_connection_send_message_with_reply_sync(c, msg);
                assert_eq!(xpc_dictionary_get_int64(reply, c"answer".as_ptr()), 42);
                // The reply itself has no reply context.
                assert!(xpc_dictionary_create_reply(reply).is_null());
                xpc_release(reply);
                xpc_release(msg);
                xpc_connection_cancel(c);
                // The listener side has seen the client go.
                let wait = std::time::Duration::from_secs(10);
                assert_eq!(peer_gone.recv_timeout(wait), Ok(()), "the peer's end");
                xpc_release(c);
                dispatch_release(cq);
                xpc_connection_cancel(l);
                xpc_release(l);
                dispatch_release(q);
            }
            "async-reply" | "async-null-handler" => {
                let name = format!("svc-{}\0", std::process::id());
                // The listener answers the first request and never the
                // second, as a stuck service would.
                let (l, q, peer_gone) = answering_listener(&name, 1);
                let (c, cq) = client(&name);
                let msg = xpc_dictionary_create(std::ptr::null(), std::ptr::null(), 0);
                if case == "async-null-handler" {
                    xpc_connection_send_message_with_reply(c, msg, cq, std::ptr::null());
                }
                // Each handler reports what it got: the answer, or -1 for
                // XPC_ERROR_CONNECTION_INVALID.
                let (tx, rx) = std::sync::mpsc::channel::<i64>();
                let handler = move |tx: std::sync::mpsc::Sender<i64>| {
                    RcBlock::new(move |reply: Obj| {
                        let got = if std::ptr::eq(
                            reply.cast_const().cast(),
                            &raw const _xpc_error_connection_invalid,
                        ) {
                            -1
                        } else {
                            xpc_dictionary_get_int64(reply, c"answer".as_ptr())
                        };
                        let _ = tx.send(got);
                    })
                };
                let first = handler(tx.clone());
                xpc_connection_send_message_with_reply(c, msg, cq, &*first);
                let wait = std::time::Duration::from_secs(10);
                assert_eq!(rx.recv_timeout(wait), Ok(42), "the first reply");
                let second = handler(tx);
                xpc_connection_send_message_with_reply(c, msg, cq, &*second);
                let quiet_for = std::time::Duration::from_millis(200);
                assert!(
                    rx.recv_timeout(quiet_for).is_err(),
                    "the second request has no answer"
                );
                // Cancelling ends the outstanding request with INVALID.
                xpc_connection_cancel(c);
                assert_eq!(rx.recv_timeout(wait), Ok(-1), "the cancelled request");
                // The listener side has seen the client go.
                assert_eq!(peer_gone.recv_timeout(wait), Ok(()), "the peer's end");
                xpc_release(msg);
                xpc_release(c);
                dispatch_release(cq);
                xpc_connection_cancel(l);
                xpc_release(l);
                dispatch_release(q);
            }
            "inactive-source" => {
                let q = dispatch_queue_create(c"q".as_ptr(), std::ptr::null_mut());
                let t = dispatch_source_create(
                    (&raw const _dispatch_source_type_timer).cast(),
                    0,
                    0,
                    q,
                );
                dispatch_release(t);
            }
            other => panic!("unknown case {other}"),
        }
    }
}

/// A listener on `name` (NUL-terminated) whose peers answer their first
/// `answers` requests with `{"answer": 42}` and ignore the rest. Each reply
/// context is checked to exist once. Returns the listener, its queue, and
/// a channel that gets a message when a peer has received its final
/// `XPC_ERROR_CONNECTION_INVALID` (so that a test can wait for its client's
/// cancellation to reach the listener side before it exits).
unsafe fn answering_listener(
    name: &str,
    answers: usize,
) -> (Obj, Obj, std::sync::mpsc::Receiver<()>) {
    let (gone_tx, gone_rx) = std::sync::mpsc::channel::<()>();
    // SAFETY: valid names and queues; blocks of the handler signature.
    unsafe {
        let q = dispatch_queue_create(c"listener".as_ptr(), std::ptr::null_mut());
        let l = xpc_connection_create_mach_service(name.as_ptr().cast(), q, 1);
        let qu = q as usize;
        let on_peer = RcBlock::new(move |peer: Obj| {
            if xpc_get_type(peer) != (&raw const _xpc_type_connection).cast() {
                return;
            }
            xpc_connection_set_target_queue(peer, qu as Obj);
            let seen = std::cell::Cell::new(0);
            let gone = gone_tx.clone();
            let on_message = RcBlock::new(move |msg: Obj| {
                if std::ptr::eq(
                    msg.cast_const().cast(),
                    &raw const _xpc_error_connection_invalid,
                ) {
                    let _ = gone.send(());
                    return;
                }
                if xpc_get_type(msg) != (&raw const _xpc_type_dictionary).cast() {
                    return;
                }
                seen.set(seen.get() + 1);
                if seen.get() > answers {
                    return;
                }
                let reply = xpc_dictionary_create_reply(msg);
                assert!(!reply.is_null(), "first reply context");
                assert!(xpc_dictionary_create_reply(msg).is_null(), "second call");
                xpc_dictionary_set_int64(reply, c"answer".as_ptr(), 42);
                xpc_connection_send_message(xpc_dictionary_get_remote_connection(msg), reply);
                xpc_release(reply);
            });
            xpc_connection_set_event_handler(peer, &on_message);
            xpc_connection_activate(peer);
        });
        xpc_connection_set_event_handler(l, &on_peer);
        xpc_connection_activate(l);
        (l, q, gone_rx)
    }
}

/// An active client connection to `name` (NUL-terminated), with a handler
/// that ignores its events. Returns the connection and its queue.
unsafe fn client(name: &str) -> (Obj, Obj) {
    // SAFETY: a valid name and queue; a block of the handler signature.
    unsafe {
        let cq = dispatch_queue_create(c"client".as_ptr(), std::ptr::null_mut());
        let c = xpc_connection_create_mach_service(name.as_ptr().cast(), cq, 0);
        let quiet = RcBlock::new(|_e: Obj| {});
        xpc_connection_set_event_handler(c, &quiet);
        xpc_connection_activate(c);
        (c, cq)
    }
}

/// Runs `case` in a child; returns (exit code or None if killed, stderr).
fn outcome(case: &str) -> (Option<i32>, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env("FAKE_CASE", case)
        .env(
            "VMNET_BROKER_FAKE_XPC_DIR",
            tempfile::tempdir().unwrap().keep(),
        )
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_aborts(case: &str, rule: &str) {
    let (code, err) = outcome(case);
    assert_eq!(code, None, "{case} should abort:\n{err}");
    assert!(err.contains("CONTRACT VIOLATION"), "{err}");
    assert!(err.contains(rule), "{case}: expected {rule:?} in:\n{err}");
}

#[test]
fn an_over_release_aborts() {
    assert_aborts("over-release", "already freed");
}

#[test]
fn a_foreign_pointer_aborts() {
    assert_aborts("foreign", "foreign pointer");
}

#[test]
fn a_semaphore_released_below_its_initial_value_aborts() {
    assert_aborts(
        "semaphore-in-use-release",
        "below the one it was created with",
    );
}

#[test]
fn semaphores_wait_with_a_bound_and_keep_signals() {
    let (code, err) = outcome("semaphore");
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn releasing_an_inactive_connection_aborts() {
    assert_aborts("inactive-release", "inactive");
}

#[test]
fn a_peer_neither_accepted_nor_cancelled_aborts() {
    assert_aborts("peer-ignored", "neither accepted");
}

#[test]
fn a_sync_send_from_the_connections_own_queue_aborts() {
    assert_aborts("sync-from-own-queue", "deadlocks");
}

#[test]
fn releasing_an_inactive_dispatch_source_aborts() {
    assert_aborts("inactive-source", "inactive dispatch source");
}

#[test]
fn a_leak_fails_the_process_with_status_87() {
    let (code, err) = outcome("leak");
    assert_eq!(code, Some(87), "{err}");
    assert!(err.contains("1 leaked"), "{err}");
    assert!(err.contains("XPC int64 1"), "{err}");
}

#[test]
fn a_reply_context_is_used_once_and_the_reply_comes_back() {
    let (code, err) = outcome("reply-once");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(": 0 leaked,"), "{err}");
}

#[test]
fn an_async_request_gets_its_reply_or_invalid_once_cancelled_without_a_leak() {
    let (code, err) = outcome("async-reply");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(": 0 leaked,"), "{err}");
}

#[test]
fn an_async_request_without_a_handler_aborts() {
    assert_aborts("async-null-handler", "NULL handler");
}

#[test]
fn activating_or_cancelling_twice_is_harmless() {
    let (code, err) = outcome("activate-twice");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("0 leaked"), "{err}");
}
