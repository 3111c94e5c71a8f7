//! The development transport: JSON lines over a Unix stream socket.
//!
//! One thread runs a readiness loop (mio) and owns the [`Driver`], like the
//! single serial queue of the XPC service: no locks, no thread hops. The
//! poll timeout is the driver's next deadline. This file only moves bytes:
//! it accepts connections, frames lines, hands them to the driver and
//! writes what the driver answers.
//!
//! Bounds, so that one client cannot grow the broker or starve others:
//!
//! - a client whose queued replies pass [`MAX_QUEUED_OUTPUT`] is not
//!   answered further (even in the middle of what it already sent) and not
//!   read until it has taken its replies;
//! - what all the connections of one user hold together is bounded too:
//!   replies by [`MAX_QUEUED_PER_USER`] (past it, none of them answers)
//!   and input not yet answered by [`MAX_INPUT_PER_USER`] (past it, none
//!   of them reads). Paused connections queue per user and are served in
//!   order when the user's totals fall, so opening many connections, each
//!   leaving a reply or a partial line behind, does not multiply the
//!   bounds per connection. While some wait, a turn ends after [`TURN`]
//!   bytes of replies, and a connection with nothing buffered may read
//!   [`TURN_READ`] bytes on its turn, so that a user's flooding
//!   connections do not stall its others;
//! - after a large release of connection state (closed connections, shrunk
//!   buffers) the tables are shrunk and free memory is given back to the
//!   system ([`RELEASE_AFTER`], [`crate::sys::release_free_memory`]);
//! - a connection counts against `--max-clients` until its descriptor is
//!   closed; after the client's end of file (seen as the end of input, or
//!   reported by the poll while its input is not read) its pending replies
//!   are written for at most [`EOF_LINGER`], then the connection is closed.
//!
//! Each request costs three system calls when the client waits for its
//! reply: the poll, one read (a read shorter than the buffer means the
//! socket is drained; with edge-triggered readiness new data brings a new
//! wake-up) and one write.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use tracing::{debug, warn};
use vmnet_broker_core::backend::Backend;
use vmnet_broker_core::broker::ClientId;
use vmnet_broker_proto::json::LineFramer;

use super::driver::{Driver, Stop, WireValue, ignored_signals};
use super::listener::Listener;
use crate::sys::peer_credentials;

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const FIRST_CONN: usize = 2;

/// Queued output above which a connection is neither answered nor read.
pub(super) const MAX_QUEUED_OUTPUT: usize = 1 << 20;

/// Input read but not yet answered, for all the connections of one user
/// together, above which none of them is read.
pub(super) const MAX_INPUT_PER_USER: usize = 8 << 20;

/// Replies queued for all the connections of one user above which none of
/// them is answered (answering turns input into replies; input alone never
/// stops it, so what was read can always be answered).
pub(super) const MAX_QUEUED_PER_USER: usize = 8 << 20;

/// What the broker holds for connections: input read but not answered,
/// and replies queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Held {
    input: usize,
    output: usize,
}

impl Held {
    fn total(self) -> usize {
        self.input + self.output
    }
}

/// How long a client that closed its sending side has to take its pending
/// replies before its connection is closed.
pub(super) const EOF_LINGER: Duration = Duration::from_secs(5);

/// Size of the read buffer (one read per wake-up at most this much).
const READ_BUF: usize = 64 * 1024;

/// Replies a connection may add in one turn while other connections of
/// its user wait: past it, it goes to the back of the user's queue, so
/// that a user's flooding connections take turns with its other ones
/// instead of stalling them (docs/reliability.md, "Fairness").
const TURN: usize = 64 * 1024;

/// What a connection with nothing buffered may read on its turn while its
/// user's input is at [`MAX_INPUT_PER_USER`]: enough for a few requests, so
/// the bound grows by at most this much per connection.
const TURN_READ: usize = 1024;

/// Bytes of connection state freed (closed connections, shrunk buffers)
/// after which free memory is given back to the system
/// ([`crate::sys::release_free_memory`]).
const RELEASE_AFTER: usize = 1 << 20;

/// How long after such a release the memory is given back: a flood that
/// ends frees its connections in a burst; one call covers them all.
const RELEASE_DELAY: Duration = Duration::from_millis(500);

