//! The development transport: JSON lines over a Unix stream socket.
//!
//! One thread runs a readiness loop (mio) and owns the broker, like the
//! single serial queue of the XPC service: no locks, no thread hops. The
//! poll timeout is the broker's next deadline. A request is answered as soon
//! as its line is complete; replies are queued per connection and written as
//! the socket accepts them. A client that stops reading has its reading
//! paused once too much output is queued, so it cannot grow the broker's
//! memory without bound.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token};
use serde_json::Value;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use tracing::{debug, info, warn};
use vmnet_broker_core::backend::Backend;
use vmnet_broker_core::broker::{ClientId, Event, Reply};
use vmnet_broker_proto::json::{self, Frame, LineFramer};
use vmnet_broker_proto::{NetworkInfo, NetworkName, Request};

use super::DaemonBroker;
use super::listener::Listener;
use crate::sys::peer_credentials;

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const FIRST_CONN: usize = 2;

/// Queued output above which a connection's reading is paused.
const MAX_QUEUED_OUTPUT: usize = 1 << 20;

/// Encoded `acquire` replies kept at most (one per live network is enough;
/// the map is cleared when it grows past this).
const MAX_CACHED_REPLIES: usize = 1024;

/// How a backend's serialization is written on the development transport.
pub trait WireValue {
    /// The JSON form of the serialization.
    fn to_wire(&self) -> Value;

    /// Whether `self` and `other` describe the same live network, so that an
    /// encoded reply made for one can be sent for the other. The default,
    /// `false`, turns the reply cache off.
    fn same_network(&self, _other: &Self) -> bool {
        false
    }
}

impl WireValue for Value {
    fn to_wire(&self) -> Value {
        self.clone()
    }

    fn same_network(&self, other: &Self) -> bool {
        self == other
    }
}

/// The encoded reply line last sent for an `acquire` of one network, with
/// what it was built from. It is reused only when the broker answers with
/// an equal serialization and info, so a network removed and created again
/// under the same name never gets the old bytes.
struct CachedReply<S> {
    network: S,
    info: NetworkInfo,
    line: Vec<u8>,
}

type ReplyCache<S> = HashMap<NetworkName, CachedReply<S>>;

struct Conn {
    stream: UnixStream,
    peer: ClientId,
    framer: LineFramer,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    written: usize,
    /// The peer closed its side: finish writing, then close.
    eof: bool,
    interest: Interest,
}

impl Conn {
    fn queued(&self) -> usize {
        self.out.len() - self.written
    }
}

/// The server: listener, connections and the broker.
pub struct Server<B: Backend> {
    poll: Poll,
    listener: Listener,
    signals: Signals,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    broker: DaemonBroker<B>,
    max_line: usize,
    max_name: usize,
    read_buf: Vec<u8>,
    /// Accepting is paused because the process ran out of descriptors.
    accept_paused: bool,
    /// Encoded `acquire` replies by network name.
    replies: ReplyCache<B::Serialization>,
}

