//! libxpc connections across processes: a Mach-service listener is a Unix
//! socket named after the service in `$VMNET_BROKER_FAKE_XPC_DIR` (default
//! `/tmp/vmnet-broker-fake-xpc-$UID`); a client connection connects to it;
//! each accepted socket is a peer connection handed to the listener.

use std::collections::HashMap;
use std::ffi::{CStr, c_char};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};

use block2::Block;

use super::dispatch::{
    self, DPtr, SendBlock, copy_block, current_queue, enqueue_owned, new_queue, queue_check,
};
use super::faults::{self, Action, Point};
use super::wire::{self, MESSAGE, REPLY, REQUEST};
use super::xpc::{self, Body, Dict, XPtr, alloc, interrupted, invalid, obj, release, retain};
use super::{Live, lock, lock_at_exit, violation};

/// `XPC_CONNECTION_MACH_SERVICE_LISTENER`.
const LISTENER: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Listener,
    Client,
    Peer,
}

pub(crate) struct Conn {
    role: Role,
    name: String,
    /// Address of the XPC object that is this connection.
    xobj: AtomicUsize,
    st: Mutex<State>,
    writer: Mutex<Option<UnixStream>>,
    /// Requests waiting for their reply, by request id.
    pending: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
    creds: Mutex<(i32, u32, u32)>,
}

struct State {
    active: bool,
    cancelled: bool,
    /// The final `XPC_ERROR_CONNECTION_INVALID` was queued.
    final_posted: bool,
    /// ... and delivered: the handler is gone.
    finished: bool,
    handler: Option<SendBlock<dyn Fn(XPtr)>>,
    /// Target queue (retained), 0 for none yet.
    queue: usize,
    /// The reference the runtime holds from activation until the final
    /// event has been delivered.
    internal_ref: bool,
    /// Client: the service went away; reconnect on the next send.
    broken: bool,
    listen_fd: i32,
    path: Option<PathBuf>,
    /// Peer: the accepted socket, read once activated.
    peer_stream: Option<UnixStream>,
}

/// Who waits for a reply.
enum Waiter {
    /// `xpc_connection_send_message_with_reply_sync`: the payload, or
    /// `None` when the connection ended first.
    Sync(Sender<Option<Vec<u8>>>),
    /// `xpc_connection_send_message_with_reply`: the handler runs once on
    /// `queue`. Both the queue and the connection (`xobj`) are retained
    /// until it has run, as libxpc keeps what an outstanding reply needs.
    Async {
        xobj: usize,
        queue: usize,
        handler: SendBlock<dyn Fn(XPtr)>,
    },
}

// SAFETY: the addresses are a retained XPC connection and a retained
// dispatch queue, whose reference counts are atomic; the block is Send by
// SendBlock's contract.
unsafe impl Send for Waiter {}

/// Ends one wait: with the reply's payload, or (`None`) with the
/// connection's end, which is `XPC_ERROR_CONNECTION_INVALID` once it was
/// cancelled and `XPC_ERROR_CONNECTION_INTERRUPTED` otherwise
/// (connection.h, `xpc_connection_send_message_with_reply` and
/// `xpc_connection_cancel`).
fn answer(c: &Conn, waiter: Waiter, payload: Option<Vec<u8>>) {
    match waiter {
        Waiter::Sync(tx) => {
            let _ = tx.send(payload);
        }
        Waiter::Async {
            xobj,
            queue,
            handler,
        } => {
            let reply = reply_object(c, xobj as XPtr, payload);
            // As an address: an XPC object's reference count is atomic.
            let reply = reply as usize;
            // The waiter's reference to the queue goes to the work item.
            enqueue_owned(
                queue,
                Box::new(move || {
                    let reply = reply as XPtr;
                    handler.get().call((reply,));
                    drop(handler);
                    // The reply was borrowed by the handler; the error
                    // objects are static.
                    release(reply);
                    release(xobj as XPtr);
                }),
            );
        }
    }
}