struct Conn {
    stream: UnixStream,
    peer: ClientId,
    /// The user at the other end (from the peer credentials).
    uid: u32,
    /// What this connection holds, as counted in its user's total
    /// ([`Server::held_by_user`]).
    counted: Held,
    /// Paused because its user holds too much: listed in
    /// [`Server::waiting`] to be served when the user's total falls.
    waiting: bool,
    framer: LineFramer,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    written: usize,
    /// The client closed its sending side: write what is queued, then
    /// close.
    eof: bool,
    /// The driver was told of the client's end of input.
    input_ended: bool,
    /// A closing deadline is set (see [`EOF_LINGER`]).
    lingering: bool,
    /// Input may be waiting: a readiness edge came and no read since then
    /// found the socket drained.
    readable: bool,
    /// The last readiness event also reported the end of input: a short
    /// read does not mean drained, the end of file is still to be read.
    closing: bool,
    interest: Interest,
}

impl Conn {
    fn queued(&self) -> usize {
        self.out.len() - self.written
    }

    /// What the broker holds for this connection.
    fn held(&self) -> Held {
        Held {
            input: self.framer.pending(),
            output: self.queued(),
        }
    }

    /// Whether serving it could do anything: answer buffered input, or
    /// read.
    fn has_work(&self) -> bool {
        self.framer.pending() > 0 || (self.readable && !self.eof)
    }
}

/// The server: listener, connections and the driver.
pub(super) struct Server<B: Backend> {
    poll: Poll,
    listener: Listener,
    signals: CaughtSignals,
    conns: HashMap<Token, Conn>,
    /// [`Conn::held`] by user, summed over that user's connections.
    held_by_user: HashMap<u32, Held>,
    /// Connections paused because their user holds too much, by user.
    waiting: HashMap<u32, Vec<Token>>,
    /// Paused connections to serve again (their user's total fell).
    resumed: VecDeque<Token>,
    /// How many connections of each user are paused ([`Conn::waiting`]:
    /// in `waiting` or in `resumed`).
    paused: HashMap<u32, usize>,
    /// A connection from `resumed` is being served: it takes its turn
    /// even if others of its user wait.
    resuming: bool,
    next_token: usize,
    driver: Driver<B>,
    max_line: usize,
    max_clients: usize,
    read_buf: Vec<u8>,
    /// Accepting is paused because the process ran out of descriptors.
    accept_paused: bool,
    /// Reads go on until the socket would block or ends, even after a
    /// short read (see [`Server::take_in_pending`]).
    draining: bool,
    /// Half-closed connections by closing deadline (deadlines only grow,
    /// so the queue is in order; closed connections are skipped).
    lingering: VecDeque<(Instant, Token)>,
    /// Connections refused over `--max-clients`.
    refusals: Throttled,
    /// Accepts that failed for lack of descriptors.
    fd_exhaustion: Throttled,
    /// Bytes of connection state freed since memory was last given back.
    freed: usize,
    /// When free memory is to be given back (see [`RELEASE_AFTER`]).
    release_at: Option<Instant>,
}

/// How often a warning that clients can make repeat at will is logged.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// A warning that clients can make the broker repeat at any rate (by
/// opening and closing connections): logged at most once per
/// [`WARNING_INTERVAL`], with the number of times it happened since.
#[derive(Default)]
struct Throttled {
    logged_at: Option<Instant>,
    count: u64,
}

