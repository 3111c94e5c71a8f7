//! The transport-independent half of serving: everything between "a client
//! connected / sent this / left / a signal came / time passed" and "send
//! this / stop now".
//!
//! Both transports (the development socket in `socket.rs`, the Mach service
//! in `xpc.rs`) only move bytes or XPC objects and report what happened to
//! the [`Driver`], which owns the broker and applies the policies that must
//! not differ between them:
//!
//! - requests are decoded with the protocol's rules and answered by the
//!   broker (a `status` reply lists at most
//!   [`MAX_STATUS_CLIENTS`](vmnet_broker_core::broker::MAX_STATUS_CLIENTS)
//!   clients);
//! - invalid requests are answered and counted by the broker, which logs
//!   them within its limit per user;
//! - SIGTERM and SIGINT stop the broker only when no client holds a network
//!   (connections that hold nothing, such as a `status` query or an
//!   installer's probe, do not keep it running); SIGHUP reads the
//!   configuration again; other signals whose default action would end the
//!   process are logged and ignored;
//! - broker events keep the cache of encoded `acquire` replies exact and
//!   report the idle exit;
//! - every way out releases every network first.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::Instant;

use serde_json::Value;
use tracing::{info, warn};
use vmnet_broker_core::backend::Backend;
use vmnet_broker_core::broker::{ClientCredentials, ClientId, ConnectError, Event, Reply};
use vmnet_broker_proto::json::{self, Frame};
use vmnet_broker_proto::{NetworkName, Request};

use super::DaemonBroker;

/// How a backend's serialization is written on the development transport.
pub(crate) trait WireValue {
    /// The JSON form of the serialization.
    fn to_wire(&self) -> Cow<'_, Value>;
}

impl WireValue for Value {
    fn to_wire(&self) -> Cow<'_, Value> {
        Cow::Borrowed(self)
    }
}

/// Why the broker stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// No client for the exit delay.
    Idle,
    /// SIGTERM or SIGINT with no client holding a network.
    Signal(&'static str),
}

/// Signals whose default action ends the process (with or without a core
/// file) and which the broker logs and ignores, with their names (SIGTERM
/// and SIGINT are judged by [`Driver::handle_stop_signal`]; SIGHUP, the
/// usual "reload" signal, goes to [`Driver::handle_reload_signal`]).
///
/// Not here: SIGPIPE, which the Rust runtime ignores already (a write to a
/// closed socket fails with EPIPE instead); SIGKILL and SIGSTOP, which
/// cannot be caught; and the signals of a fault in the process itself
/// (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT), which must end it.
pub(crate) fn ignored_signals() -> Vec<(i32, String)> {
    use nix::sys::signal::Signal;
    let mut named = vec![
        Signal::SIGQUIT,
        Signal::SIGTRAP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
        Signal::SIGVTALRM,
        Signal::SIGPROF,
        Signal::SIGIO,
        Signal::SIGSYS,
        Signal::SIGXCPU,
        Signal::SIGXFSZ,
    ];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    named.extend([Signal::SIGPWR, Signal::SIGSTKFLT]);
    #[cfg(target_os = "macos")]
    named.push(Signal::SIGEMT);
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "android")),
        allow(unused_mut, reason = "real-time signals exist on Linux only")
    )]
    let mut signals: Vec<(i32, String)> = named
        .into_iter()
        .map(|s| (s as i32, s.as_str().to_owned()))
        .collect();
    // Real-time signals (Linux): their default action ends the process too.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let (min, max) = (nix::libc::SIGRTMIN(), nix::libc::SIGRTMAX());
        signals.extend((min..=max).map(|n| (n, format!("SIGRTMIN+{}", n - min))));
    }
    signals
}

/// The driver: the broker plus the policies both transports share.
pub(crate) struct Driver<B: Backend> {
    broker: DaemonBroker<B>,
    max_line: usize,
    max_name: usize,
    /// Encoded `acquire` reply lines by network, valid from the first
    /// reply for a live network until the broker reports it removed.
    replies: HashMap<NetworkName, Vec<u8>>,
    idle_exit: bool,
}