/// What a request on connection `c` (the XPC object `connection`) gets: the
/// reply decoded from `payload` (+1, its remote connection retained), or
/// without one the connection's end: `XPC_ERROR_CONNECTION_INVALID` once
/// it was cancelled, `XPC_ERROR_CONNECTION_INTERRUPTED` otherwise.
fn reply_object(c: &Conn, connection: XPtr, payload: Option<Vec<u8>>) -> XPtr {
    match payload {
        Some(payload) => {
            let remote = retain(connection) as usize;
            let top = Dict::new(remote, None, None);
            wire::decode(&payload, top).unwrap_or_else(interrupted)
        }
        None if lock(&c.st).cancelled => invalid(),
        None => interrupted(),
    }
}

/// Ends every wait of `c` (the connection ended or was cancelled).
fn answer_all(c: &Conn) {
    let waiters: Vec<Waiter> = lock(&c.pending).drain().map(|(_, w)| w).collect();
    for w in waiters {
        answer(c, w, None);
    }
}

enum Event {
    /// A well-known error object; `final` ends the connection.
    Error(XPtr, bool),
    /// A message (+1, released after the handler).
    Message(XPtr),
    /// A new peer connection for a listener (+1, the runtime's).
    Peer(XPtr),
}

// SAFETY: the pointers are XPC objects, whose reference counts are atomic;
// the event carries the reference it releases.
unsafe impl Send for Event {}

impl Conn {
    fn new(role: Role, name: String, queue: usize) -> Self {
        Self {
            role,
            name,
            xobj: AtomicUsize::new(0),
            st: Mutex::new(State {
                active: false,
                cancelled: false,
                final_posted: false,
                finished: false,
                handler: None,
                queue,
                internal_ref: false,
                broken: false,
                listen_fd: -1,
                path: None,
                peer_stream: None,
            }),
            writer: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            creds: Mutex::new((0, 0, 0)),
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!("{:?} {:?}", self.role, self.name)
    }

    /// `rc` is the object's reference count.
    pub(crate) fn live(&self, rc: usize) -> Live {
        let (active, cancelled, internal, queue) = lock_at_exit(&self.st)
            .map(|s| (s.active, s.cancelled, s.internal_ref, s.queue))
            .unwrap_or((true, false, false, 0));
        // Cancelled, and the runtime still holds its reference: the final
        // event is on its way or being handled (cancellation is
        // asynchronous, and a program may exit from that very handler).
        // Other references the program holds then are not counted as
        // leaks: the fake cannot tell whether it would have dropped them.
        let finishing = cancelled && internal;
        Live {
            what: format!(
                "XPC {:?} connection {:?} (active {active}, cancelled {cancelled}, refcount {rc}{})",
                self.role,
                self.name,
                if finishing {
                    ", final event pending"
                } else {
                    ""
                }
            ),
            in_use: (active && !cancelled) || finishing,
            targets: (queue != 0).then_some(queue),
        }
    }

    /// Called when the last reference goes (before the object is freed).
    pub(crate) fn on_last_release(&self) {
        let (queue, handler) = {
            let mut st = lock(&self.st);
            if !st.active && !st.cancelled {
                if self.role == Role::Peer {
                    violation(
                        "a peer connection received by the listener was neither accepted (event \
                         handler, then xpc_connection_activate) nor cancelled (connection.h, \
                         XPC_CONNECTION_MACH_SERVICE_LISTENER and xpc_connection_set_event_handler)",
                    );
                }
                violation(
                    "the last reference to an inactive connection was released (connection.h, \
                     xpc_connection_activate: releasing the last reference to an inactive or \
                     suspended connection is a programming error)",
                );
            }
            if st.listen_fd >= 0 {
                // SAFETY: our own listening socket; shutdown wakes accept.
                unsafe { libc::shutdown(st.listen_fd, libc::SHUT_RDWR) };
                st.listen_fd = -1;
            }
            if let Some(p) = st.path.take() {
                let _ = std::fs::remove_file(p);
            }
            st.peer_stream = None;
            (std::mem::take(&mut st.queue), st.handler.take())
        };
        if let Some(w) = lock(&self.writer).take() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
        drop(handler);
        if queue != 0 {
            dispatch::release(queue as DPtr);
        }
    }
}

fn conn(p: XPtr, func: &str) -> &'static Arc<Conn> {
    match &obj(p, func).body {
        Body::Conn(c) => c,
        _ => violation(&format!(
            "{func} was given an XPC object that is not a connection"
        )),
    }
}