impl Throttled {
    /// Counts one more; returns the count to log, if it is time to.
    fn hit(&mut self, now: Instant) -> Option<u64> {
        self.count += 1;
        if self
            .logged_at
            .is_some_and(|t| now.saturating_duration_since(t) < WARNING_INTERVAL)
        {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// The signals the socket transport handles, caught from before the socket
/// is bound: one that arrives while the broker starts waits in the queue
/// and is handled by the loop (SIGHUP reloads, SIGTERM stops, the others
/// are logged), instead of ending the process with the socket file left
/// behind.
pub(super) struct CaughtSignals {
    signals: Signals,
    /// The signals that are only logged, with their names.
    ignored: Vec<(i32, String)>,
}

impl CaughtSignals {
    /// Installs the handlers.
    pub(super) fn install() -> io::Result<Self> {
        let signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let mut ignored = ignored_signals();
        // A signal that cannot be caught here (a debugger or valgrind may
        // keep one for itself) keeps its default action: say so, and serve.
        ignored.retain(|(signal, name)| match signals.add_signal(*signal) {
            Ok(()) => true,
            Err(e) => {
                warn!("cannot catch {name}; it keeps its default action: {e}");
                false
            }
        });
        Ok(Self { signals, ignored })
    }
}

impl<B> Server<B>
where
    B: Backend,
    B::Serialization: WireValue,
{
    /// Registers the listener and the signal handlers.
    pub(super) fn new(
        driver: Driver<B>,
        mut listener: Listener,
        mut signals: CaughtSignals,
        max_line: usize,
        max_clients: usize,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener.listener, LISTENER, Interest::READABLE)?;
        poll.registry()
            .register(&mut signals.signals, SIGNALS, Interest::READABLE)?;
        Ok(Self {
            poll,
            listener,
            signals,
            conns: HashMap::new(),
            held_by_user: HashMap::new(),
            waiting: HashMap::new(),
            resumed: VecDeque::new(),
            paused: HashMap::new(),
            resuming: false,
            next_token: FIRST_CONN,
            driver,
            max_line,
            max_clients,
            read_buf: vec![0; READ_BUF],
            accept_paused: false,
            draining: false,
            lingering: VecDeque::new(),
            refusals: Throttled::default(),
            fd_exhaustion: Throttled::default(),
            freed: 0,
            release_at: None,
        })
    }

    /// Serves until the broker is idle or a stop signal arrives with no
    /// client holding a network; then releases every network.
    pub(super) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let stop = loop {
            let deadline = [
                self.driver.next_deadline(),
                self.lingering.front().map(|(t, _)| *t),
                self.release_at,
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = if self.resumed.is_empty() {
                deadline.map(|t| t.saturating_duration_since(Instant::now()))
            } else {
                // Paused connections are ready to be served again.
                Some(Duration::ZERO)
            };
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
                    token => {
                        let closing = event.is_read_closed() || event.is_error();
                        self.conn_event(token, event.is_readable() || closing, closing);
                    }
                }
            }
            self.serve_resumed();
            // Signals are judged after this batch, and after taking in what
            // is pending, so that clients which left before the signal do
            // not count.
            let stop = if signalled { self.signals() } else { None };
            let now = Instant::now();
            self.expire_lingering(now);
            self.release_memory(now);
            self.driver.handle_timeout(now);
            if let Some(s) = self.driver.poll_stop() {
                break s;
            }
            if let Some(s) = stop {
                break s;
            }
        };
        self.driver.shutdown(stop);
        Ok(())
    }

    fn signals(&mut self) -> Option<Stop> {
        let pending: Vec<i32> = self.signals.signals.pending().collect();
        let mut stops = Vec::new();
        for sig in pending {
            match sig {
                SIGTERM => stops.push("SIGTERM"),
                SIGINT => stops.push("SIGINT"),
                SIGHUP => self.driver.handle_reload_signal(Instant::now()),
                other => {
                    let name = self
                        .signals
                        .ignored
                        .iter()
                        .find(|(s, _)| *s == other)
                        .map_or("signal", |(_, n)| n.as_str());
                    self.driver.handle_ignored_signal(name);
                }
            }
        }
        if stops.is_empty() {
            return None;
        }
        self.take_in_pending();
        let mut stop = None;
        for name in stops {
            stop = stop.or(self.driver.handle_stop_signal(name));
        }
        stop
    }

