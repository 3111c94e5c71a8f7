//! The system account database, for `allowed_users` and `allowed_groups`.
//!
//! getpwnam and friends may ask a directory service over the network
//! (LDAP, Open Directory) and can take seconds. The broker answers every
//! client from one event loop, so each lookup runs on a helper thread and
//! the loop waits for it only a short while: a lookup that takes longer
//! counts as "not found" (access lists fail closed), and while it is still
//! running the same question is answered "not found" at once instead of
//! waiting again. Answers are cached for a few seconds, so a burst of
//! acquires asks the directory service once.
//!
//! The waiting itself is bounded as a whole, not per name: the loop draws
//! it from one budget of at most [`LOOKUP_TIMEOUT`], which refills at a
//! tenth of the time that passes. An access list of sixty names, or a
//! client that acquires in a loop, can then stall the other clients for at
//! most 0.5 s at once and for a tenth of the time over the long run; the
//! lookups that found the budget spent still run, and their answers serve
//! the next acquire from the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, mpsc};
use std::time::{Duration, Instant};

use nix::unistd::Group;
#[cfg(target_os = "macos")]
use nix::unistd::User;
#[cfg(not(target_os = "macos"))]
use nix::unistd::{Gid, Uid, User};
use tracing::{debug, warn};
use vmnet_broker_core::broker::AccountLookup;

/// The most the event loop waits for lookups at once (one lookup, or
/// several in a row).
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);
/// The wait budget refills at one part in this many of the time that
/// passes.
const REFILL_DIVISOR: u32 = 10;
/// How long an answer is reused.
const CACHE_TTL: Duration = Duration::from_secs(10);
/// Most lookups running at once; more are refused rather than queued.
const MAX_RUNNING: usize = 8;
/// Most answers kept; the cache is emptied when it grows past this.
const MAX_CACHED: usize = 4096;

/// Looks names up with getpwnam_r / getgrnam_r, bounded in time and cached.
/// Consulted only when a network restricts access.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemAccounts;

impl AccountLookup for SystemAccounts {
    fn user_id(&self, name: &str) -> Option<u32> {
        let owned = name.to_owned();
        lookups().ask(Key::User(name.to_owned()), move || {
            User::from_name(&owned)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw())
        })
    }

    fn group_id(&self, name: &str) -> Option<u32> {
        let owned = name.to_owned();
        lookups().ask(Key::Group(name.to_owned()), move || {
            Group::from_name(&owned)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
        })
    }

    fn is_member(&self, uid: u32, gid: u32, group: u32) -> bool {
        if gid == group {
            return true;
        }
        lookups()
            .ask(Key::Member(uid, group), move || {
                member_of(uid, group).then_some(1)
            })
            .is_some()
    }
}

/// macOS decides membership with its membership API, so that nested groups
/// and directory-service groups count (see `vmnet_broker_macos::membership`).
#[cfg(target_os = "macos")]
fn member_of(uid: u32, group: u32) -> bool {
    match vmnet_broker_macos::membership::is_member(uid, group) {
        Ok(member) => member,
        Err(errno) => {
            tracing::warn!(
                uid,
                gid = group,
                errno,
                "cannot check group membership; counting the user as not a member"
            );
            false
        }
    }
}

/// Elsewhere, the user's whole group list as the system builds it at login
/// (getgrouplist(3): the primary group plus every group from NSS, not only
/// the member lists of /etc/group).
#[cfg(not(target_os = "macos"))]
fn member_of(uid: u32, group: u32) -> bool {
    let Some(user) = User::from_uid(Uid::from_raw(uid)).ok().flatten() else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name.as_bytes()) else {
        return false;
    };
    match nix::unistd::getgrouplist(&name, user.gid) {
        Ok(groups) => groups.contains(&Gid::from_raw(group)),
        Err(e) => {
            tracing::warn!(
                uid,
                gid = group,
                "cannot list the user's groups ({e}); counting the user as not a member"
            );
            false
        }
    }
}

/// One question to the account database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Group(String),
    Member(u32, u32),
}

/// Lookups in flight and recent answers.
#[derive(Debug)]
struct Lookups {
    timeout: Duration,
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    answers: HashMap<Key, (Instant, Option<u32>)>,
    running: HashMap<Key, ()>,
    /// What is left of the time the loop may still spend waiting.
    budget: Duration,
    /// When `budget` was last refilled.
    refilled: Instant,
}

impl State {
    fn new(budget: Duration) -> Self {
        Self {
            answers: HashMap::new(),
            running: HashMap::new(),
            budget,
            refilled: Instant::now(),
        }
    }

    /// The time the loop may wait now, at most `cap`, after refilling the
    /// budget for the time that passed.
    fn wait_allowed(&mut self, cap: Duration) -> Duration {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled) / REFILL_DIVISOR;
        self.refilled = now;
        self.budget = self.budget.saturating_add(earned).min(cap);
        self.budget
    }
}

fn lookups() -> &'static Lookups {
    static LOOKUPS: OnceLock<Lookups> = OnceLock::new();
    LOOKUPS.get_or_init(|| Lookups::new(LOOKUP_TIMEOUT))
}

