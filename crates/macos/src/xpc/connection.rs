//! XPC connections: the broker's Mach-service listener and the client.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use block2::RcBlock;
use dispatch2::{DispatchObject, DispatchQueue, DispatchRetained};

use super::object::{XpcDictionary, XpcObject, XpcType, c_string, copy_c_str, type_of};
use super::{XpcError, no_unwind};
use crate::sys::xpc as sys;
use crate::sys::xpc::xpc_object_t;

/// Who is on the other end of a connection, as the kernel saw it when the
/// connection was made (SDK `xpc/connection.h`: euid and egid "at the time
/// the connection was made"; the pid may be reused after the peer exits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// `xpc_connection_get_pid`.
    pub pid: i32,
    /// `xpc_connection_get_euid`.
    pub euid: u32,
    /// `xpc_connection_get_egid`.
    pub egid: u32,
}

/// A connection (peer, listener or client). Clone retains it.
#[derive(Clone, Debug)]
pub struct XpcConnection {
    obj: XpcObject,
}

impl XpcConnection {
    /// Retains a borrowed connection.
    ///
    /// # Safety
    ///
    /// `ptr` must be NULL or a live `xpc_connection_t`.
    unsafe fn from_borrowed(ptr: xpc_object_t) -> Option<Self> {
        // SAFETY: per the caller.
        unsafe { XpcObject::from_borrowed(ptr) }.map(|obj| Self { obj })
    }

    /// The raw pointer, still owned by `self`.
    pub fn as_ptr(&self) -> xpc_object_t {
        self.obj.as_ptr()
    }

    /// The peer's pid, euid and egid.
    pub fn credentials(&self) -> PeerCredentials {
        let c = self.as_ptr();
        // SAFETY (the three calls): `self` keeps the connection alive; the
        // getters only read it (SDK xpc/connection.h).
        PeerCredentials {
            // SAFETY: see above.
            pid: unsafe { sys::xpc_connection_get_pid(c) },
            // SAFETY: see above.
            euid: unsafe { sys::xpc_connection_get_euid(c) },
            // SAFETY: see above.
            egid: unsafe { sys::xpc_connection_get_egid(c) },
        }
    }

    /// Sends a message without waiting for a reply. The dictionary is
    /// copied (SDK: "logically copied by the connection").
    pub fn send(&self, message: &XpcDictionary) {
        // SAFETY: both objects are alive for the call; sending is allowed
        // from any queue (SDK xpc/connection.h).
        unsafe { sys::xpc_connection_send_message(self.as_ptr(), message.as_ptr()) };
    }

    /// Cancels the connection. Asynchronous: its handler still receives a
    /// final `XPC_ERROR_CONNECTION_INVALID` (for a broker peer, that is a
    /// [`ServiceEvent::Disconnected`]).
    pub fn cancel(&self) {
        // SAFETY: `self` keeps the connection alive (SDK xpc/connection.h).
        unsafe { sys::xpc_connection_cancel(self.as_ptr()) };
    }
}

/// Identifies a connected client for the lifetime of the listener. Ids
/// start at 1 and are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u64);

/// A request received from a client, with the means to answer it.
#[derive(Debug)]
pub struct XpcRequest {
    message: XpcObject,
}

impl XpcRequest {
    #[cfg(test)]
    pub(crate) fn for_test(message: XpcObject) -> Self {
        Self { message }
    }

    /// The request dictionary. It implements
    /// [`vmnet_broker_proto::Dict`], so `Request::decode` reads it directly.
    pub fn message(&self) -> &XpcObject {
        &self.message
    }

    /// A reply dictionary bound to this request
    /// (`xpc_dictionary_create_reply`).
    ///
    /// # Errors
    ///
    /// [`XpcError::NoReplyContext`] if the client expects no reply or a
    /// reply was created already.
    pub fn create_reply(&self) -> Result<XpcDictionary, XpcError> {
        // SAFETY: the message is alive (SDK xpc/xpc.h).
        let raw = unsafe { sys::xpc_dictionary_create_reply(self.message.as_ptr()) };
        // SAFETY: a fresh +1 dictionary or NULL, referenced by nobody else.
        unsafe { XpcDictionary::from_owned_unique(raw) }.ok_or(XpcError::NoReplyContext)
    }