enum Stop {
    Idle,
    Signal(&'static str),
}

impl<B> Server<B>
where
    B: Backend,
    B::Serialization: WireValue,
{
    /// Registers the listener and the signal handlers.
    pub fn new(
        broker: DaemonBroker<B>,
        mut listener: Listener,
        max_line: usize,
        max_name: u8,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener.listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        Ok(Server {
            poll,
            listener,
            signals,
            conns: HashMap::new(),
            next_token: FIRST_CONN,
            broker,
            max_line,
            max_name: usize::from(max_name),
            read_buf: vec![0; 64 * 1024],
            accept_paused: false,
            replies: HashMap::new(),
        })
    }

    /// Serves until the broker is idle or a stop signal arrives with no
    /// client connected; then releases every network.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let stop = loop {
            let timeout = self
                .broker
                .poll_timeout()
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut signalled = false;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    SIGNALS => signalled = true,
                    token => self.conn_event(token, event.is_readable(), event.is_writable()),
                }
            }
            // Signals are judged after this batch's disconnections, so a
            // client that left just before the signal does not count.
            let stop = if signalled { self.signals() } else { None };
            self.broker.handle_timeout(Instant::now());
            if self.drain_events() {
                break Stop::Idle;
            }
            if let Some(s) = stop {
                break s;
            }
        };
        match stop {
            Stop::Idle => info!("no clients for the idle delay; exiting"),
            Stop::Signal(name) => info!("{name} with no clients connected; exiting"),
        }
        let released = self.broker.shutdown(Instant::now());
        self.drain_events();
        info!(networks = released, "all networks released; goodbye");
        Ok(())
    }

    /// Logs broker events; returns whether the broker asked to exit.
    fn drain_events(&mut self) -> bool {
        let mut exit = false;
        while let Some(event) = self.broker.poll_event() {
            match event {
                Event::IdleExit => exit = true,
                Event::NetworkCreated { .. } | Event::NetworkRemoved { .. } => {}
            }
        }
        exit
    }

    fn signals(&mut self) -> Option<Stop> {
        let mut stop = None;
        let pending: Vec<i32> = self.signals.pending().collect();
        for sig in pending {
            if sig == SIGHUP {
                super::reload(&mut self.broker);
                continue;
            }
            let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
            let clients = self.broker.client_count();
            if clients > 0 {
                warn!(
                    clients,
                    "{name} received while clients are connected; ignoring it so running VMs keep their networks"
                );
            } else {
                stop = Some(Stop::Signal(name));
            }
        }
        stop
    }

    fn accept(&mut self) {
        loop {
            let (mut stream, _) = match self.listener.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if matches!(e.raw_os_error(), Some(libc_emfile) if is_fd_exhaustion(libc_emfile))
                    {
                        warn!("out of file descriptors; pausing new connections until one closes");
                        self.pause_accept(true);
                    } else {
                        warn!("accept failed: {e}");
                    }
                    return;
                }
            };
            let creds = match peer_credentials(&stream) {
                Ok(c) => c,
                Err(e) => {
                    warn!("cannot read peer credentials; closing the connection: {e}");
                    continue;
                }
            };
            let token = Token(self.next_token);
            self.next_token += 1;
            let peer = ClientId(token.0 as u64);
            if let Err(e) = self.broker.handle_connect(Instant::now(), peer, creds) {
                warn!(pid = creds.pid, uid = creds.uid, "{e}");
                continue;
            }
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut stream, token, Interest::READABLE)
            {
                warn!("cannot watch a new connection: {e}");
                self.broker.handle_disconnect(Instant::now(), peer);
                continue;
            }
            self.conns.insert(
                token,
                Conn {
                    stream,
                    peer,
                    framer: LineFramer::new(self.max_line),
                    out: Vec::new(),
                    written: 0,
                    eof: false,
                    interest: Interest::READABLE,
                },
            );
        }
    }

    fn pause_accept(&mut self, pause: bool) {
        if pause == self.accept_paused {
            return;
        }
        let registry = self.poll.registry();
        let result = if pause {
            registry.deregister(&mut self.listener.listener)
        } else {
            registry.register(&mut self.listener.listener, LISTENER, Interest::READABLE)
        };
        if let Err(e) = result {
            warn!("cannot change the listener's registration: {e}");
            return;
        }
        self.accept_paused = pause;
    }

    fn conn_event(&mut self, token: Token, readable: bool, writable: bool) {
        let mut alive = true;
        if readable {
            alive = self.read(token);
        }
        if alive && (writable || readable) {
            alive = self.flush(token);
        }
        if !alive {
            self.close(token);
        }
    }

    /// Reads what is available and answers every complete line. Returns
    /// false when the connection must be closed at once.
    fn read(&mut self, token: Token) -> bool {
        let Some(conn) = self.conns.get_mut(&token) else {
            return false;
        };
        if conn.eof {
            return true;
        }
        loop {
            if conn.queued() > MAX_QUEUED_OUTPUT {
                // Stop reading until the client drains its replies.
                break;
            }
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    conn.eof = true;
                    if conn.framer.pending() > 0 {
                        // A last line without newline still counts.
                        conn.framer.push(b"\n");
                    }
                    break;
                }
                Ok(n) => {
                    conn.framer.push(&self.read_buf[..n]);
                    answer_lines(
                        &mut self.broker,
                        &mut self.replies,
                        conn,
                        self.max_line,
                        self.max_name,
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!(peer = conn.peer.0, "read failed: {e}");
                    return false;
                }
            }
        }
        if conn.eof {
            answer_lines(
                &mut self.broker,
                &mut self.replies,
                conn,
                self.max_line,
                self.max_name,
            );
            // The client closed its side: its holds end now, as with an
            // invalid XPC connection. Queued replies are still written.
            self.broker.handle_disconnect(Instant::now(), conn.peer);
        }
        true
    }

    /// Writes queued output. Returns false when the connection must close.
    fn flush(&mut self, token: Token) -> bool {
        let Some(conn) = self.conns.get_mut(&token) else {
            return false;
        };
        while conn.queued() > 0 {
            match conn.stream.write(&conn.out[conn.written..]) {
                Ok(0) => return false,
                Ok(n) => conn.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!(peer = conn.peer.0, "write failed: {e}");
                    return false;
                }
            }
        }
        if conn.queued() == 0 {
            conn.out.clear();
            conn.written = 0;
            if conn.eof {
                return false;
            }
        } else if conn.written > MAX_QUEUED_OUTPUT {
            conn.out.drain(..conn.written);
            conn.written = 0;
        }
        let want = match (
            conn.eof,
            conn.queued() > 0,
            conn.queued() > MAX_QUEUED_OUTPUT,
        ) {
            (true, _, _) | (_, true, true) => Interest::WRITABLE,
            (false, true, false) => Interest::READABLE | Interest::WRITABLE,
            (false, false, _) => Interest::READABLE,
        };
        if want != conn.interest {
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, want)
            {
                debug!(peer = conn.peer.0, "reregister failed: {e}");
                return false;
            }
            // Re-registering re-arms readiness: input that arrived while
            // reading was paused is reported by the next poll.
            conn.interest = want;
        }
        true
    }

    fn close(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if !conn.eof {
                self.broker.handle_disconnect(Instant::now(), conn.peer);
            }
        }
        self.pause_accept(false);
    }
}

