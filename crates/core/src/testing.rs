//! Test support, compiled only with the `test-util` feature (and in this
//! crate's own unit tests): one fake-clock driver for the [`Broker`].
//!
//! The core's unit tests, its property test and model check, the fuzz
//! targets and the benchmarks all drive a broker the same way a real driver
//! does (an input, then drain the events, then wait for the input or the
//! next deadline), only with a clock they move by hand. [`Harness`] is that
//! loop, written once:
//!
//! - inputs ([`Harness::connect`], [`Harness::request`],
//!   [`Harness::disconnect`]...) are given the fake clock's `now`;
//! - after each input, [`Harness::settle`] drains the broker's events into
//!   [`Harness::events`] and, unless turned off, checks
//!   [`Broker::check_invariants`] (a violation panics, naming it);
//! - [`Harness::step`] fires the deadline due at `now`, if any;
//!   [`Harness::fire_next`] moves the clock to the next deadline and fires
//!   it; [`Harness::advance`] moves the clock by a duration, firing every
//!   deadline on the way at its own instant;
//! - [`Harness::drive`] fires deadlines until none is left (the broker is
//!   quiet), and [`Harness::drive_bounded`] gives up after a number of steps,
//!   so a broker that keeps re-arming a timer fails the test instead of
//!   hanging it.
//!
//! Nothing here is meant for production drivers: invariant checks visit
//! every client and network.

use std::time::{Duration, Instant};

use vmnet_broker_proto::Request;

use crate::backend::Backend;
use crate::backend::sim::SimBackend;
use crate::broker::{
    AccountLookup, Broker, BrokerOptions, ClientCredentials, ClientId, ConnectError, DaemonInfo,
    Event, NoAccounts, Reply,
};
use crate::config::ConfigSource;

/// How many deadlines [`Harness::drive`] fires before it gives up. A broker
/// has at most one deadline per live network plus the idle exit, so a
/// quiet broker is reached well before this.
pub const DRIVE_LIMIT: usize = 10_000;

/// A broker and the fake clock that drives it. See the [module
/// documentation](self).
#[derive(Debug)]
pub struct Harness<B: Backend, C: ConfigSource, A: AccountLookup = NoAccounts> {
    /// The broker under test. Call it directly for what the driver does not
    /// wrap (timed regions of benchmarks, getters), then [`Harness::settle`].
    pub broker: Broker<B, C, A>,
    /// The fake clock: the instant given to every input.
    pub now: Instant,
    /// Events drained from the broker and not taken yet.
    pub events: Vec<Event>,
    /// Whether [`Harness::settle`] checks the broker's invariants (default
    /// on; turn it off where the checks would cost too much, as in the
    /// setup of a benchmark with thousands of clients).
    pub check: bool,
}

impl<C: ConfigSource, A: AccountLookup> Harness<SimBackend, C, A> {
    /// A broker on the simulated backend (seeded with `seed`), started now.
    pub fn sim(options: BrokerOptions, config: C, accounts: A, seed: u64) -> Self {
        let now = Instant::now();
        let daemon = DaemonInfo {
            version: "test".into(),
            pid: 42,
            ..DaemonInfo::default()
        };
        let broker = Broker::new(
            options,
            SimBackend::new(seed),
            config,
            accounts,
            daemon,
            now,
        );
        Self::new(broker, now)
    }
}

impl<B: Backend, C: ConfigSource, A: AccountLookup> Harness<B, C, A> {
    /// Drives `broker`, whose clock reads `now`.
    pub fn new(broker: Broker<B, C, A>, now: Instant) -> Self {
        Self {
            broker,
            now,
            events: Vec::new(),
            check: true,
        }
    }

    /// A connection from the client `id`.
    pub fn connect(&mut self, id: u64, creds: ClientCredentials) -> Result<(), ConnectError> {
        let r = self.broker.handle_connect(self.now, ClientId(id), creds);
        self.settle();
        r
    }

    /// A request from the client `id`.
    pub fn request(&mut self, id: u64, request: Request) -> Reply<B::Serialization> {
        let r = self.broker.handle_request(self.now, ClientId(id), request);
        self.settle();
        r
    }

    /// A request from the client `id` that could not be decoded.
    pub fn bad_request(&mut self, id: u64, reason: &str) -> Reply<B::Serialization> {
        let r = self
            .broker
            .handle_bad_request(self.now, ClientId(id), &reason);
        self.settle();
        r
    }