    /// Accepts the connections waiting in the backlog and reads every
    /// connection once, so that clients that already left are known.
    fn take_in_pending(&mut self) {
        self.accept();
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            // Read until the socket says it is drained or ended: a short
            // read is not enough here, since a client that sent a request
            // and then its end of file may have both waiting, and its holds
            // end only once the end of file is read.
            self.draining = true;
            self.conn_event(token, true, false);
            self.draining = false;
        }
    }

    fn accept(&mut self) {
        loop {
            let (mut stream, _) = match self.listener.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if e.raw_os_error().is_some_and(is_fd_exhaustion) {
                        if let Some(times) = self.fd_exhaustion.hit(Instant::now()) {
                            warn!(
                                times,
                                "out of file descriptors; pausing new connections until one closes"
                            );
                        }
                        self.pause_accept(true);
                    } else {
                        warn!("accept failed: {e}");
                    }
                    return;
                }
            };
            if self.conns.len() >= self.max_clients {
                // Open connections count, also those that only wait for
                // their replies to be taken.
                if let Some(times) = self.refusals.hit(Instant::now()) {
                    warn!(
                        limit = self.max_clients,
                        times, "too many connections open; refusing new ones until some close"
                    );
                }
                continue;
            }
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
            // A refusal is logged by the driver.
            if self
                .driver
                .handle_connect(Instant::now(), peer, creds)
                .is_err()
            {
                continue;
            }
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut stream, token, Interest::READABLE)
            {
                warn!("cannot watch a new connection: {e}");
                self.driver.handle_disconnect(Instant::now(), peer);
                continue;
            }
            self.conns.insert(
                token,
                Conn {
                    stream,
                    peer,
                    uid: creds.uid,
                    counted: Held::default(),
                    waiting: false,
                    framer: LineFramer::new(self.max_line),
                    out: Vec::new(),
                    written: 0,
                    eof: false,
                    input_ended: false,
                    lingering: false,
                    // Registration reports input that is already there.
                    readable: false,
                    closing: false,
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

    fn conn_event(&mut self, token: Token, input: bool, closing: bool) {
        let alive = match self.conns.get_mut(&token) {
            Some(conn) => {
                conn.readable |= input;
                conn.closing |= closing;
                self.service(token)
            }
            None => return,
        };
        if !alive {
            self.close(token);
        }
    }

    /// Answers, writes and reads as far as the bounds allow. Returns false
    /// when the connection must be closed.
    fn service(&mut self, token: Token) -> bool {
        let Some(conn) = self.conns.get_mut(&token) else {
            return false;
        };
        let driver = &mut self.driver;
        let now = Instant::now();
        // What the user's other connections hold does not change while
        // this one is served.
        let user = self
            .held_by_user
            .get(&conn.uid)
            .copied()
            .unwrap_or_default();
        let others = Held {
            input: user.input.saturating_sub(conn.counted.input),
            output: user.output.saturating_sub(conn.counted.output),
        };
        // While some of the user's connections wait for their turn, the
        // others read nothing new (they still answer what they have read,
        // which makes room), so that the waiting ones are served in order
        // rather than starved by those that keep reading their replies.
        let others_wait = self
            .paused
            .get(&conn.uid)
            .is_some_and(|&n| n > usize::from(conn.waiting));
        let behind_waiters = !self.resuming && others_wait;
        // Whether this is a turn among the user's connections (served from
        // the queue, or while others are in it): bounded to [`TURN`].
        let taking_turns = self.resuming || others_wait;
        let may_answer = |conn: &Conn| others.output + conn.queued() <= MAX_QUEUED_PER_USER;
        let input_full = |conn: &Conn| others.input + conn.framer.pending() > MAX_INPUT_PER_USER;
        // On its turn, a connection with nothing buffered may read a
        // little even when its user's input is at the bound: otherwise the
        // flooding connections, which hold their requests, would keep
        // taking every byte of room the answers free.
        let may_read = |conn: &Conn| {
            !behind_waiters
                && may_answer(conn)
                && (!input_full(conn) || (taking_turns && conn.framer.pending() == 0))
        };
        let mut paused_for_user = false;
        let mut shrunk = 0;
        let mut answered = 0;
        let turn_over = |answered: usize| taking_turns && answered >= TURN;
        let alive = loop {
            // Answer what is buffered, up to the output bounds.
            let mut more = false;
            while conn.queued() <= MAX_QUEUED_OUTPUT && may_answer(conn) && !turn_over(answered) {
                let before = conn.out.len();
                match conn.framer.next_line() {
                    Some(frame) => driver.handle_line(now, conn.peer, frame, &mut conn.out),
                    None => break,
                }
                answered += conn.out.len() - before;
                more = conn.queued() > MAX_QUEUED_OUTPUT || !may_answer(conn);
            }
            if conn.queued() > 0 && !write_out(conn, &mut shrunk) {
                break false;
            }
            if turn_over(answered) {
                // Its turn is over: the back of the user's queue.
                paused_for_user = conn.has_work();
                break true;
            }
            if conn.queued() > MAX_QUEUED_OUTPUT {
                // Wait until the client takes its replies.
                break true;
            }
            if !may_answer(conn) {
                // Wait until the user's connections hold less, or for this
                // one's turn.
                paused_for_user = conn.has_work();
                break true;
            }
            if more {
                // Stopped at the bound, then the socket took enough.
                continue;
            }
            if conn.eof || !conn.readable {
                break true;
            }
            if !may_read(conn) {
                paused_for_user = true;
                break true;
            }
            let want = if input_full(conn) {
                TURN_READ
            } else {
                self.read_buf.len()
            };
            match conn.stream.read(&mut self.read_buf[..want]) {
                Ok(0) => {
                    conn.eof = true;
                    conn.readable = false;
                    if conn.framer.pending() > 0 {
                        // A last line without newline still counts.
                        conn.framer.push(b"\n");
                    }
                }
                Ok(n) => {
                    if n < want && !conn.closing && !self.draining {
                        conn.readable = false;
                    }
                    conn.framer.push(&self.read_buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.readable = false;
                    break true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!(client = conn.peer.0, "read failed: {e}");
                    break false;
                }
            }
        };
        // Keep the user's total exact (a connection about to be closed is
        // taken out of it by `close`).
        let held = conn.held();
        let uid = conn.uid;
        let was = conn.counted;
        let fell = held.output < was.output || held.total() < was.total();
        if held != was {
            let total = self.held_by_user.entry(uid).or_default();
            total.input = total.input.saturating_sub(was.input) + held.input;
            total.output = total.output.saturating_sub(was.output) + held.output;
            conn.counted = held;
        }
        if paused_for_user && !conn.waiting {
            conn.waiting = true;
            self.waiting.entry(uid).or_default().push(token);
            *self.paused.entry(uid).or_default() += 1;
        }
        if shrunk > 0 {
            self.note_freed(shrunk);
        }
        if !alive {
            return false;
        }
        if fell || paused_for_user {
            // Also when this one only queued behind the waiting ones while
            // the user is within the bound: their turn is now.
            self.resume_waiting(uid);
        }
        let Some(conn) = self.conns.get_mut(&token) else {
            return false;
        };
        let driver = &mut self.driver;
        if conn.eof && !conn.input_ended {
            // The client closed its side: its holds end now, as with an
            // invalid XPC connection. Queued replies are still written, for
            // a while, and the connection counts until it is closed.
            conn.input_ended = true;
            driver.handle_end_of_input(now, conn.peer);
        }
        if conn.eof && conn.held().total() == 0 {
            // Everything it asked for is answered and taken (requests still
            // waiting for the user's bound get the lingering time below).
            return false;
        }
        if (conn.eof || conn.closing) && !conn.lingering {
            // The client sent its end of file (read or not, if it stopped
            // being read at the output bound): it has a bounded time to
            // take its replies.
            conn.lingering = true;
            self.lingering.push_back((now + EOF_LINGER, token));
        }
        // While over the output bound, input stays registered (but is not
        // read) so that the client's end of file is still noticed.
        let want = if conn.eof {
            Interest::WRITABLE
        } else if conn.queued() > 0 {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if want != conn.interest {
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, want)
            {
                debug!(client = conn.peer.0, "reregister failed: {e}");
                return false;
            }
            // Re-registering re-arms readiness: input that arrived while
            // reading was paused is reported by the next poll.
            conn.interest = want;
        }
        true
    }

    /// Closes half-closed connections whose replies were not taken in time.
    fn expire_lingering(&mut self, now: Instant) {
        while let Some(&(deadline, token)) = self.lingering.front() {
            if deadline > now {
                break;
            }
            self.lingering.pop_front();
            if let Some(conn) = self.conns.get(&token) {
                debug!(
                    client = conn.peer.0,
                    unsent = conn.queued(),
                    "closing a half-closed connection that did not take its replies"
                );
                self.close(token);
            }
        }
    }

    /// One connection of `uid` is no longer paused.
    fn unpause(&mut self, uid: u32) {
        if let Some(n) = self.paused.get_mut(&uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.paused.remove(&uid);
            }
        }
    }

    /// Counts `bytes` of connection state as freed; past [`RELEASE_AFTER`],
    /// schedules giving free memory back.
    fn note_freed(&mut self, bytes: usize) {
        self.freed = self.freed.saturating_add(bytes);
        if self.freed >= RELEASE_AFTER && self.release_at.is_none() {
            self.release_at = Some(Instant::now() + RELEASE_DELAY);
        }
    }

    /// Once due, shrinks the tables sized for the connections that are
    /// gone and gives the allocator's free memory back to the system.
    fn release_memory(&mut self, now: Instant) {
        if self.release_at.is_none_or(|t| t > now) {
            return;
        }
        self.release_at = None;
        self.freed = 0;
        self.conns.shrink_to_fit();
        self.held_by_user.shrink_to_fit();
        self.waiting.shrink_to_fit();
        self.resumed.shrink_to_fit();
        self.paused.shrink_to_fit();
        self.lingering.shrink_to_fit();
        if crate::sys::release_free_memory() {
            debug!(
                connections = self.conns.len(),
                "gave free memory back to the system"
            );
        }
    }

    /// Queues the paused connections of `uid` to be served again, once the
    /// user's total is within the bound.
    fn resume_waiting(&mut self, uid: u32) {
        if self.user_output_full(uid) {
            return;
        }
        if let Some(tokens) = self.waiting.remove(&uid) {
            self.resumed.extend(tokens);
        }
    }

    /// Whether the replies queued for `uid` are at the bound: none of its
    /// connections may answer.
    fn user_output_full(&self, uid: u32) -> bool {
        self.held_by_user
            .get(&uid)
            .is_some_and(|h| h.output > MAX_QUEUED_PER_USER)
    }

    /// Serves the connections queued by [`Server::resume_waiting`], in
    /// order (those queued meanwhile wait for the next turn of the loop).
    /// Once its user is at the bound again, a connection keeps its place at
    /// the head of the user's queue instead of going behind those that
    /// were just served: every one gets its turn.
    fn serve_resumed(&mut self) {
        if self.resumed.is_empty() {
            return;
        }
        let mut keep: HashMap<u32, Vec<Token>> = HashMap::new();
        for _ in 0..self.resumed.len() {
            let Some(token) = self.resumed.pop_front() else {
                break;
            };
            let uid = match self.conns.get_mut(&token) {
                Some(conn) => conn.uid,
                None => continue,
            };
            if self.user_output_full(uid) {
                keep.entry(uid).or_default().push(token);
                continue;
            }
            if let Some(conn) = self.conns.get_mut(&token) {
                conn.waiting = false;
                self.unpause(uid);
            }
            self.resuming = true;
            self.conn_event(token, false, false);
            self.resuming = false;
        }
        for (uid, mut tokens) in keep {
            let behind = self.waiting.remove(&uid).unwrap_or_default();
            tokens.extend(behind);
            self.waiting.insert(uid, tokens);
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            if let Some(total) = self.held_by_user.get_mut(&conn.uid) {
                total.input = total.input.saturating_sub(conn.counted.input);
                total.output = total.output.saturating_sub(conn.counted.output);
                if total.total() == 0 {
                    self.held_by_user.remove(&conn.uid);
                }
            }
            if conn.waiting {
                if let Some(tokens) = self.waiting.get_mut(&conn.uid) {
                    tokens.retain(|t| *t != token);
                }
                self.unpause(conn.uid);
            }
            if conn.counted.total() > 0 {
                self.resume_waiting(conn.uid);
            }
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.driver.handle_disconnect(Instant::now(), conn.peer);
            // Its reply buffer (queued replies included) and unread input.
            self.note_freed(
                std::mem::size_of::<Conn>() + conn.out.capacity() + conn.framer.pending(),
            );
        }
        self.pause_accept(false);
    }
}

/// Writes queued output until the socket is full, adding to `shrunk` the
/// bytes of buffer it frees. Returns false when the connection must close.
fn write_out(conn: &mut Conn, shrunk: &mut usize) -> bool {
    while conn.queued() > 0 {
        match conn.stream.write(&conn.out[conn.written..]) {
            Ok(0) => return false,
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                debug!(client = conn.peer.0, "write failed: {e}");
                return false;
            }
        }
    }
    if conn.queued() == 0 {
        conn.out.clear();
        conn.written = 0;
        // A client that once let a megabyte of replies pile up does not
        // keep the buffer for the rest of its connection.
        let capacity = conn.out.capacity();
        conn.out.shrink_to(READ_BUF);
        *shrunk += capacity - conn.out.capacity();
    } else if conn.written > MAX_QUEUED_OUTPUT {
        conn.out.drain(..conn.written);
        conn.written = 0;
    }
    true
}

fn is_fd_exhaustion(errno: i32) -> bool {
    errno == nix::errno::Errno::EMFILE as i32 || errno == nix::errno::Errno::ENFILE as i32
}