/// Answers every complete line buffered on `conn`.
fn answer_lines<B>(
    broker: &mut DaemonBroker<B>,
    replies: &mut ReplyCache<B::Serialization>,
    conn: &mut Conn,
    max_line: usize,
    max_name: usize,
) where
    B: Backend,
    B::Serialization: WireValue,
{
    while let Some(frame) = conn.framer.next_line() {
        let now = Instant::now();
        let (reply, acquired) = match frame {
            Frame::TooLong => (
                broker.handle_bad_request(
                    now,
                    conn.peer,
                    &format_args!("request line longer than {max_line} bytes"),
                ),
                None,
            ),
            Frame::Line(line) => {
                let parsed = match parse_common_request(line, max_name) {
                    Some(request) => Ok(request),
                    None => json::parse_request(line, max_name),
                };
                match parsed {
                    Ok(request) => {
                        let acquired = match &request {
                            Request::Acquire { network } => Some(network.clone()),
                            _ => None,
                        };
                        (broker.handle_request(now, conn.peer, request), acquired)
                    }
                    Err(e) => (broker.handle_bad_request(now, conn.peer, &e), None),
                }
            }
        };
        match (reply, acquired) {
            (Reply::Acquired { network, info }, Some(name)) => {
                write_acquired(&mut conn.out, replies, name, network, info);
            }
            (reply, _) => write_reply(&mut conn.out, reply),
        }
    }
}

/// The two keys of the common requests, borrowed from the line when they
/// hold no escapes.
#[derive(serde::Deserialize)]
struct CommonRequest<'a> {
    #[serde(borrow, default)]
    command: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    network_name: Option<Cow<'a, str>>,
}

/// Decodes a well-formed request without building a JSON map: an object
/// whose `command` and `network_name` are strings (other keys are skipped
/// unparsed) and name a valid request. Anything else (wrong types, repeated
/// keys, bad names, unknown commands, not an object) returns `None`, and the
/// caller takes the general path, which applies every decoding rule and
/// produces the exact error. Whatever this returns, the general path would
/// return too.
fn parse_common_request(line: &[u8], max_name: usize) -> Option<Request> {
    // A struct also deserializes from a JSON array; only objects qualify.
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let fields: CommonRequest<'_> = serde_json::from_str(text).ok()?;
    let name = || {
        fields
            .network_name
            .as_deref()
            .and_then(|n| NetworkName::with_limit(n, max_name).ok())
    };
    match fields.command.as_deref()? {
        "acquire" => Some(Request::Acquire { network: name()? }),
        "release" => Some(Request::Release { network: name()? }),
        "status" => Some(Request::Status),
        _ => None,
    }
}

