//! Persistent networks and configuration changes of live networks.
//!
//! - A network whose configuration says `persistent` is created by
//!   [`Broker::reload`] (at start, and again on each reload), is never
//!   removed for being idle, and keeps the broker from reporting
//!   [`Event::IdleExit`](super::Event::IdleExit). A failed creation is tried again after 1 s,
//!   doubling up to 60 s ([`crate::retry`]); an `acquire` of it tries at
//!   once.
//! - An idle live network whose configuration changed is removed and
//!   created again with the new one at its next `acquire`; if its
//!   configuration is gone, it is removed and the `acquire` is answered
//!   `NOT_FOUND`. A held network keeps its configuration until it becomes
//!   idle ("configuration changed, applies when idle").
//! - A broken configuration never touches the live network it concerns.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Instant;

use tracing::{info, warn};
use vmnet_broker_proto::NetworkName;

use super::{AccountLookup, AcquireError, Broker, RemovalReason};
use crate::backend::Backend;
use crate::config::{ConfigSource, Lookup, NetworkConfig};
use crate::retry::Backoff;

/// The retry state of a persistent network that failed to be created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Retry {
    /// Failures and the next attempt.
    pub(super) backoff: Backoff,
    /// Why the last attempt failed, for `status`.
    pub(super) last_error: String,
}

impl Retry {
    /// Records a failure at `now` for `reason`; returns when to try again.
    fn failed(&mut self, now: Instant, reason: String) -> Instant {
        self.last_error = reason;
        self.backoff.failed(now)
    }
}

/// What [`Broker::reload`] did, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Persistent networks created.
    pub started: Vec<String>,
    /// Persistent networks that could not be created (retried later).
    pub retrying: Vec<String>,
    /// Idle networks removed because their configuration changed or is gone.
    pub removed: Vec<String>,
    /// Held networks whose new configuration applies when they are idle.
    pub pending: Vec<String>,
    /// Networks whose configuration is broken (left as they were).
    pub broken: Vec<String>,
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            ("started", &self.started),
            ("retrying", &self.retrying),
            ("removed", &self.removed),
            ("changes pending until idle", &self.pending),
            ("broken, left as they were", &self.broken),
        ];
        let text: Vec<String> = parts
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(what, v)| format!("{what}: {}", v.join(", ")))
            .collect();
        if text.is_empty() {
            f.write_str("nothing changed")
        } else {
            f.write_str(&text.join("; "))
        }
    }
}