impl<B: Backend> fmt::Debug for Driver<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("broker", &self.broker)
            .field("cached_replies", &self.replies.len())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Driver<B> {
    /// A driver around `broker`. `max_line` is the longest request line of
    /// the development transport, `max_name` the longest network name.
    pub(crate) fn new(broker: DaemonBroker<B>, max_line: usize, max_name: usize) -> Self {
        Self {
            broker,
            max_line,
            max_name,
            replies: HashMap::new(),
            idle_exit: false,
        }
    }

    /// The longest network name accepted (the XPC transport decodes
    /// requests itself).
    #[cfg(any(target_os = "macos", feature = "fake-apple"))]
    pub(crate) fn max_name(&self) -> usize {
        self.max_name
    }

    /// Connected clients (holding networks or not): the XPC transport
    /// holds a transaction while there are any.
    #[cfg(any(target_os = "macos", feature = "fake-apple"))]
    pub(crate) fn client_count(&self) -> usize {
        self.broker.client_count()
    }

    /// The broker (read only).
    #[cfg(test)]
    pub(crate) fn broker(&self) -> &DaemonBroker<B> {
        &self.broker
    }

    /// A new client connection.
    ///
    /// # Errors
    ///
    /// The broker's refusal (too many clients); the transport closes the
    /// connection.
    pub(crate) fn handle_connect(
        &mut self,
        now: Instant,
        client: ClientId,
        creds: ClientCredentials,
    ) -> Result<(), ConnectError> {
        // The broker logs a refusal (within its limit per user).
        self.broker.handle_connect(now, client, creds)
    }

    /// The client closed its sending side: its holds end, but it stays
    /// connected (and counted) until [`Self::handle_disconnect`].
    pub(crate) fn handle_end_of_input(&mut self, now: Instant, client: ClientId) {
        self.broker.handle_end_of_input(now, client);
        self.pump();
    }

    /// The client's connection is gone: its holds end.
    pub(crate) fn handle_disconnect(&mut self, now: Instant, client: ClientId) {
        self.broker.handle_disconnect(now, client);
        self.pump();
    }

    /// A decoded request, or why it could not be decoded. Returns the reply
    /// to send.
    pub(crate) fn handle_request<E: fmt::Display>(
        &mut self,
        now: Instant,
        client: ClientId,
        request: Result<Request, E>,
    ) -> Reply<B::Serialization> {
        let reply = match request {
            Ok(request) => self.broker.handle_request(now, client, request),
            // The broker counts it and logs it, within its limit per user.
            Err(e) => self.broker.handle_bad_request(now, client, &e),
        };
        self.pump();
        reply
    }

    /// Answers one framed line of the development transport, appending the
    /// reply line to `out`.
    pub(crate) fn handle_line(
        &mut self,
        now: Instant,
        client: ClientId,
        frame: Frame<'_>,
        out: &mut Vec<u8>,
    ) where
        B::Serialization: WireValue,
    {
        // The reason is formatted only if it is logged.
        let request = match frame {
            Frame::TooLong => Err(BadLine::TooLong(self.max_line)),
            Frame::Line(line) => json::parse_request(line, self.max_name).map_err(BadLine::Parse),
        };
        let acquired = match &request {
            Ok(Request::Acquire { network }) => Some(network.clone()),
            _ => None,
        };
        match self.handle_request(now, client, request) {
            Reply::Acquired { network, info } => {
                if let Some(line) = acquired.as_ref().and_then(|n| self.replies.get(n)) {
                    out.extend_from_slice(line);
                } else {
                    let start = out.len();
                    json::write_acquired(out, &network.to_wire(), &info);
                    if let Some(name) = acquired {
                        self.replies.insert(name, out[start..].to_vec());
                    }
                }
            }
            Reply::Released => json::write_released(out),
            Reply::Status(report) => json::write_status(out, &report),
            reply @ (Reply::Error(_) | Reply::AcquireFailed(_)) => {
                json::write_error(out, reply.status());
            }
        }
    }

    /// SIGTERM or SIGINT: stop unless some client holds a network. The
    /// transport reports it after it has taken in the connections and
    /// disconnections already pending, so that clients which left before
    /// the signal do not count.
    pub(crate) fn handle_stop_signal(&mut self, name: &'static str) -> Option<Stop> {
        let holding = self.clients_holding_networks();
        if holding > 0 {
            warn!(
                clients = holding,
                connected = self.broker.client_count(),
                networks = self.broker.network_count(),
                "{name} received while clients are connected and hold networks; ignoring it so running VMs keep their networks"
            );
            None
        } else {
            Some(Stop::Signal(name))
        }
    }

    /// SIGHUP: reads the configuration again.
    pub(crate) fn handle_reload_signal(&mut self, now: Instant) {
        info!("SIGHUP received; reading the configuration again");
        self.reload(now);
    }

    /// A signal from [`ignored_signals`]: logged and ignored.
    pub(crate) fn handle_ignored_signal(&mut self, name: &str) {
        info!("{name} received; ignoring it");
    }

    /// Reads the whole configuration again: persistent networks start or
    /// stop, changed networks are replaced when idle; logs a summary.
    pub(crate) fn reload(&mut self, now: Instant) {
        let summary = self.broker.reload(now);
        info!("configuration read: {summary}");
        self.pump();
    }

    /// Time has passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.broker.handle_timeout(now);
        self.pump();
    }

    /// When [`Self::handle_timeout`] has work next.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.broker.poll_timeout()
    }

    /// Whether the broker asked to exit (no client for the exit delay).
    pub(crate) fn poll_stop(&mut self) -> Option<Stop> {
        self.pump();
        std::mem::take(&mut self.idle_exit).then_some(Stop::Idle)
    }

    /// Connected clients that hold at least one network.
    pub(crate) fn clients_holding_networks(&self) -> usize {
        self.broker.holding_client_count()
    }

    /// Logs why the broker stops and releases every network.
    pub(crate) fn shutdown(&mut self, why: Stop) {
        match why {
            Stop::Idle => info!("no clients for the idle delay; exiting"),
            Stop::Signal(name) => info!("{name} with no clients holding networks; exiting"),
        }
        self.release_all();
    }

    /// Releases every network (also on an error exit).
    pub(crate) fn release_all(&mut self) {
        let released = self.broker.shutdown(Instant::now());
        self.pump();
        info!(networks = released, "all networks released; goodbye");
    }

    /// Takes the broker's events: keeps the reply cache exact and notes the
    /// idle exit.
    fn pump(&mut self) {
        while let Some(event) = self.broker.poll_event() {
            match event {
                Event::NetworkCreated { name, .. } | Event::NetworkRemoved { name, .. } => {
                    self.replies.remove(&name);
                }
                Event::IdleExit => self.idle_exit = true,
            }
        }
    }
}

