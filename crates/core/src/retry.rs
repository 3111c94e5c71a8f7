//! Retrying with exponential backoff.
//!
//! A persistent network that cannot be created (at boot vmnet may not be
//! ready yet) is tried again after 1 s, then 2 s, 4 s, ... up to 60 s
//! between attempts, for as long as the broker runs.

use std::time::{Duration, Instant};

/// The first delay after a failure.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The retry state of one thing that keeps failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
    next_delay: Duration,
    next_attempt: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// No failure yet.
    pub fn new() -> Self {
        Self {
            failures: 0,
            next_delay: FIRST_DELAY,
            next_attempt: None,
        }
    }

    /// Records a failure at `now`; returns when to try again.
    pub fn failed(&mut self, now: Instant) -> Instant {
        self.failures = self.failures.saturating_add(1);
        let at = now + self.next_delay;
        self.next_attempt = Some(at);
        self.next_delay = (self.next_delay * 2).min(MAX_DELAY);
        at
    }

    /// Failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When the next attempt is due, if one failed.
    pub fn next_attempt(&self) -> Option<Instant> {
        self.next_attempt
    }

    /// The delay the next failure will get.
    pub fn next_delay(&self) -> Duration {
        self.next_delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_one_second_up_to_a_minute() {
        let t0 = Instant::now();
        let mut b = Backoff::new();
        assert_eq!(b.next_attempt(), None);
        let delays: Vec<u64> = (0..9)
            .map(|_| b.failed(t0).duration_since(t0).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.failures(), 9);
        assert_eq!(b.next_attempt(), Some(t0 + MAX_DELAY));
    }
}