    /// The client `id` is gone.
    pub fn disconnect(&mut self, id: u64) {
        self.broker.handle_disconnect(self.now, ClientId(id));
        self.settle();
    }

    /// Shuts the broker down; returns the number of networks destroyed.
    pub fn shutdown(&mut self) -> usize {
        let n = self.broker.shutdown(self.now);
        self.settle();
        n
    }

    /// Drains the broker's events into [`Harness::events`] and checks its
    /// invariants (if [`Harness::check`] is on).
    ///
    /// # Panics
    ///
    /// When an invariant is broken, with the broken invariant's description.
    pub fn settle(&mut self) {
        while let Some(e) = self.broker.poll_event() {
            self.events.push(e);
        }
        if self.check
            && let Err(e) = self.broker.check_invariants()
        {
            panic!("invariant broken: {e}");
        }
    }

    /// The events drained so far; clears them.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Fires the broker's deadline if one is due at `now` (the clock does
    /// not move). Returns whether one was due.
    pub fn step(&mut self) -> bool {
        match self.broker.poll_timeout() {
            Some(t) if t <= self.now => {
                self.broker.handle_timeout(self.now);
                self.settle();
                true
            }
            _ => false,
        }
    }

    /// Moves the clock to the next deadline (never backwards) and fires it.
    /// Returns the deadline, or `None` when the broker has none.
    pub fn fire_next(&mut self) -> Option<Instant> {
        let t = self.broker.poll_timeout()?;
        self.now = self.now.max(t);
        self.broker.handle_timeout(self.now);
        self.settle();
        Some(t)
    }

    /// Moves the clock forward by `d`, firing every deadline on the way at
    /// its own instant (as a driver would), then the clock's new time.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(t) = self.broker.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.broker.handle_timeout(self.now);
            self.settle();
        }
        self.now = target;
        self.broker.handle_timeout(self.now);
        self.settle();
    }

    /// Fires deadlines, moving the clock to each, until the broker has none
    /// left. Returns the number fired.
    ///
    /// # Panics
    ///
    /// After [`DRIVE_LIMIT`] deadlines (see [`Harness::drive_bounded`]).
    pub fn drive(&mut self) -> usize {
        self.drive_bounded(DRIVE_LIMIT)
    }

    /// Like [`Harness::drive`], giving up after `max` deadlines.
    ///
    /// # Panics
    ///
    /// When the broker still has a deadline after `max` were fired: it
    /// never becomes quiet.
    pub fn drive_bounded(&mut self, max: usize) -> usize {
        for fired in 0..max {
            if self.fire_next().is_none() {
                return fired;
            }
        }
        assert!(
            self.broker.poll_timeout().is_none(),
            "the broker is not quiet after {max} deadlines"
        );
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StaticConfig;

    fn driver() -> Harness<SimBackend, StaticConfig> {
        let options = BrokerOptions {
            network_idle_timeout: Duration::from_secs(10),
            exit_idle_timeout: Some(Duration::from_secs(15)),
            ..BrokerOptions::default()
        };
        Harness::sim(options, StaticConfig::new(), NoAccounts, 1)
    }

    #[test]
    fn drive_reaches_quiet_and_fires_each_deadline_once() {
        let mut d = driver();
        let creds = ClientCredentials {
            pid: 1,
            uid: 501,
            gid: 20,
        };
        let start = d.now;
        d.connect(1, creds).unwrap();
        let network = vmnet_broker_proto::NetworkName::new("shared").unwrap();
        assert!(
            d.request(1, Request::Acquire { network })
                .status()
                .is_success()
        );
        d.disconnect(1);
        // The network's removal (10 s) and the idle exit (15 s).
        assert_eq!(d.drive(), 2);
        assert_eq!(d.now, start + Duration::from_secs(15));
        assert_eq!(d.broker.network_count(), 0);
        assert!(d.take_events().contains(&Event::IdleExit));
        assert_eq!(d.drive(), 0);
        assert!(!d.step());
    }

    #[test]
    #[should_panic(expected = "not quiet after 1 deadlines")]
    fn drive_bounded_fails_when_the_broker_stays_busy() {
        let mut d = driver();
        let creds = ClientCredentials {
            pid: 1,
            uid: 501,
            gid: 20,
        };
        d.connect(1, creds).unwrap();
        let network = vmnet_broker_proto::NetworkName::new("shared").unwrap();
        let _ = d.request(1, Request::Acquire { network });
        d.disconnect(1);
        d.drive_bounded(1);
    }
}