/// Socket files of listeners this process bound, removed at exit (a
/// process that exits without cancelling its listener would leave them).
static BOUND: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

pub(crate) fn remove_sockets_at_exit() {
    for p in std::mem::take(&mut *lock(&BOUND)) {
        let _ = std::fs::remove_file(p);
    }
}

/// Queues `event` for the connection's handler on its target queue (late,
/// if the fault schedule says so: the thread that posts waits, so later
/// events stay behind it).
fn post(c: &Arc<Conn>, event: Event) {
    if let Some(Action::Delay(d)) = faults::hit(Point::Event) {
        std::thread::sleep(d);
    }
    // Retained under the lock: the connection's last release (on another
    // thread) may release its queue as soon as the lock is free. That
    // reference goes to the work item.
    let queue = {
        let st = lock(&c.st);
        if st.queue != 0 {
            dispatch::retain(st.queue as DPtr);
        }
        st.queue
    };
    if queue == 0 {
        drop_event(event);
        return;
    }
    let c2 = c.clone();
    enqueue_owned(
        queue,
        Box::new(move || {
            let (handler, finished) = {
                let st = lock(&c2.st);
                (st.handler.clone(), st.finished)
            };
            let ptr = match &event {
                Event::Error(p, _) | Event::Message(p) | Event::Peer(p) => *p,
            };
            let delivered = !finished && handler.is_some();
            if delivered && let Some(h) = handler {
                h.get().call((ptr,));
            }
            if delivered && let Event::Peer(p) = event {
                // The listener's handler had its chance to accept or cancel
                // the peer; the runtime's reference goes now.
                release(p);
                return;
            }
            if let Event::Error(_, true) = event {
                let (handler, internal) = {
                    let mut st = lock(&c2.st);
                    st.finished = true;
                    (st.handler.take(), std::mem::take(&mut st.internal_ref))
                };
                drop(handler);
                if internal {
                    release(c2.xobj.load(Ordering::Relaxed) as XPtr);
                }
            } else {
                drop_event(event);
            }
        }),
    );
}

fn drop_event(event: Event) {
    match event {
        Event::Error(..) => {}
        Event::Message(p) => release(p),
        Event::Peer(p) => {
            // A peer nobody accepted in time: the runtime's reference goes.
            let c = conn(p, "listener");
            let took = {
                let st = lock(&c.st);
                st.active || st.cancelled
            };
            if !took {
                lock(&c.st).cancelled = true;
            }
            release(p);
        }
    }
}

/// Marks the connection dead and queues the final event (once).
fn finish(c: &Arc<Conn>) {
    let post_final = {
        let mut st = lock(&c.st);
        st.cancelled = true;
        let post = st.active && !st.final_posted;
        if post {
            st.final_posted = true;
        }
        post
    };
    answer_all(c);
    if post_final {
        post(c, Event::Error(invalid(), true));
    }
}

fn service_path(name: &str) -> Result<PathBuf, String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name.len() > 90 {
        return Err(format!(
            "the fake cannot map the service name {name:?} to a socket"
        ));
    }
    let dir = match std::env::var_os("VMNET_BROKER_FAKE_XPC_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            // SAFETY: geteuid cannot fail.
            let uid = unsafe { libc::geteuid() };
            PathBuf::from(format!("/tmp/vmnet-broker-fake-xpc-{uid}"))
        }
    };
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not a directory of ours that only we can write to; the fake XPC refuses it",
            dir.display()
        ));
    }
    Ok(dir.join(name))
}

fn peer_creds(s: &UnixStream) -> (i32, u32, u32) {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    #[allow(clippy::cast_possible_truncation, reason = "a ucred is 12 bytes")]
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a connected Unix socket and a correctly sized out buffer.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return (0, u32::MAX, u32::MAX);
    }
    (cred.pid, cred.uid, cred.gid)
}

fn warn(c: &Conn, what: &str) {
    eprintln!("fake-apple: XPC {:?} {:?}: {what}", c.role, c.name);
}