    /// Sends `reply` (made by [`Self::create_reply`]) over the connection
    /// the request came from.
    ///
    /// # Errors
    ///
    /// [`XpcError::NoReplyContext`] if the request has no connection (it
    /// did not come from a connection).
    pub fn send_reply(&self, reply: &XpcDictionary) -> Result<(), XpcError> {
        // SAFETY: the message is alive; the remote connection is borrowed
        // from it (SDK xpc/xpc.h) and used within this call.
        let connection =
            unsafe { sys::xpc_dictionary_get_remote_connection(self.message.as_ptr()) };
        if connection.is_null() {
            return Err(XpcError::NoReplyContext);
        }
        // SAFETY: a live connection and dictionary (SDK xpc/connection.h).
        unsafe { sys::xpc_connection_send_message(connection, reply.as_ptr()) };
        Ok(())
    }

    /// The connection the request came from, retained.
    pub fn connection(&self) -> Option<XpcConnection> {
        // SAFETY: the message is alive; the connection (or NULL) is
        // borrowed from it (SDK xpc/xpc.h).
        let raw = unsafe { sys::xpc_dictionary_get_remote_connection(self.message.as_ptr()) };
        // SAFETY: NULL or a live connection, retained at once.
        unsafe { XpcConnection::from_borrowed(raw) }
    }
}

/// What the broker's listener reports. All events arrive on the queue given
/// to [`XpcListener::start`], one at a time.
#[derive(Debug)]
pub enum ServiceEvent {
    /// A client connected. Its events follow with the same `peer`. The
    /// connection is activated when the handler returns, unless the
    /// handler calls [`Admission::refuse`]: then it is cancelled and never
    /// activated, as a listener rejects a peer (SDK `xpc/connection.h`).
    /// Keep `connection` to cancel it later (dropping it is fine too).
    Connected {
        /// The new client's id.
        peer: PeerId,
        /// The client's connection.
        connection: XpcConnection,
        /// Who the client is.
        credentials: PeerCredentials,
        /// Turns the client away.
        admission: Admission,
    },
    /// A request from a client. Answer with [`XpcRequest::create_reply`]
    /// and [`XpcRequest::send_reply`]. If the handler panics while handling
    /// it, the client's connection is cancelled, which ends in
    /// [`ServiceEvent::Disconnected`] for it.
    Request {
        /// The client.
        peer: PeerId,
        /// The request.
        request: XpcRequest,
    },
    /// The client's connection is gone (`XPC_ERROR_CONNECTION_INVALID`:
    /// closed, process exited, or cancelled). No more events for `peer`;
    /// drop its holds.
    Disconnected {
        /// The client.
        peer: PeerId,
    },
    /// `XPC_ERROR_TERMINATION_IMMINENT` on a client connection: the system
    /// wants the process to exit soon; no more requests will come from this
    /// client.
    TerminationImminent {
        /// The client.
        peer: PeerId,
    },
    /// `XPC_ERROR_CONNECTION_INTERRUPTED` on a client connection. Apple's
    /// header describes it for connections to a named service whose remote
    /// end exited; a broker peer should not see it, but if it does, the
    /// connection is still usable and a final
    /// [`ServiceEvent::Disconnected`] comes when it is gone.
    Interrupted {
        /// The client.
        peer: PeerId,
    },
    /// Another error on a client connection (logged; the connection may
    /// still end with [`ServiceEvent::Disconnected`]).
    PeerError {
        /// The client.
        peer: PeerId,
        /// libxpc's description.
        description: String,
    },
    /// An error on the listener itself. `invalid` means the listener is
    /// dead (for example, the name is not a `MachServices` entry of this
    /// job's launchd plist); the daemon should exit with an error.
    ListenerError {
        /// Whether this is `XPC_ERROR_CONNECTION_INVALID`.
        invalid: bool,
        /// libxpc's description.
        description: String,
    },
}

