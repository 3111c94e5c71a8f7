//! The log lines that clients cause, limited per user.
//!
//! Invalid requests and refused acquires are logged so that an operator
//! can see what went wrong. But a client can send them by the thousand,
//! and over as many connections as it likes, so a limit per connection is
//! not enough: each user (uid) gets [`LINES_PER_WINDOW`] lines per
//! [`WINDOW`], further ones are only counted, and one warning at the end
//! of the window reports how many there were. A user therefore causes at
//! most seven lines per window however it sends its requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// Lines one user's clients may cause in one window.
pub(crate) const LINES_PER_WINDOW: u32 = 5;

/// The length of a window.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// Users tracked at once; past this, pending counts are reported and the
/// table starts afresh (uids are few on a real machine).
const MAX_USERS: usize = 4096;

/// Per-user windows of client-caused log lines.
#[derive(Debug, Default)]
pub(crate) struct ClientLog {
    users: HashMap<u32, UserLog>,
    /// The earliest end of a window with lines counted and not reported.
    next_report: Option<Instant>,
}

#[derive(Debug)]
struct UserLog {
    window_start: Instant,
    logged: u32,
    counted: u64,
}

impl ClientLog {
    /// Whether a line that a client of `uid` caused may be logged now.
    /// When it may not, it is counted for the window's report.
    pub(crate) fn admit(&mut self, now: Instant, uid: u32) -> bool {
        if self.users.len() >= MAX_USERS && !self.users.contains_key(&uid) {
            for (uid, user) in self.users.drain() {
                report(uid, &user, now);
            }
            self.next_report = None;
        }
        let user = self.users.entry(uid).or_insert(UserLog {
            window_start: now,
            logged: 0,
            counted: 0,
        });
        if now.saturating_duration_since(user.window_start) >= WINDOW {
            report(uid, user, now);
            *user = UserLog {
                window_start: now,
                logged: 0,
                counted: 0,
            };
        }
        if user.logged < LINES_PER_WINDOW {
            user.logged += 1;
            return true;
        }
        if user.counted == 0 {
            info!(
                uid,
                "more invalid requests or refused acquires from this user; they are counted and reported within {}s",
                WINDOW.as_secs()
            );
            let due = user.window_start + WINDOW;
            self.next_report = Some(self.next_report.map_or(due, |t| t.min(due)));
        }
        user.counted += 1;
        false
    }

    /// When a window with counted lines ends.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next_report
    }

    /// Reports the counts of the windows that have ended, and forgets
    /// those users.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.next_report.is_none_or(|t| t > now) {
            return;
        }
        let mut next: Option<Instant> = None;
        self.users.retain(|uid, user| {
            let due = user.window_start + WINDOW;
            if due <= now {
                report(*uid, user, now);
                return false;
            }
            if user.counted > 0 {
                next = Some(next.map_or(due, |t| t.min(due)));
            }
            true
        });
        self.next_report = next;
    }
}

/// The window's report for `uid`, if anything was counted.
fn report(uid: u32, user: &UserLog, now: Instant) {
    if user.counted == 0 {
        return;
    }
    warn!(
        uid,
        count = user.counted,
        seconds = now.saturating_duration_since(user.window_start).as_secs(),
        "invalid requests or refused acquires from this user that were only counted, not logged one by one"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_lines_per_user_per_window_then_one_report() {
        let mut log = ClientLog::default();
        let t0 = Instant::now();
        let admitted = (0..1000).filter(|_| log.admit(t0, 501)).count();
        assert_eq!(admitted, LINES_PER_WINDOW as usize);
        // Another user has its own window.
        assert!(log.admit(t0, 502));
        // The report is due when the window ends, and then the user starts
        // afresh.
        assert_eq!(log.poll_timeout(), Some(t0 + WINDOW));
        log.handle_timeout(t0 + WINDOW);
        assert_eq!(log.poll_timeout(), None);
        assert!(log.admit(t0 + WINDOW, 501));
    }

    #[test]
    fn many_connections_of_one_user_share_the_limit() {
        // The limit is per uid: the caller passes the same uid whatever the
        // connection, so reconnecting does not reset it.
        let mut log = ClientLog::default();
        let t0 = Instant::now();
        let admitted = (0..5000)
            .filter(|i| log.admit(t0 + Duration::from_micros(*i), 1001))
            .count();
        assert_eq!(admitted, LINES_PER_WINDOW as usize);
    }

    #[test]
    fn a_window_that_ended_restarts_at_the_next_line() {
        let mut log = ClientLog::default();
        let t0 = Instant::now();
        for _ in 0..20 {
            log.admit(t0, 7);
        }
        // No timer ran: the next line after the window reports and restarts.
        assert!(log.admit(t0 + WINDOW + Duration::from_secs(1), 7));
    }
}
