//! Dispatch sources for the daemon's event loop (macOS only): SIGTERM and
//! SIGINT delivered as events, and a re-armable one-shot timer.
//!
//! The daemon's macOS driver runs everything on one serial queue: the XPC
//! listener ([`crate::xpc::XpcListener`]), these signal sources, and one
//! [`OneShotTimer`] re-armed after every event to the core's next deadline.
//! Then `dispatch2::dispatch_main()` never returns.
//!
//! Type-checked for macOS; run on Linux against the fakes of crates/fake-apple (docs/macos-fakes.md); not run on macOS by us.

use std::ffi::c_int;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use block2::RcBlock;
use dispatch2::{DispatchObject, DispatchQueue, DispatchRetained, DispatchSource, DispatchTime};

use crate::xpc::no_unwind;

/// Timer slack granted to the system (`leeway` of
/// `dispatch_source_set_timer`): the timer may fire up to this much late.
pub const TIMER_LEEWAY: Duration = Duration::from_millis(50);

/// Could not set up a source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// `signal(sig, SIG_IGN)` failed.
    #[error("cannot ignore signal {0} before watching it: {1}")]
    Signal(c_int, String),
}

type Callback = Arc<Mutex<Box<dyn FnMut() + Send>>>;

/// Installs `callback` as the event handler of `source`, panic-safe.
fn set_handler(source: &DispatchSource, what: &'static str, callback: Callback) {
    let block = RcBlock::new(move || {
        no_unwind(what, || {
            let mut f = callback.lock().unwrap_or_else(PoisonError::into_inner);
            (f)();
        });
    });
    // SAFETY: a live, not yet activated source; libdispatch copies the
    // block (Block_copy), so our RcBlock may be dropped after the call
    // (dispatch2 0.3.1 docs for `set_event_handler_with_block`; see
    // docs/macos-sources.md). The closure is 'static and Send-only state behind a
    // mutex, so running it on any dispatch thread is sound.
    unsafe { source.set_event_handler_with_block(RcBlock::as_ptr(&block)) };
}

/// A signal delivered as an event on a queue.
///
/// Dispatch signal sources do not replace the signal's disposition: the
/// signal is first set to be ignored (`signal(sig, SIG_IGN)`), otherwise
/// its default action (terminate) would still happen. Dropping the value
/// cancels the source; the signal stays ignored.
#[derive(Debug)]
pub struct SignalSource {
    source: DispatchRetained<DispatchSource>,
}

impl SignalSource {
    /// Ignores `signal` and calls `handler` on `queue` each time it
    /// arrives.
    ///
    /// # Errors
    ///
    /// [`DispatchError::Signal`] if the signal cannot be ignored (an
    /// invalid number, or `SIGKILL`/`SIGSTOP`).
    pub fn new<F>(signal: c_int, queue: &DispatchQueue, handler: F) -> Result<Self, DispatchError>
    where
        F: FnMut() + Send + 'static,
    {
        // SAFETY: setting a disposition to SIG_IGN runs no code of ours and
        // touches no Rust state; signal(3) reports failure with SIG_ERR.
        let previous = unsafe { libc::signal(signal, libc::SIG_IGN) };
        if previous == libc::SIG_ERR {
            return Err(DispatchError::Signal(
                signal,
                std::io::Error::last_os_error().to_string(),
            ));
        }
        let kind = (&raw const dispatch2::_dispatch_source_type_signal).cast_mut();
        let handle = usize::try_from(signal)
            .map_err(|_| DispatchError::Signal(signal, "negative signal number".into()))?;
        // SAFETY: the signal source type with a valid signal number as
        // handle and mask 0 (libdispatch `DISPATCH_SOURCE_TYPE_SIGNAL`); a
        // live queue. Returns a +1 inactive source.
        let source = unsafe { DispatchSource::new(kind, handle, 0, Some(queue)) };
        set_handler(
            &source,
            "signal source",
            Arc::new(Mutex::new(Box::new(handler))),
        );
        source.activate();
        Ok(Self { source })
    }

    /// Stops watching the signal (it stays ignored).
    pub fn cancel(&self) {
        self.source.cancel();
    }
}

impl Drop for SignalSource {
    fn drop(&mut self) {
        self.source.cancel();
    }
}

/// A one-shot timer on a queue that can be re-armed and disarmed at any
/// time: the driver sets it to the core's next deadline after each event.
///
/// The handler may run once after a [`OneShotTimer::disarm`] or re-arm
/// that raced with a firing already queued; treat a call as "check the
/// deadlines now", which is what a sans-IO core's `handle_timeout(now)` does
/// anyway.
#[derive(Debug)]
pub struct OneShotTimer {
    source: DispatchRetained<DispatchSource>,
}

impl OneShotTimer {
    /// A disarmed timer that calls `handler` on `queue` when it fires.
    pub fn new<F>(queue: &DispatchQueue, handler: F) -> Self
    where
        F: FnMut() + Send + 'static,
    {
        let kind = (&raw const dispatch2::_dispatch_source_type_timer).cast_mut();
        // SAFETY: the timer source type with handle and mask 0
        // (libdispatch `DISPATCH_SOURCE_TYPE_TIMER`); a live queue. Returns
        // a +1 inactive source.
        let source = unsafe { DispatchSource::new(kind, 0, 0, Some(queue)) };
        set_handler(
            &source,
            "timer source",
            Arc::new(Mutex::new(Box::new(handler))),
        );
        let timer = Self { source };
        timer.disarm();
        timer.source.activate();
        timer
    }

    /// Fires once after `delay` (replacing any earlier arming). A delay too
    /// large for dispatch time leaves the timer disarmed.
    pub fn arm_after(&self, delay: Duration) {
        match DispatchTime::try_from(delay) {
            Ok(start) => self.source.set_timer(
                start,
                DispatchTime::FOREVER.0,
                u64::try_from(TIMER_LEEWAY.as_nanos()).unwrap_or(u64::MAX),
            ),
            Err(()) => self.disarm(),
        }
    }

    /// Fires once at `deadline` (at once if it has passed).
    pub fn arm_at(&self, deadline: Instant) {
        self.arm_after(deadline.saturating_duration_since(Instant::now()));
    }

    /// Arms for `deadline`, or disarms for `None` (the shape of a sans-IO
    /// core's `poll_timeout()`).
    pub fn set(&self, deadline: Option<Instant>) {
        match deadline {
            Some(d) => self.arm_at(d),
            None => self.disarm(),
        }
    }

    /// Stops the timer from firing until armed again.
    pub fn disarm(&self) {
        self.source
            .set_timer(DispatchTime::FOREVER, DispatchTime::FOREVER.0, 0);
    }
}

impl Drop for OneShotTimer {
    fn drop(&mut self) {
        self.source.cancel();
    }
}