fn start_listener(c: &Arc<Conn>) {
    let path = match service_path(&c.name) {
        Ok(p) => p,
        Err(e) => {
            warn(c, &e);
            return finish(c);
        }
    };
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(&path).is_ok() {
                warn(c, "another process listens on this service already");
                return finish(c);
            }
            let _ = std::fs::remove_file(&path);
            match UnixListener::bind(&path) {
                Ok(l) => l,
                Err(e) => {
                    warn(c, &e.to_string());
                    return finish(c);
                }
            }
        }
        Err(e) => {
            warn(c, &e.to_string());
            return finish(c);
        }
    };
    {
        let mut st = lock(&c.st);
        st.listen_fd = listener.as_raw_fd();
        st.path = Some(path.clone());
    }
    lock(&BOUND).push(path);
    let c = c.clone();
    let _ = std::thread::Builder::new()
        .name("fake-xpc accept".into())
        .spawn(move || {
            for stream in listener.incoming() {
                if lock(&c.st).cancelled {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let peer = Conn::new(Role::Peer, c.name.clone(), 0);
                *lock(&peer.creds) = peer_creds(&stream);
                lock(&peer.st).peer_stream = Some(stream);
                let p = alloc(Body::Conn(Arc::new(peer)));
                conn(p, "listener")
                    .xobj
                    .store(p as usize, Ordering::Relaxed);
                post(&c, Event::Peer(p));
            }
        });
}

fn connect_client(c: &Arc<Conn>) -> bool {
    let stream =
        service_path(&c.name).and_then(|p| UnixStream::connect(p).map_err(|e| e.to_string()));
    let stream = match stream {
        Ok(s) => s,
        Err(_) => {
            finish(c);
            return false;
        }
    };
    *lock(&c.creds) = peer_creds(&stream);
    let Ok(w) = stream.try_clone() else {
        finish(c);
        return false;
    };
    *lock(&c.writer) = Some(w);
    lock(&c.st).broken = false;
    spawn_reader(c, stream);
    true
}

fn spawn_reader(c: &Arc<Conn>, mut stream: UnixStream) {
    let c = c.clone();
    let _ = std::thread::Builder::new()
        .name("fake-xpc reader".into())
        .spawn(move || {
            while let Some((kind, id, payload)) = wire::read_frame(&mut stream) {
                if kind == REPLY {
                    let waiter = lock(&c.pending).remove(&id);
                    if let Some(w) = waiter {
                        answer(&c, w, Some(payload));
                    }
                    continue;
                }
                let remote = {
                    let st = lock(&c.st);
                    if st.cancelled {
                        return;
                    }
                    retain(c.xobj.load(Ordering::Relaxed) as XPtr) as usize
                };
                let top = Dict::new(remote, (kind == REQUEST).then_some(id), None);
                if let Some(m) = wire::decode(&payload, top) {
                    post(&c, Event::Message(m));
                }
            }
            // End of stream. A client's writer goes first, so that a
            // request sent from now on fails rather than waits forever.
            if c.role == Role::Client {
                lock(&c.writer).take();
            }
            answer_all(&c);
            if lock(&c.st).cancelled {
                return;
            }
            match c.role {
                // The service went away: interrupted; libxpc would
                // reconnect on the next send, and so does the fake.
                Role::Client => {
                    lock(&c.st).broken = true;
                    post(&c, Event::Error(interrupted(), false));
                }
                // The client is gone: the peer connection is invalid.
                _ => finish(&c),
            }
        });
}