impl<B: Backend, C: ConfigSource, A: AccountLookup> Broker<B, C, A> {
    /// Reads every configuration again: starts persistent networks that are
    /// not live, removes idle networks whose configuration changed or is
    /// gone, and marks held ones to change when idle. Call it at start and
    /// whenever the configuration may have changed (SIGHUP).
    pub fn reload(&mut self, now: Instant) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        let mut names: BTreeSet<NetworkName> = self.config.configured_names().into_iter().collect();
        names.extend(self.networks.keys().cloned());
        names.extend(self.retries.keys().cloned());
        for name in names {
            let found = match self.config.lookup(&name) {
                Lookup::Found(config) => Some(config),
                Lookup::NotFound => None,
                Lookup::Broken(e) => {
                    warn!(network = %name, "configuration unusable, network left as it was: {e}");
                    summary.broken.push(name.to_string());
                    continue;
                }
            };
            if let Some(entry) = self.networks.get_mut(&name) {
                if found.as_ref() == Some(&entry.config) {
                    entry.config_changed = false;
                    continue;
                }
                if entry.holders > 0 {
                    entry.config_changed = true;
                    summary.pending.push(name.to_string());
                    continue;
                }
                self.remove_network(name.clone(), RemovalReason::Reconfigured);
                summary.removed.push(name.to_string());
            }
            match found {
                Some(config) if config.persistent => {
                    if self.start_persistent(now, &name, config) {
                        summary.started.push(name.to_string());
                    } else {
                        summary.retrying.push(name.to_string());
                    }
                }
                _ => self.clear_retry(&name),
            }
        }
        self.rearm_exit(now);
        summary
    }

    /// Whether a persistent network is live or waiting to be created.
    pub fn keeps_running(&self) -> bool {
        !self.retries.is_empty() || self.networks.values().any(|e| e.persistent())
    }

    /// Whether the live network `name` is persistent.
    pub fn is_persistent(&self, name: &str) -> bool {
        self.networks.get(name).is_some_and(|e| e.persistent())
    }

    /// Whether the live network `name` has a configuration change waiting
    /// for it to become idle.
    pub fn config_pending(&self, name: &str) -> bool {
        self.networks.get(name).is_some_and(|e| e.config_changed)
    }

    /// Persistent networks not live yet, with their failed attempts.
    pub fn waiting_persistent(&self) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = self
            .retries
            .iter()
            .map(|(n, r)| (n.to_string(), r.backoff.failures()))
            .collect();
        v.sort();
        v
    }

    /// Creates a persistent network; on failure schedules the next attempt.
    /// Returns whether it is live.
    fn start_persistent(
        &mut self,
        now: Instant,
        name: &NetworkName,
        config: NetworkConfig,
    ) -> bool {
        if self.networks.contains_key(name) {
            return true;
        }
        match self.create_with(now, name, config) {
            Ok(()) => {
                if let Some(entry) = self.networks.get_mut(name) {
                    entry.idle_since = Some(now);
                }
                info!(network = %name, "persistent network started");
                true
            }
            Err(error) => {
                self.schedule_retry(now, name, &error);
                false
            }
        }
    }

    /// Records a failed attempt to create the persistent network `name`
    /// and schedules the next one.
    pub(super) fn schedule_retry(
        &mut self,
        now: Instant,
        name: &NetworkName,
        error: &AcquireError,
    ) {
        let retry = self.retries.entry(name.clone()).or_default();
        if let Some(old) = retry.backoff.next_attempt() {
            self.retry_deadlines.remove(&(old, name.clone()));
        }
        let at = retry.failed(now, error.to_string());
        let attempt = retry.backoff.failures();
        warn!(
            network = %name,
            attempt,
            retry_in = ?at.saturating_duration_since(now),
            "persistent network not created: {error}; trying again later"
        );
        self.retry_deadlines.insert((at, name.clone()));
    }

    /// Forgets a pending retry of `name`.
    pub(super) fn clear_retry(&mut self, name: &NetworkName) {
        if let Some(retry) = self.retries.remove(name)
            && let Some(at) = retry.backoff.next_attempt()
        {
            self.retry_deadlines.remove(&(at, name.clone()));
        }
    }

    /// Runs the retries that are due.
    pub(super) fn retry_due(&mut self, now: Instant) {
        while let Some((at, _)) = self.retry_deadlines.first() {
            if *at > now {
                break;
            }
            let Some((_, name)) = self.retry_deadlines.pop_first() else {
                break;
            };
            match self.config.lookup(&name) {
                // A creation clears the retry; a failure schedules the next
                // one from the current backoff.
                Lookup::Found(config) if config.persistent => {
                    self.start_persistent(now, &name, config);
                }
                Lookup::Broken(e) => {
                    self.schedule_retry(now, &name, &AcquireError::BrokenConfiguration(e));
                }
                _ => {
                    info!(network = %name, "no longer persistent; not retried");
                    self.retries.remove(&name);
                    self.rearm_exit(now);
                }
            }
        }
    }

    /// Before an `acquire` of the idle live network `name`: applies a
    /// changed configuration (the network is removed, and created again by
    /// the caller) or a removed one (`NOT_FOUND`). A broken configuration
    /// keeps the live network as it is.
    pub(super) fn refresh_idle(&mut self, name: &NetworkName) -> Result<(), AcquireError> {
        let Some(entry) = self.networks.get(name) else {
            return Ok(());
        };
        match self.config.lookup(name) {
            Lookup::Found(config) if config == entry.config => Ok(()),
            Lookup::Found(_) => {
                info!(network = %name, "configuration changed; creating the network again");
                self.remove_network(name.clone(), RemovalReason::Reconfigured);
                Ok(())
            }
            Lookup::NotFound => {
                info!(network = %name, "configuration removed; removing the idle network");
                self.remove_network(name.clone(), RemovalReason::Reconfigured);
                Err(AcquireError::NotFound)
            }
            Lookup::Broken(e) => {
                warn!(network = %name, "configuration unusable, serving the live network as it is: {e}");
                Ok(())
            }
        }
    }

    /// The network `name` just became idle with a configuration change
    /// waiting: it is removed, and started again at once if it is (still)
    /// persistent.
    pub(super) fn apply_changed_config(&mut self, now: Instant, name: NetworkName) {
        let found = match self.config.lookup(&name) {
            Lookup::Found(config) => Some(config),
            Lookup::NotFound => None,
            Lookup::Broken(e) => {
                warn!(network = %name, "configuration unusable, network kept as it is: {e}");
                let timeout = self.options.network_idle_timeout;
                if let Some(entry) = self.networks.get_mut(&name) {
                    entry.config_changed = false;
                    if let Some(deadline) = entry.removal_deadline(timeout) {
                        self.removals.insert((deadline, name));
                    }
                }
                return;
            }
        };
        info!(network = %name, "idle now; applying its changed configuration");
        self.remove_network(name.clone(), RemovalReason::Reconfigured);
        if let Some(config) = found.filter(|c| c.persistent) {
            self.start_persistent(now, &name, config);
        }
        self.rearm_exit(now);
    }

    /// With no clients and nothing persistent left, the exit delay starts
    /// (again) from `now` if it is not running.
    fn rearm_exit(&mut self, now: Instant) {
        if self.clients.is_empty() && self.exit_deadline.is_none() && !self.keeps_running() {
            self.exit_deadline = self.options.exit_idle_timeout.map(|t| now + t);
        }
    }
}