impl Lookups {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            state: Arc::new(Mutex::new(State::new(timeout))),
        }
    }

    /// The answer to `key`: cached, or from `find` run on a helper thread
    /// if it answers within what is left of the wait budget, or `None`.
    fn ask<F>(&self, key: Key, find: F) -> Option<u32>
    where
        F: FnOnce() -> Option<u32> + Send + 'static,
    {
        let wait = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((at, answer)) = state.answers.get(&key)
                && at.elapsed() < CACHE_TTL
            {
                return *answer;
            }
            if state.running.contains_key(&key) {
                // Still waiting for the directory service: fail closed now
                // rather than wait again.
                return None;
            }
            if state.running.len() >= MAX_RUNNING {
                // Debug, not warn: an access list of many names would log
                // a line per name on every acquire.
                debug!(
                    ?key,
                    "too many account lookups still running; treating this name as unknown"
                );
                return None;
            }
            state.running.insert(key.clone(), ());
            state.wait_allowed(self.timeout)
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let shared = Arc::clone(&self.state);
        let thread_key = key.clone();
        let spawned = std::thread::Builder::new()
            .name("account-lookup".into())
            .spawn(move || {
                let answer = find();
                let mut state = shared.lock().unwrap_or_else(PoisonError::into_inner);
                state.running.remove(&thread_key);
                if state.answers.len() >= MAX_CACHED {
                    state.answers.clear();
                }
                state.answers.insert(thread_key, (Instant::now(), answer));
                drop(state);
                let _ = tx.send(answer);
            });
        if let Err(e) = spawned {
            warn!(
                ?key,
                "cannot start an account lookup: {e}; treating the name as unknown"
            );
            self.state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .running
                .remove(&key);
            return None;
        }
        let started = Instant::now();
        let answer = rx.recv_timeout(wait);
        let waited = started.elapsed();
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.budget = state.budget.saturating_sub(waited);
        }
        match answer {
            Ok(answer) => answer,
            Err(_) => {
                warn!(
                    ?key,
                    waited = ?waited,
                    "account lookup is slow; treating the name as unknown until it answers"
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every supplementary membership the group database lists is seen,
    /// and a group the user is not in is not.
    #[test]
    #[cfg(not(target_os = "macos"))]
    fn supplementary_groups_count() {
        let a = SystemAccounts;
        let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
        for line in groups.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            let [_, _, gid, members] = fields[..] else {
                continue;
            };
            let Ok(gid) = gid.parse::<u32>() else {
                continue;
            };
            for member in members.split(',').filter(|m| !m.is_empty()) {
                let Some(user) = User::from_name(member).ok().flatten() else {
                    continue;
                };
                assert!(
                    a.is_member(user.uid.as_raw(), user.gid.as_raw(), gid),
                    "{member} is listed in group {gid}"
                );
            }
        }
        // root is in group 0 and not in a group id nobody has.
        assert!(a.is_member(0, 12345, 0));
        assert!(!a.is_member(0, 0, 4_000_000_000));
    }

    #[test]
    fn root_resolves() {
        let a = SystemAccounts;
        assert_eq!(a.user_id("root"), Some(0));
        assert!(a.is_member(0, 0, 0));
        assert_eq!(a.user_id("no-such-user-vmnet-broker"), None);
    }

    #[test]
    fn a_stuck_lookup_fails_closed_and_is_not_waited_for_twice() {
        let lookups = Lookups::new(Duration::from_millis(10));
        let (release, stuck) = mpsc::channel::<()>();
        let key = || Key::User("slow".into());
        // The directory service does not answer: the caller gets "unknown".
        assert_eq!(
            lookups.ask(key(), move || {
                let _ = stuck.recv();
                Some(42)
            }),
            None
        );
        // Asked again while the first lookup runs: "unknown", and the new
        // lookup function is never run.
        assert_eq!(lookups.ask(key(), || panic!("asked twice")), None);
        // Once the service answers, the answer is used from the cache.
        release.send(()).unwrap_or_default();
        loop {
            let running = lookups
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .running
                .contains_key(&key());
            if !running {
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(lookups.ask(key(), || panic!("not cached")), Some(42));
    }

    #[test]
    fn the_wait_is_bounded_for_all_names_together() {
        let lookups = Lookups::new(Duration::from_millis(50));
        let (_release, stuck) = mpsc::channel::<()>();
        // The first slow name spends the whole wait budget...
        assert_eq!(
            lookups.ask(Key::User("stuck".into()), move || {
                let _ = stuck.recv();
                None
            }),
            None
        );
        // ...so a second name that answers in 200 ms is not waited for,
        // where a per-name timeout would wait for it again (a list of many
        // slow names stalled every client for 0.5 s per name).
        let second = || Key::Group("second".into());
        assert_eq!(
            lookups.ask(second(), || {
                std::thread::sleep(Duration::from_millis(200));
                Some(7)
            }),
            None
        );
        // Its lookup still ran, and its answer serves the next question.
        loop {
            let state = lookups.state.lock().unwrap_or_else(PoisonError::into_inner);
            if !state.running.contains_key(&second()) {
                break;
            }
            drop(state);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(lookups.ask(second(), || panic!("not cached")), Some(7));
    }
}