/// Why a line of the development transport is not a request.
enum BadLine {
    /// Longer than the limit (bytes).
    TooLong(usize),
    /// Not a valid request.
    Parse(json::LineError),
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(limit) => write!(f, "request line longer than {limit} bytes"),
            Self::Parse(e) => fmt::Display::fmt(e, f),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use clap::Parser;
    use vmnet_broker_core::backend::sim::SimBackend;

    use super::*;
    use crate::cli::{Cli, Command};

    fn driver(dir: &std::path::Path, extra: &[&str]) -> Driver<SimBackend> {
        let mut argv = vec![
            "vmnet-broker",
            "serve",
            "--backend",
            "simulated",
            "--config-dir",
            dir.to_str().unwrap(),
        ];
        argv.extend_from_slice(extra);
        let Some(Command::Serve(args)) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not serve");
        };
        crate::serve::build_driver(&args, SimBackend::new(7))
    }

    fn creds() -> ClientCredentials {
        ClientCredentials {
            pid: 1,
            uid: 1000,
            gid: 1000,
        }
    }

    fn line(d: &mut Driver<SimBackend>, now: Instant, client: u64, text: &str) -> Value {
        let mut out = Vec::new();
        d.handle_line(
            now,
            ClientId(client),
            Frame::Line(text.as_bytes()),
            &mut out,
        );
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).unwrap()
    }

    const ACQUIRE: &str = r#"{"command":"acquire","network_name":"shared"}"#;

    #[test]
    fn a_removed_network_is_never_answered_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = driver(dir.path(), &["--network-idle-timeout", "1"]);
        let t0 = Instant::now();
        d.handle_connect(t0, ClientId(1), creds()).unwrap();
        d.handle_connect(t0, ClientId(2), creds()).unwrap();
        let first = line(&mut d, t0, 1, ACQUIRE);
        assert_eq!(line(&mut d, t0, 2, ACQUIRE), first);
        // Both leave; the network is removed after its idle delay.
        d.handle_disconnect(t0, ClientId(1));
        d.handle_disconnect(t0, ClientId(2));
        d.handle_timeout(t0 + Duration::from_secs(2));
        assert_eq!(d.broker().network_count(), 0);
        // A new acquire creates a new network and gets its own reply.
        let t1 = t0 + Duration::from_secs(3);
        d.handle_connect(t1, ClientId(3), creds()).unwrap();
        let again = line(&mut d, t1, 3, ACQUIRE);
        let Reply::Acquired { network, .. } = d.handle_request(
            t1,
            ClientId(3),
            Ok::<_, String>(Request::Acquire {
                network: NetworkName::new("shared").unwrap(),
            }),
        ) else {
            panic!("acquire failed");
        };
        assert_eq!(again["network"], network);
        assert_ne!(again["network"], first["network"]);
    }

    #[test]
    fn sigterm_stops_unless_a_client_holds_a_network() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = driver(dir.path(), &[]);
        let t = Instant::now();
        d.handle_connect(t, ClientId(1), creds()).unwrap();
        assert!(line(&mut d, t, 1, r#"{"command":"status"}"#)["status"].is_object());
        // Connected, holding nothing: stop.
        assert_eq!(
            d.handle_stop_signal("SIGTERM"),
            Some(Stop::Signal("SIGTERM"))
        );
        d.handle_connect(t, ClientId(2), creds()).unwrap();
        assert!(line(&mut d, t, 2, ACQUIRE)["network"].is_object());
        assert_eq!(d.clients_holding_networks(), 1);
        assert_eq!(d.handle_stop_signal("SIGTERM"), None);
        d.handle_disconnect(t, ClientId(2));
        assert_eq!(d.handle_stop_signal("SIGINT"), Some(Stop::Signal("SIGINT")));
    }

    #[test]
    fn every_invalid_request_is_answered_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = driver(dir.path(), &[]);
        let t = Instant::now();
        d.handle_connect(t, ClientId(1), creds()).unwrap();
        for i in 0..100u64 {
            let now = t + Duration::from_secs(i);
            assert_eq!(line(&mut d, now, 1, "{}"), serde_json::json!({"error": 4}));
        }
        let report = d.broker().status(t, None);
        assert_eq!(report.counters.failures.get("invalid_request"), Some(&100));
    }
}