// ----- The C functions -----

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_create_mach_service(
    name: *const c_char,
    targetq: DPtr,
    flags: u64,
) -> XPtr {
    if name.is_null() {
        violation("xpc_connection_create_mach_service was given a NULL name");
    }
    // SAFETY: a NUL-terminated name per connection.h.
    let name = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    let queue = if targetq.is_null() {
        0
    } else {
        queue_check(targetq, "xpc_connection_create_mach_service");
        dispatch::retain(targetq) as usize
    };
    let role = if flags & LISTENER != 0 {
        Role::Listener
    } else {
        Role::Client
    };
    let p = alloc(Body::Conn(Arc::new(Conn::new(role, name, queue))));
    conn(p, "xpc_connection_create_mach_service")
        .xobj
        .store(p as usize, Ordering::Relaxed);
    p
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_set_target_queue(connection: XPtr, targetq: DPtr) {
    let c = conn(connection, "xpc_connection_set_target_queue");
    let new = if targetq.is_null() {
        0
    } else {
        queue_check(targetq, "xpc_connection_set_target_queue");
        dispatch::retain(targetq) as usize
    };
    let old = std::mem::replace(&mut lock(&c.st).queue, new);
    if old != 0 {
        dispatch::release(old as DPtr);
    }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_set_event_handler(
    connection: XPtr,
    handler: *const Block<dyn Fn(XPtr)>,
) {
    let c = conn(connection, "xpc_connection_set_event_handler");
    // SAFETY: a block of type xpc_handler_t per connection.h.
    let block = unsafe { copy_block(handler) };
    let old = std::mem::replace(&mut lock(&c.st).handler, block);
    drop(old);
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_activate(connection: XPtr) {
    let c = conn(connection, "xpc_connection_activate");
    let (cancelled, stream) = {
        let mut st = lock(&c.st);
        if st.active {
            // Activating an active connection is harmless (connection.h).
            return;
        }
        if st.handler.is_none() {
            violation(
                "xpc_connection_activate on a connection without an event handler (connection.h: \
                 set the event handler before activating)",
            );
        }
        st.active = true;
        st.internal_ref = true;
        if st.queue == 0 {
            st.queue = new_queue(&format!("fake-xpc {}", c.name));
        }
        (st.cancelled, st.peer_stream.take())
    };
    retain(connection);
    if cancelled {
        // Cancelled before it was activated: only its final event is due.
        return finish(c);
    }
    match c.role {
        Role::Listener => start_listener(c),
        Role::Client => {
            connect_client(c);
        }
        Role::Peer => match stream.and_then(|s| s.try_clone().ok().map(|w| (s, w))) {
            Some((s, w)) => {
                *lock(&c.writer) = Some(w);
                spawn_reader(c, s);
            }
            None => finish(c),
        },
    }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_resume(connection: XPtr) {
    // SAFETY: same contract; the fake has no suspend count.
    unsafe { xpc_connection_activate(connection) }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_cancel(connection: XPtr) {
    let c = conn(connection, "xpc_connection_cancel");
    {
        let mut st = lock(&c.st);
        if st.cancelled {
            return;
        }
        // Cancelled from here on: the reader, which sees its stream end
        // when the writer is shut down below, then ends outstanding
        // requests with XPC_ERROR_CONNECTION_INVALID, not INTERRUPTED.
        st.cancelled = true;
        if st.listen_fd >= 0 {
            // SAFETY: our own listening socket; shutdown wakes accept.
            unsafe { libc::shutdown(st.listen_fd, libc::SHUT_RDWR) };
            st.listen_fd = -1;
        }
        if let Some(p) = st.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
    if let Some(w) = lock(&c.writer).take() {
        let _ = w.shutdown(std::net::Shutdown::Both);
    }
    finish(c);
}

fn send_frame(c: &Conn, kind: u8, id: u64, message: XPtr) -> bool {
    let mut payload = Vec::new();
    wire::encode(message, &mut payload);
    let mut w = lock(&c.writer);
    match w.as_mut() {
        Some(w) => wire::write_frame(w, kind, id, &payload).is_ok(),
        None => false,
    }
}

fn require_dictionary(message: XPtr, func: &str) -> &'static Dict {
    match xpc::dict(message, func) {
        Some(d) => d,
        None => violation(&format!(
            "{func}: the message must be a dictionary (connection.h)"
        )),
    }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_send_message(connection: XPtr, message: XPtr) {
    let c = conn(connection, "xpc_connection_send_message");
    let d = require_dictionary(message, "xpc_connection_send_message");
    let (kind, id) = match d.reply_to {
        Some((to, id)) => {
            if to != connection as usize {
                violation(
                    "a reply was sent on a connection other than the one its request came from \
                     (xpc.h, xpc_dictionary_create_reply)",
                );
            }
            (REPLY, id)
        }
        None => (MESSAGE, 0),
    };
    {
        let st = lock(&c.st);
        if !st.active || st.cancelled {
            return;
        }
    }
    if kind == REPLY {
        match faults::hit(Point::Reply) {
            Some(Action::Drop) => return,
            Some(Action::Interrupt) => {
                // The connection ends between the request and its reply:
                // both ends see their socket close.
                if let Some(w) = lock(&c.writer).as_ref() {
                    let _ = w.shutdown(std::net::Shutdown::Both);
                }
                return;
            }
            _ => {}
        }
    }
    send_frame(c, kind, id, message);
}

/// Sends a request whose reply goes to `waiter`; a request that cannot be
/// sent ends its wait at once (see [`answer`]).
fn send_request(c: &Arc<Conn>, message: XPtr, waiter: Waiter, func: &str) {
    if c.role != Role::Client {
        violation(&format!(
            "{func}: the fake supports requests on client connections only"
        ));
    }
    let (cancelled, broken) = {
        let st = lock(&c.st);
        (st.cancelled, st.broken)
    };
    if cancelled || (broken && !connect_client(c)) {
        return answer(c, waiter, None);
    }
    let id = c.next_id.fetch_add(1, Ordering::Relaxed);
    lock(&c.pending).insert(id, waiter);
    // A connection that ends from here on either finds the waiter (and
    // answers it) or has taken the writer first, so that this send fails.
    if !send_frame(c, REQUEST, id, message) {
        let waiter = lock(&c.pending).remove(&id);
        if let Some(w) = waiter {
            answer(c, w, None);
        }
    }
}

/// The checks both request functions make first.
fn check_request(connection: XPtr, message: XPtr, func: &str) -> &'static Arc<Conn> {
    let c = conn(connection, func);
    require_dictionary(message, func);
    if !lock(&c.st).active {
        violation(&format!(
            "{func} on a connection that was never activated (connection.h)"
        ));
    }
    c
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_send_message_with_reply(
    connection: XPtr,
    message: XPtr,
    replyq: DPtr,
    handler: *const Block<dyn Fn(XPtr)>,
) {
    const F: &str = "xpc_connection_send_message_with_reply";
    let c = check_request(connection, message, F);
    // SAFETY: NULL or a block of type xpc_handler_t per connection.h.
    let Some(handler) = (unsafe { copy_block(handler) }) else {
        violation(&format!(
            "{F} was given a NULL handler (connection.h: XPC_NONNULL4)"
        ));
    };
    let queue = if replyq.is_null() {
        // connection.h does not say what a NULL reply queue means; the
        // fake takes the connection's target queue (its reading).
        let st = lock(&c.st);
        if st.queue == 0 {
            violation(&format!(
                "{F}: NULL reply queue on a connection without a queue"
            ));
        }
        dispatch::retain(st.queue as DPtr) as usize
    } else {
        queue_check(replyq, F);
        dispatch::retain(replyq) as usize
    };
    let xobj = retain(connection) as usize;
    send_request(
        c,
        message,
        Waiter::Async {
            xobj,
            queue,
            handler,
        },
        F,
    );
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_send_message_with_reply_sync(
    connection: XPtr,
    message: XPtr,
) -> XPtr {
    const F: &str = "xpc_connection_send_message_with_reply_sync";
    let c = check_request(connection, message, F);
    let queue = lock(&c.st).queue;
    if queue != 0 && current_queue() == queue {
        violation(
            "xpc_connection_send_message_with_reply_sync was called from the connection's own \
             target queue (connection.h: doing so deadlocks)",
        );
    }
    let (tx, rx) = channel();
    send_request(c, message, Waiter::Sync(tx), F);
    reply_object(c, connection, rx.recv().ok().flatten())
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_get_pid(connection: XPtr) -> libc::pid_t {
    lock(&conn(connection, "xpc_connection_get_pid").creds).0
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_get_euid(connection: XPtr) -> libc::uid_t {
    lock(&conn(connection, "xpc_connection_get_euid").creds).1
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_connection_get_egid(connection: XPtr) -> libc::gid_t {
    lock(&conn(connection, "xpc_connection_get_egid").creds).2
}