/// The handler's answer to [`ServiceEvent::Connected`]: accepted unless
/// refused.
#[derive(Debug, Clone, Default)]
pub struct Admission(Arc<AtomicBool>);

impl Admission {
    /// Refuses the new client: its connection is cancelled, not activated.
    pub fn refuse(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn refused(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

type Handler = Box<dyn FnMut(ServiceEvent) + Send>;

struct Shared {
    handler: Mutex<Handler>,
    next_peer: AtomicU64,
    queue: DispatchRetained<DispatchQueue>,
}

impl Shared {
    /// Runs the handler with `event`. Returns false if it panicked.
    fn deliver(&self, event: ServiceEvent) -> bool {
        no_unwind("vmnet-broker XPC service handler", || {
            let mut handler = self.handler.lock().unwrap_or_else(PoisonError::into_inner);
            (handler)(event);
        })
    }
}

/// Which well-known error an error event is.
enum ErrorKind {
    Invalid,
    Interrupted,
    TerminationImminent,
    Other,
}

/// # Safety
///
/// `event` must be a live object of type `XPC_TYPE_ERROR`.
unsafe fn error_kind(event: xpc_object_t) -> ErrorKind {
    let p = event.cast_const().cast::<sys::xpc_global_s>();
    if p == &raw const sys::_xpc_error_connection_invalid {
        ErrorKind::Invalid
    } else if p == &raw const sys::_xpc_error_connection_interrupted {
        ErrorKind::Interrupted
    } else if p == &raw const sys::_xpc_error_termination_imminent {
        ErrorKind::TerminationImminent
    } else {
        ErrorKind::Other
    }
}

/// The `XPC_ERROR_KEY_DESCRIPTION` text of an error event.
///
/// # Safety
///
/// `event` must be a live error object.
unsafe fn error_description(event: xpc_object_t) -> String {
    // SAFETY: an immutable static of libxpc holding a pointer to a
    // NUL-terminated key (SDK xpc/xpc.h).
    let key = unsafe { sys::_xpc_error_key_description };
    if key.is_null() {
        return String::from("(no description)");
    }
    // SAFETY: the event is a live dictionary-like error object (per the
    // caller) and `key` a NUL-terminated key; the string is borrowed.
    let text = unsafe { sys::xpc_dictionary_get_string(event, key) };
    // SAFETY: NULL or a NUL-terminated string alive with `event`, copied.
    unsafe { copy_c_str(text) }.unwrap_or_else(|| String::from("(no description)"))
}

/// The broker's Mach-service listener
/// (`xpc_connection_create_mach_service` with
/// `XPC_CONNECTION_MACH_SERVICE_LISTENER`).
///
/// Keep it alive for as long as the broker serves; dropping it cancels the
/// listener (connected clients keep their own connections).
#[derive(Debug)]
pub struct XpcListener {
    connection: XpcConnection,
}

impl XpcListener {
    /// Checks in as the listener of the Mach service `name` and starts
    /// accepting clients. Every event (new client, request, disconnect,
    /// errors) goes to `handler` on `queue`; use a serial queue and run
    /// all of the broker's work on it.
    ///
    /// `name` must be listed in the job's `MachServices`; otherwise the
    /// listener receives [`ServiceEvent::ListenerError`] with `invalid`.
    ///
    /// # Errors
    ///
    /// [`XpcError::InteriorNul`] if `name` has a NUL byte.
    pub fn start<F>(name: &str, queue: &DispatchQueue, handler: F) -> Result<Self, XpcError>
    where
        F: FnMut(ServiceEvent) + Send + 'static,
    {
        let c_name = c_string("service name", name)?;
        let shared = Arc::new(Shared {
            handler: Mutex::new(Box::new(handler)),
            next_peer: AtomicU64::new(1),
            queue: queue.retain(),
        });
        // SAFETY: NUL-terminated name, a live queue; returns a +1 inactive
        // listener connection (SDK xpc/connection.h).
        let raw = unsafe {
            sys::xpc_connection_create_mach_service(
                c_name.as_ptr(),
                Some(queue),
                sys::XPC_CONNECTION_MACH_SERVICE_LISTENER,
            )
        };
        // SAFETY: fresh +1 connection, owned from here on.
        let obj = unsafe { XpcObject::from_owned(raw) }.ok_or_else(|| XpcError::Other {
            service: name.to_owned(),
            description: "xpc_connection_create_mach_service returned NULL".into(),
        })?;
        let connection = XpcConnection { obj };

        let listener_shared = Arc::clone(&shared);
        let block = RcBlock::new(move |event: xpc_object_t| {
            no_unwind("vmnet-broker XPC listener", || {
                // SAFETY: libxpc passes a live event for the duration of
                // the handler (SDK xpc/connection.h).
                unsafe { on_listener_event(&listener_shared, event) }
            });
        });
        // SAFETY: a live, inactive connection; libxpc copies the block
        // (SDK xpc/connection.h), so dropping our RcBlock afterwards is
        // fine.
        unsafe { sys::xpc_connection_set_event_handler(connection.as_ptr(), &block) };
        // SAFETY: the live connection, its handler set; activate (macOS
        // 10.12+), after which it may be released safely.
        unsafe { sys::xpc_connection_activate(connection.as_ptr()) };
        Ok(Self { connection })
    }

    /// Stops accepting clients.
    pub fn cancel(&self) {
        self.connection.cancel();
    }
}

impl Drop for XpcListener {
    fn drop(&mut self) {
        self.connection.cancel();
    }
}

/// # Safety
///
/// `event` must be live for the duration of the call.
unsafe fn on_listener_event(shared: &Arc<Shared>, event: xpc_object_t) {
    // SAFETY: per the caller.
    match unsafe { type_of(event) } {
        // SAFETY: per the caller, and the type was checked.
        XpcType::Connection => unsafe { accept_peer(shared, event) },
        XpcType::Error => {
            // SAFETY: a live error object.
            let kind = unsafe { error_kind(event) };
            // SAFETY: a live error object.
            let description = unsafe { error_description(event) };
            shared.deliver(ServiceEvent::ListenerError {
                invalid: matches!(kind, ErrorKind::Invalid),
                description,
            });
        }
        other => tracing::warn!(?other, "unexpected object on the XPC listener, ignored"),
    }
}

/// Offers a new peer to the handler (`Connected`); if accepted, sets its
/// target queue and event handler and activates it, else cancels it.
///
/// # Safety
///
/// `peer` must be a live connection object received by the listener.
unsafe fn accept_peer(shared: &Arc<Shared>, peer: xpc_object_t) {
    // SAFETY: a live connection; we retain it for the Connected event.
    let Some(connection) = (unsafe { XpcConnection::from_borrowed(peer) }) else {
        return;
    };
    let id = PeerId(shared.next_peer.fetch_add(1, Ordering::Relaxed));
    let credentials = connection.credentials();

    let admission = Admission::default();
    let delivered = shared.deliver(ServiceEvent::Connected {
        peer: id,
        connection: connection.clone(),
        credentials,
        admission: admission.clone(),
    });
    if !delivered || admission.refused() {
        // Turned away: cancel only. The connection was never activated and
        // has no handler; libxpc disposes of it (SDK xpc/connection.h: a
        // listener rejects a peer by cancelling it).
        connection.cancel();
        return;
    }

    let peer_shared = Arc::clone(shared);
    // The block captures the id and the shared handler, not the
    // connection, so the connection does not keep itself alive.
    let block = RcBlock::new(move |event: xpc_object_t| {
        no_unwind("vmnet-broker XPC peer", || {
            // SAFETY: libxpc passes a live event for the duration of the
            // handler (SDK xpc/connection.h).
            unsafe { on_peer_event(&peer_shared, id, event) }
        });
    });
    // SAFETY: a live, not yet activated peer connection. A peer from a
    // listener behaves like one created with a NULL target queue (SDK
    // xpc/connection.h), so we point it at the broker's queue.
    unsafe { sys::xpc_connection_set_target_queue(peer, Some(&*shared.queue)) };
    // SAFETY: the same live, inactive peer; libxpc copies the handler.
    unsafe { sys::xpc_connection_set_event_handler(peer, &block) };
    // SAFETY: a live peer connection with its handler set (SDK
    // xpc/connection.h).
    unsafe { sys::xpc_connection_activate(peer) };
}

/// # Safety
///
/// `event` must be live for the duration of the call.
unsafe fn on_peer_event(shared: &Shared, peer: PeerId, event: xpc_object_t) {
    // SAFETY: per the caller.
    match unsafe { type_of(event) } {
        XpcType::Dictionary => {
            // SAFETY: live message; retained for the request.
            let Some(message) = (unsafe { XpcObject::from_borrowed(event) }) else {
                return;
            };
            let request = XpcRequest { message };
            let connection = request.connection();
            let delivered = shared.deliver(ServiceEvent::Request { peer, request });
            if !delivered && let Some(c) = connection {
                c.cancel();
            }
        }
        XpcType::Error => {
            // SAFETY: a live error object.
            let kind = unsafe { error_kind(event) };
            // SAFETY: a live error object.
            let description = unsafe { error_description(event) };
            let event = match kind {
                ErrorKind::Invalid => ServiceEvent::Disconnected { peer },
                ErrorKind::TerminationImminent => ServiceEvent::TerminationImminent { peer },
                ErrorKind::Interrupted => ServiceEvent::Interrupted { peer },
                ErrorKind::Other => ServiceEvent::PeerError { peer, description },
            };
            shared.deliver(event);
        }
        other => tracing::warn!(
            ?other,
            peer = peer.0,
            "unexpected object from an XPC peer, ignored"
        ),
    }
}

/// A client connection to the broker, for the Rust client and tools.
///
/// Requests are synchronous ([`XpcClient::request`]). The connection's
/// events go to a private serial queue, so `request` may be called from any
/// thread or queue except from inside this connection's own handler (which
/// is private).
///
/// # The `PRIVILEGED` flag
///
/// `XPC_CONNECTION_MACH_SERVICE_PRIVILEGED` tells libxpc that the service
/// is advertised by a job in the privileged (system) bootstrap, i.e. a
/// plist in `/Library/LaunchDaemons` (SDK `xpc/connection.h`). The original
/// C client passes no flag and reaches its LaunchDaemon that way; whether
/// that works in every kind of session is not documented (UNCONFIRMED, see
/// `docs/macos-sources.md`, "libxpc"). A `--user` LaunchAgent lives in the user's GUI
/// domain, where the privileged lookup would not find it. Hence
/// `privileged` is a parameter: `false` behaves like the upstream client.
#[derive(Debug)]
pub struct XpcClient {
    service: String,
    connection: XpcConnection,
    /// Set by the event handler when the connection reports
    /// `XPC_ERROR_CONNECTION_INTERRUPTED` or
    /// `XPC_ERROR_TERMINATION_IMMINENT`: the broker went (or is going)
    /// away, and its holds for this connection with it.
    interrupted: Arc<AtomicBool>,
    /// The connection's target queue, also the queue of reply handlers.
    queue: DispatchRetained<DispatchQueue>,
}

impl XpcClient {
    /// Opens a connection to the Mach service `service`. Creating it always
    /// succeeds; a missing service shows up as
    /// [`XpcError::ConnectionInvalid`] on the first request.
    ///
    /// # Errors
    ///
    /// [`XpcError::InteriorNul`] if `service` has a NUL byte.
    pub fn connect(service: &str, privileged: bool) -> Result<Self, XpcError> {
        let c_name = c_string("service name", service)?;
        let queue = DispatchQueue::new("com.github.nirs.vmnet-broker.client", None);
        let flags = if privileged {
            sys::XPC_CONNECTION_MACH_SERVICE_PRIVILEGED
        } else {
            0
        };
        // SAFETY: NUL-terminated name, live queue; +1 inactive connection
        // (SDK xpc/connection.h).
        let raw = unsafe {
            sys::xpc_connection_create_mach_service(c_name.as_ptr(), Some(&queue), flags)
        };
        // SAFETY: fresh +1 connection.
        let obj = unsafe { XpcObject::from_owned(raw) }.ok_or_else(|| XpcError::Other {
            service: service.to_owned(),
            description: "xpc_connection_create_mach_service returned NULL".into(),
        })?;
        let connection = XpcConnection { obj };
        let name = service.to_owned();
        let interrupted = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&interrupted);
        let block = RcBlock::new(move |event: xpc_object_t| {
            no_unwind("vmnet-broker XPC client", || {
                // SAFETY: libxpc passes a live event for the call.
                if unsafe { type_of(event) } == XpcType::Error {
                    // SAFETY: a live error object.
                    let kind = unsafe { error_kind(event) };
                    if matches!(
                        kind,
                        ErrorKind::Interrupted | ErrorKind::TerminationImminent
                    ) {
                        flag.store(true, Ordering::SeqCst);
                    }
                    // SAFETY: a live error object.
                    let description = unsafe { error_description(event) };
                    tracing::debug!(service = %name, %description, "XPC client connection event");
                }
            });
        });
        // SAFETY: live inactive connection; the block is copied.
        unsafe { sys::xpc_connection_set_event_handler(connection.as_ptr(), &block) };
        // SAFETY: the live connection, its handler set; activate so it may
        // be used and later released.
        unsafe { sys::xpc_connection_activate(connection.as_ptr()) };
        Ok(Self {
            service: service.to_owned(),
            connection,
            interrupted,
            queue,
        })
    }

    /// Whether the connection was interrupted (or told of the broker's
    /// imminent exit) since the last call, clearing the mark. A request
    /// that fails with the interruption itself should call this too, so
    /// that one loss is reported once.
    pub fn take_interruption(&self) -> bool {
        self.interrupted.swap(false, Ordering::SeqCst)
    }

    /// The effective user id of the process that serves the connection,
    /// as libxpc last learnt it (`xpc_connection_get_euid`: meaningful
    /// once a reply has arrived).
    pub fn server_euid(&self) -> u32 {
        self.connection.credentials().euid
    }

    /// Sends `message` and waits for the reply dictionary.
    ///
    /// # Errors
    ///
    /// [`XpcError::ConnectionInvalid`], [`XpcError::ConnectionInterrupted`]
    /// or [`XpcError::Other`] when libxpc answers with an error object
    /// instead of a reply.
    pub fn request(&self, message: &XpcDictionary) -> Result<XpcObject, XpcError> {
        // SAFETY: live connection and message; the result is +1 (SDK
        // xpc/connection.h). We are not on the connection's private queue.
        let raw = unsafe {
            sys::xpc_connection_send_message_with_reply_sync(
                self.connection.as_ptr(),
                message.as_ptr(),
            )
        };
        // SAFETY: fresh +1 object (a reply, or one of the well-known error
        // objects, which tolerate retain/release).
        let reply = unsafe { XpcObject::from_owned(raw) }.ok_or_else(|| XpcError::Other {
            service: self.service.clone(),
            description: "no reply".into(),
        })?;
        reply_result(reply, &self.service)
    }

    /// [`XpcClient::request`], waiting at most `timeout` for the reply.
    ///
    /// libxpc has no timeout for a request, and a stopped or stuck broker
    /// never answers. So the message is sent with
    /// `xpc_connection_send_message_with_reply`, whose handler (on the
    /// client's private queue) hands the reply over, and this thread waits
    /// for it at most `timeout`. When no reply came in time the connection
    /// is cancelled: libxpc then calls the outstanding handler with
    /// `XPC_ERROR_CONNECTION_INVALID` (SDK xpc/connection.h,
    /// `xpc_connection_cancel`), which nobody waits for any more. The
    /// client cannot be used after a timeout: make a new one.
    ///
    /// # Errors
    ///
    /// As [`XpcClient::request`], and [`XpcError::Timeout`].
    pub fn request_within(
        &self,
        message: &XpcDictionary,
        timeout: Duration,
    ) -> Result<XpcObject, XpcError> {
        // The handler runs once; should it run again, the first reply
        // stands (the channel holds one and `try_send` drops the rest).
        let (tx, rx) = std::sync::mpsc::sync_channel::<Option<XpcObject>>(1);
        let block = RcBlock::new(move |reply: xpc_object_t| {
            no_unwind("vmnet-broker XPC reply", || {
                // SAFETY: libxpc passes a live object (the reply or an
                // error object) for the duration of the handler; it is
                // retained here.
                let reply = unsafe { XpcObject::from_borrowed(reply) };
                let _ = tx.try_send(reply);
            });
        });
        // SAFETY: a live connection and dictionary (both logically copied
        // or retained by libxpc), the client's live private queue, and a
        // block that libxpc copies (SDK xpc/connection.h). The handler only
        // stores the reply and wakes this thread, so it is safe to call on
        // the queue's thread.
        unsafe {
            sys::xpc_connection_send_message_with_reply(
                self.connection.as_ptr(),
                message.as_ptr(),
                Some(&self.queue),
                &block,
            );
        }
        drop(block);
        // `recv_timeout` waits without a bound when the deadline cannot be
        // represented.
        match rx.recv_timeout(timeout) {
            Ok(Some(reply)) => reply_result(reply, &self.service),
            // NULL (which libxpc does not document), or the handler was
            // released without being called.
            Ok(None) | Err(RecvTimeoutError::Disconnected) => Err(XpcError::Other {
                service: self.service.clone(),
                description: "no reply".into(),
            }),
            Err(RecvTimeoutError::Timeout) => {
                self.connection.cancel();
                Err(XpcError::Timeout {
                    service: self.service.clone(),
                    after: timeout,
                })
            }
        }
    }

    /// The underlying connection.
    pub fn connection(&self) -> &XpcConnection {
        &self.connection
    }
}

/// A reply as a result: a dictionary is the broker's answer; an error
/// object is the connection's state.
fn reply_result(reply: XpcObject, service: &str) -> Result<XpcObject, XpcError> {
    if reply.kind() != XpcType::Error {
        return Ok(reply);
    }
    // SAFETY: a live error object.
    let kind = unsafe { error_kind(reply.as_ptr()) };
    // SAFETY: a live error object.
    let description = unsafe { error_description(reply.as_ptr()) };
    let service = service.to_owned();
    Err(match kind {
        ErrorKind::Invalid => XpcError::ConnectionInvalid {
            service,
            description,
        },
        ErrorKind::Interrupted => XpcError::ConnectionInterrupted {
            service,
            description,
        },
        ErrorKind::TerminationImminent => XpcError::TerminationImminent {
            service,
            description,
        },
        ErrorKind::Other => XpcError::Other {
            service,
            description,
        },
    })
}

impl Drop for XpcClient {
    fn drop(&mut self) {
        self.connection.cancel();
    }
}

/// An open XPC transaction: while one is held, launchd treats the process
/// as busy (with `EnableTransactions`, a job without open transactions is
/// killed at once on stop instead of getting SIGTERM). The original broker
/// holds one while any client is connected.
#[derive(Debug)]
pub struct XpcTransaction {
    _private: (),
}

impl XpcTransaction {
    /// `xpc_transaction_begin`.
    pub fn begin() -> Self {
        // SAFETY: no arguments; balanced by Drop (SDK xpc/xpc.h).
        unsafe { sys::xpc_transaction_begin() };
        Self { _private: () }
    }
}

impl Drop for XpcTransaction {
    fn drop(&mut self) {
        // SAFETY: ends the transaction begun in `begin`.
        unsafe { sys::xpc_transaction_end() };
    }
}