/// Writes a successful `acquire` reply, reusing the encoded line of the
/// previous reply for the same live network.
fn write_acquired<S: WireValue>(
    out: &mut Vec<u8>,
    replies: &mut ReplyCache<S>,
    name: NetworkName,
    network: S,
    info: NetworkInfo,
) {
    if let Some(cached) = replies.get(&name)
        && cached.info == info
        && cached.network.same_network(&network)
    {
        out.extend_from_slice(&cached.line);
        return;
    }
    let start = out.len();
    let value = json::acquire_reply(network.to_wire(), Some(&info));
    if serde_json::to_writer(&mut *out, &value).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"{\"error\":7}\n");
        return;
    }
    out.push(b'\n');
    if network.same_network(&network) {
        if replies.len() >= MAX_CACHED_REPLIES {
            replies.clear();
        }
        let line = out[start..].to_vec();
        replies.insert(
            name,
            CachedReply {
                network,
                info,
                line,
            },
        );
    }
}

fn write_reply<S: WireValue>(out: &mut Vec<u8>, reply: Reply<S>) {
    let value = match reply {
        Reply::Acquired { network, info } => json::acquire_reply(network.to_wire(), Some(&info)),
        Reply::Released => {
            out.extend_from_slice(b"{}\n");
            return;
        }
        Reply::Status(report) => json::status_reply(&report),
        failed @ (Reply::Error(_) | Reply::AcquireFailed(_)) => {
            // `{"error":N}`, as `json::error_reply` encodes it.
            let _ = writeln!(out, "{{\"error\":{}}}", failed.status().code());
            return;
        }
    };
    let start = out.len();
    if serde_json::to_writer(&mut *out, &value).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"{\"error\":7}");
    }
    out.push(b'\n');
}

fn is_fd_exhaustion(errno: i32) -> bool {
    errno == nix::errno::Errno::EMFILE as i32 || errno == nix::errno::Errno::ENFILE as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick decoder agrees with the general one whenever it answers.
    #[test]
    fn common_request_parser_agrees_with_the_general_path() {
        let lines: &[&[u8]] = &[
            br#"{"command":"acquire","network_name":"shared"}"#,
            br#"  {"network_name":"host","command":"release","x":[1,{"a":2}]}"#,
            br#"{"command":"status"}"#,
            br#"{"command":"status","network_name":7}"#,
            br#"{"command":"acquire","network_name":7}"#,
            br#"{"command":"acquire"}"#,
            br#"{"command":"acquire","network_name":"a/b"}"#,
            br#"{"command":"acquire","network_name":"sh\u0061red"}"#,
            br#"{"command":"acquire","command":"release","network_name":"x"}"#,
            br#"{"command":null,"network_name":"x"}"#,
            br#"{"command":"launch","network_name":"x"}"#,
            br#"["acquire","shared"]"#,
            br#"{"command":"acquire","network_name":"shared"} trailing"#,
            b"",
            b"\xff",
        ];
        for line in lines {
            let general = json::parse_request(line, 64).ok();
            if let Some(quick) = parse_common_request(line, 64) {
                assert_eq!(Some(quick), general, "{}", String::from_utf8_lossy(line));
            }
        }
        assert!(parse_common_request(br#"["acquire","shared"]"#, 64).is_none());
        assert!(
            parse_common_request(br#"{"command":"acquire","network_name":"shared"}"#, 64).is_some()
        );
    }

    #[test]
    fn cached_acquire_reply_is_reused_only_for_the_same_network() {
        let info = NetworkInfo {
            mode: vmnet_broker_proto::Mode::Host,
            subnet: "192.168.64.0".parse().expect("address"),
            mask: "255.255.255.0".parse().expect("address"),
            ipv6_prefix: "fd00::".parse().expect("address"),
            ipv6_prefix_length: 64,
        };
        let name = NetworkName::new("host").expect("name");
        let mut cache = ReplyCache::new();
        let mut first = Vec::new();
        write_acquired(
            &mut first,
            &mut cache,
            name.clone(),
            serde_json::json!({"id": 1}),
            info.clone(),
        );
        let mut again = Vec::new();
        write_acquired(
            &mut again,
            &mut cache,
            name.clone(),
            serde_json::json!({"id": 1}),
            info.clone(),
        );
        assert_eq!(first, again);
        let mut fresh = Vec::new();
        write_acquired(
            &mut fresh,
            &mut cache,
            name,
            serde_json::json!({"id": 2}),
            info,
        );
        let v: Value = serde_json::from_slice(&fresh).expect("json");
        assert_eq!(v["network"]["id"], 2);
    }
}
