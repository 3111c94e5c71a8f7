//! The broker state machine.
//!
//! [`Broker`] holds every client, every live network and every timer, and
//! changes only when the driver calls one of its methods. It never reads a
//! clock, opens a socket or starts a thread: time comes in as an argument,
//! and what the driver must do comes out as return values and events.
//!
//! # Methods by kind
//!
//! - **Inputs** (`handle_*`): [`Broker::handle_connect`],
//!   [`Broker::handle_request`], [`Broker::handle_bad_request`],
//!   [`Broker::handle_disconnect`] and [`Broker::handle_timeout`]. Each takes
//!   `now`; time must never go backwards between calls.
//! - **Outputs** (`poll_*`): [`Broker::poll_timeout`] is the earliest instant
//!   at which the driver must call `handle_timeout`; [`Broker::poll_event`]
//!   drains events (network created or removed, broker idle).
//! - **Commands**: [`Broker::shutdown`] destroys every network (on exit).
//! - **Getters**: [`Broker::status`], [`Broker::client_count`], ...
//!
//! After any input, a driver calls `poll_event` until it returns `None`,
//! then waits for the next input or for `poll_timeout`, whichever comes
//! first.
//!
//! # Costs
//!
//! Every input costs O(1), or O(networks held by the client) for a disconnect,
//! plus O(log n) for timer bookkeeping. Only [`Broker::status`] visits every
//! client. Creating a network with a static or remembered subnet also lists
//! the host's networks and visits the live networks (collision check).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};
use vmnet_broker_proto::text::escape;
use vmnet_broker_proto::{
    ClientStatus, Counters, NetworkInfo, NetworkName, NetworkStatus, Request, Status, StatusReport,
    WaitingNetwork,
};

use crate::backend::{Backend, BackendError};
use crate::config::{ConfigError, ConfigSource, Lookup, NetworkConfig, Principal};
use crate::hostnet::{Collisions, HostNetworks};
use crate::state::{RememberedSubnets, SubnetStore};

mod client_log;
mod persistent;
mod subnets;

pub use persistent::ReloadSummary;

/// Clients listed in one status report at most. A report lists the
/// caller's own clients (all of them for root), so without a cap its size
/// grows with the number of connections one user opens (about 150 bytes
/// each, so a capped report stays near 160 KiB). Clients left out are
/// counted in `hidden_clients`, like the clients of other users.
pub const MAX_STATUS_CLIENTS: usize = 1024;
pub use subnets::SubnetOrigin;

/// Tunables of a [`Broker`]. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerOptions {
    /// How long a network without holders lives before it is removed
    /// (default 120 s, as upstream).
    pub network_idle_timeout: Duration,
    /// How long the broker may run without clients before it reports
    /// [`Event::IdleExit`]; `None` never (default 120 s, as upstream).
    pub exit_idle_timeout: Option<Duration>,
    /// Distinct networks one client may hold (default 8, as upstream).
    pub max_networks_per_client: usize,
    /// Clients connected at once (default 16384).
    pub max_clients: usize,
    /// Clients of one user connected at once (default 1024); root's
    /// clients are limited only by `max_clients`. One user cannot take
    /// every connection and lock the others out.
    pub max_clients_per_user: usize,
    /// Live networks at once, held or idle (default 128).
    pub max_networks: usize,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            network_idle_timeout: Duration::from_secs(120),
            exit_idle_timeout: Some(Duration::from_secs(120)),
            max_networks_per_client: 8,
            max_clients: 16384,
            max_clients_per_user: 1024,
            max_networks: 128,
        }
    }
}

/// Facts about the daemon process that appear in `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonInfo {
    /// Version string.
    pub version: String,
    /// Process id.
    pub pid: u32,
    /// The configuration directory, as the driver names it in `status`.
    pub config_dir: Option<String>,
    /// The log level filter, as the driver names it in `status`.
    pub log_level: Option<String>,
}

/// A client (one connection to the broker), named by the driver. Ids must be unique
/// among connected clients; drivers never reuse them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}", self.0)
    }
}

/// Who is at the other end of a connection, as the transport reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCredentials {
    /// Process id (informational: pids are reused).
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// Resolves user and group names for access lists.
///
/// The core never reads the account database itself; the daemon passes an
/// implementation backed by the system's. Lookups happen only for networks
/// that have `allowed_users` or `allowed_groups`.
pub trait AccountLookup {
    /// The uid of the user `name`.
    fn user_id(&self, name: &str) -> Option<u32>;
    /// The gid of the group `name`.
    fn group_id(&self, name: &str) -> Option<u32>;
    /// Whether the user `uid`, whose primary group is `gid`, is a member of
    /// the group `group` (as primary or supplementary group).
    fn is_member(&self, uid: u32, gid: u32, group: u32) -> bool;
}

/// [`AccountLookup`] that knows no names: access lists match numeric ids only,
/// and a client's groups are just its primary group.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAccounts;

impl AccountLookup for NoAccounts {
    fn user_id(&self, _name: &str) -> Option<u32> {
        None
    }
    fn group_id(&self, _name: &str) -> Option<u32> {
        None
    }
    fn is_member(&self, _uid: u32, gid: u32, group: u32) -> bool {
        gid == group
    }
}

/// The answer to one request. The driver must send it to the client.
#[must_use = "the reply must be sent to the client"]
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<S> {
    /// `acquire` succeeded.
    Acquired {
        /// The backend's serialization of the network.
        network: S,
        /// Its addresses.
        info: NetworkInfo,
    },
    /// `release` succeeded.
    Released,
    /// The answer to `status`.
    Status(Box<StatusReport>),
    /// `acquire` was refused; the reason says why (the client only sees
    /// [`AcquireError::status`]).
    AcquireFailed(AcquireError),
    /// Any other failed request (`release` of a network not held, a request
    /// that could not be decoded, a request from an unknown client).
    Error(Status),
}

impl<S> Reply<S> {
    /// The status this reply stands for.
    pub fn status(&self) -> Status {
        match self {
            Self::Error(s) => *s,
            Self::AcquireFailed(e) => e.status(),
            _ => Status::SUCCESS,
        }
    }
}

/// Why the broker refused an `acquire`.
///
/// The broker decides with this type and keeps it until the reply: logs name
/// the reason, `status` counts it (`counters.acquire_refusals`), and only
/// the wire reply is reduced to a [`Status`] with [`AcquireError::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    /// No network of that name is configured (and it is not built in).
    #[error("no network of that name is configured")]
    NotFound,
    /// The network's configuration file exists but cannot be used.
    #[error("the network's configuration is unusable: {0}")]
    BrokenConfiguration(ConfigError),
    /// The network's access lists do not include the client's user or
    /// groups.
    #[error("the client's user is not allowed to use this network")]
    NotAllowed,
    /// The client already holds as many networks as one client may.
    #[error("the client already holds {limit} networks, the most one client may hold")]
    ClientLimit {
        /// `max_networks_per_client`.
        limit: usize,
    },
    /// The broker already keeps as many live networks as it may.
    #[error("the broker already has {limit} live networks, the most it keeps")]
    BrokerLimit {
        /// `max_networks`.
        limit: usize,
    },
    /// The backend (vmnet, or the simulation) could not create the network.
    #[error("the backend could not create the network: {0}")]
    Backend(BackendError),
    /// The network's static subnet or IPv6 prefix overlaps a network of the
    /// host or a reserved range.
    #[error("{0}")]
    HostCollision(Collisions),
}

impl AcquireError {
    /// The status the client receives. As the original broker: an unknown
    /// or unusable network is NOT_FOUND, a refused user NOT_ALLOWED, the
    /// per-client limit INTERNAL_ERROR, and every failure to create a
    /// network (the broker's limit, the backend) CREATE_FAILURE.
    pub fn status(&self) -> Status {
        match self {
            Self::BrokenConfiguration(e) if e.is_transient() => Status::INTERNAL_ERROR,
            Self::NotFound | Self::BrokenConfiguration(_) => Status::NOT_FOUND,
            Self::NotAllowed => Status::NOT_ALLOWED,
            Self::ClientLimit { .. } => Status::INTERNAL_ERROR,
            Self::BrokerLimit { .. } | Self::Backend(_) | Self::HostCollision(_) => {
                Status::CREATE_FAILURE
            }
        }
    }

    /// A short stable name for logs and the `acquire_refusals` counters.
    pub fn slug(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::BrokenConfiguration(e) if e.is_transient() => "configuration_unavailable",
            Self::BrokenConfiguration(_) => "broken_configuration",
            Self::NotAllowed => "not_allowed",
            Self::ClientLimit { .. } => "client_limit",
            Self::BrokerLimit { .. } => "broker_limit",
            Self::Backend(_) => "backend_failure",
            Self::HostCollision(_) => "host_collision",
        }
    }
}

/// Why a network was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// Nobody held it for the idle delay.
    Idle,
    /// The broker is shutting down.
    Shutdown,
    /// Its configuration changed or was removed while it was idle (it is
    /// created again with the new configuration when needed).
    Reconfigured,
}

/// Something the driver should know about or act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A network was created.
    NetworkCreated {
        /// Its name.
        name: NetworkName,
        /// Its addresses.
        info: NetworkInfo,
    },
    /// A network was removed (and released in the backend).
    NetworkRemoved {
        /// Its name.
        name: NetworkName,
        /// Why.
        reason: RemovalReason,
    },
    /// No client has been connected for the exit delay: the driver may call
    /// [`Broker::shutdown`] and exit.
    IdleExit,
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The client limit is reached.
    #[error("too many clients connected (limit {limit}); refusing the new connection")]
    TooManyClients {
        /// The limit in force.
        limit: usize,
    },
    /// The user already has as many clients connected as one user may.
    #[error(
        "uid {uid} already has {limit} clients connected, the most one user may have; refusing the new connection"
    )]
    TooManyClientsOfUser {
        /// The client's user.
        uid: u32,
        /// The limit in force.
        limit: usize,
    },
    /// The id is already in use (a driver bug).
    #[error("{0} is already connected")]
    DuplicateClient(ClientId),
}

#[derive(Debug)]
struct Client {
    creds: ClientCredentials,
    connected_at: Instant,
    /// Networks held, at most `max_networks_per_client` (small: a Vec).
    held: Vec<NetworkName>,
    /// The client will send nothing more (see
    /// [`Broker::handle_end_of_input`]): its holds have ended and it may
    /// acquire nothing, but it is connected until its replies are taken.
    input_ended: bool,
}

struct Entry<B: Backend> {
    network: B::Network,
    serialization: B::Serialization,
    info: NetworkInfo,
    config: NetworkConfig,
    holders: usize,
    created_at: Instant,
    /// When the last holder left; `None` while held.
    idle_since: Option<Instant>,
    /// Where its subnet came from.
    origin: SubnetOrigin,
    /// The configuration changed while the network was held; it applies
    /// when the network becomes idle.
    config_changed: bool,
}

impl<B: Backend> Entry<B> {
    /// Kept without holders and never removed for being idle (the
    /// configuration it was created from; a changed one applies only when
    /// the network is created again).
    fn persistent(&self) -> bool {
        self.config.persistent
    }

    fn removal_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.persistent() {
            return None;
        }
        self.idle_since.map(|t| t + timeout)
    }
}

/// The broker. See the [module documentation](self).
pub struct Broker<B: Backend, C: ConfigSource, A: AccountLookup = NoAccounts> {
    options: BrokerOptions,
    backend: B,
    config: C,
    accounts: A,
    daemon: DaemonInfo,
    started: Instant,
    clients: HashMap<ClientId, Client>,
    networks: HashMap<NetworkName, Entry<B>>,
    /// Removal deadlines of idle networks, earliest first.
    removals: BTreeSet<(Instant, NetworkName)>,
    /// When the broker becomes idle (no clients); `None` while clients exist
    /// or after `IdleExit` was reported.
    exit_deadline: Option<Instant>,
    events: VecDeque<Event>,
    counters: Counters,
    /// The host's networks, for collision checks; `None`: not checked.
    host: Option<Box<dyn HostNetworks + Send>>,
    /// The subnets networks had last time.
    remembered: RememberedSubnets,
    /// Where changes of `remembered` are written.
    store: Option<Box<dyn SubnetStore + Send>>,
    /// Persistent networks that failed to be created, with their backoff
    /// and last error.
    retries: HashMap<NetworkName, persistent::Retry>,
    /// Their next attempts, earliest first.
    retry_deadlines: BTreeSet<(Instant, NetworkName)>,
    /// The log lines clients cause (invalid requests, refused acquires),
    /// limited per user.
    client_log: client_log::ClientLog,
    /// Connected clients by uid.
    clients_of_user: HashMap<u32, usize>,
}

impl<B: Backend, C: ConfigSource, A: AccountLookup> fmt::Debug for Broker<B, C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("clients", &self.clients.len())
            .field("networks", &self.networks.len())
            .field("exit_deadline", &self.exit_deadline)
            .finish_non_exhaustive()
    }
}

impl<B: Backend, C: ConfigSource, A: AccountLookup> Broker<B, C, A> {
    /// A broker with no clients and no networks, started at `now`.
    pub fn new(
        options: BrokerOptions,
        backend: B,
        config: C,
        accounts: A,
        daemon: DaemonInfo,
        now: Instant,
    ) -> Self {
        let exit_deadline = options.exit_idle_timeout.map(|t| now + t);
        Self {
            options,
            backend,
            config,
            accounts,
            daemon,
            started: now,
            clients: HashMap::new(),
            networks: HashMap::new(),
            removals: BTreeSet::new(),
            exit_deadline,
            events: VecDeque::new(),
            counters: Counters::default(),
            host: None,
            remembered: RememberedSubnets::new(),
            store: None,
            retries: HashMap::new(),
            retry_deadlines: BTreeSet::new(),
            client_log: client_log::ClientLog::default(),
            clients_of_user: HashMap::new(),
        }
    }

    /// Gives the broker a view of the host's networks: static subnets
    /// that collide with them (or with a reserved range) are refused, and
    /// remembered subnets that now collide are not asked for. Without one,
    /// only the reserved ranges are checked.
    pub fn set_host_networks(&mut self, source: impl HostNetworks + Send + 'static) {
        self.host = Some(Box::new(source));
    }

    /// The subnets remembered from earlier runs (read from the state file
    /// by the driver at start).
    pub fn set_remembered(&mut self, remembered: RememberedSubnets) {
        self.remembered = remembered;
    }

    /// Where to write what the broker remembers whenever it changes.
    pub fn set_subnet_store(&mut self, store: impl SubnetStore + Send + 'static) {
        self.store = Some(Box::new(store));
    }

    /// The subnets remembered now.
    pub fn remembered(&self) -> &RememberedSubnets {
        &self.remembered
    }

    /// Where the subnet of the live network `name` came from.
    pub fn subnet_origin(&self, name: &str) -> Option<SubnetOrigin> {
        self.networks.get(name).map(|e| e.origin)
    }

    /// The backend (to inspect it in tests).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Mutable access to the backend (feature `test-util`: to inject
    /// failures into a running broker's backend).
    #[cfg(any(test, feature = "test-util"))]
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// A new connection.
    pub fn handle_connect(
        &mut self,
        now: Instant,
        client: ClientId,
        creds: ClientCredentials,
    ) -> Result<(), ConnectError> {
        if self.clients.contains_key(&client) {
            error!(client = client.0, "a driver reused a client id");
            return Err(ConnectError::DuplicateClient(client));
        }
        let of_user = self.clients_of_user.get(&creds.uid).copied().unwrap_or(0);
        let refusal = if self.clients.len() >= self.options.max_clients {
            // The key predates the word "client"; kept for `status` readers.
            bump(&mut self.counters.failures, "too_many_peers");
            Some(ConnectError::TooManyClients {
                limit: self.options.max_clients,
            })
        } else if creds.uid != 0 && of_user >= self.options.max_clients_per_user {
            bump(&mut self.counters.failures, "too_many_clients_of_user");
            Some(ConnectError::TooManyClientsOfUser {
                uid: creds.uid,
                limit: self.options.max_clients_per_user,
            })
        } else {
            None
        };
        if let Some(e) = refusal {
            // A client can retry at once, again and again: logged within
            // the limit per user.
            if self.client_log.admit(now, creds.uid) {
                warn!(pid = creds.pid, uid = creds.uid, "{e}");
            }
            return Err(e);
        }
        self.clients_of_user.insert(creds.uid, of_user + 1);
        self.clients.insert(
            client,
            Client {
                creds,
                connected_at: now,
                held: Vec::new(),
                input_ended: false,
            },
        );
        self.exit_deadline = None;
        self.counters.connects += 1;
        debug!(
            client = client.0,
            pid = creds.pid,
            uid = creds.uid,
            "client connected"
        );
        Ok(())
    }

    /// A decoded request from `client`.
    pub fn handle_request(
        &mut self,
        now: Instant,
        client: ClientId,
        request: Request,
    ) -> Reply<B::Serialization> {
        self.counters.requests += 1;
        if !self.clients.contains_key(&client) {
            warn!(
                client = client.0,
                "request from a client that is not connected"
            );
            return Reply::Error(Status::INTERNAL_ERROR);
        }
        let reply = match request {
            Request::Acquire { network } => self.acquire(now, client, network),
            Request::Release { network } => self.release(now, client, &network),
            Request::Status => Reply::Status(Box::new(self.status(now, Some(client)))),
        };
        match &reply {
            Reply::Error(status) => self.count_failure(*status),
            Reply::AcquireFailed(e) => {
                self.count_failure(e.status());
                bump(&mut self.counters.acquire_refusals, e.slug());
            }
            _ => {}
        }
        reply
    }

    /// A request that could not be decoded (bad JSON, missing key, bad
    /// name...). Counts it (the driver logs it); the answer is always INVALID_REQUEST.
    pub fn handle_bad_request(
        &mut self,
        now: Instant,
        client: ClientId,
        reason: &dyn fmt::Display,
    ) -> Reply<B::Serialization> {
        // Logged within the limit per user (see `client_log`), so that a
        // flood of them, over one connection or many, cannot flood the log.
        if let Some(p) = self.clients.get(&client)
            && self.client_log.admit(now, p.creds.uid)
        {
            info!(
                client = client.0,
                uid = p.creds.uid,
                "invalid request: {}",
                escape(&reason.to_string())
            );
        }
        self.counters.requests += 1;
        self.count_failure(Status::INVALID_REQUEST);
        Reply::Error(Status::INVALID_REQUEST)
    }

    /// `client` will send nothing more (it closed its sending side): its
    /// holds end now, as if it had left, and it can acquire nothing more;
    /// but it still counts as connected, against the limits too, until
    /// [`Broker::handle_disconnect`] (its transport may still be writing it
    /// the replies it asked for).
    pub fn handle_end_of_input(&mut self, now: Instant, client: ClientId) {
        let Some(p) = self.clients.get_mut(&client) else {
            return;
        };
        p.input_ended = true;
        let held = std::mem::take(&mut p.held);
        debug!(
            client = client.0,
            held = held.len(),
            "client sent its end of input"
        );
        for name in held {
            self.drop_hold(now, name);
        }
    }

    /// The connection of `client` is gone: its holds are dropped.
    pub fn handle_disconnect(&mut self, now: Instant, client: ClientId) {
        let Some(p) = self.clients.remove(&client) else {
            return;
        };
        if let Some(n) = self.clients_of_user.get_mut(&p.creds.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.clients_of_user.remove(&p.creds.uid);
            }
        }
        self.counters.disconnects += 1;
        debug!(
            client = client.0,
            held = p.held.len(),
            "client disconnected"
        );
        for name in p.held {
            self.drop_hold(now, name);
        }
        if self.clients.is_empty() {
            self.exit_deadline = self.options.exit_idle_timeout.map(|t| now + t);
        }
    }

    /// Time has passed: removes networks whose idle delay is over and
    /// reports [`Event::IdleExit`] when the exit delay is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((deadline, _)) = self.removals.first() {
            if *deadline > now {
                break;
            }
            if let Some((_, name)) = self.removals.pop_first() {
                self.remove_network(name, RemovalReason::Idle);
            }
        }
        self.retry_due(now);
        self.client_log.handle_timeout(now);
        if let Some(deadline) = self.exit_deadline
            && deadline <= now
            && self.clients.is_empty()
        {
            self.exit_deadline = None;
            if self.keeps_running() {
                info!(
                    "no clients for the idle delay, but persistent networks keep the broker running"
                );
            } else {
                info!("no clients for the idle delay; the broker may exit");
                self.events.push_back(Event::IdleExit);
            }
        }
    }

    /// The earliest instant at which [`Broker::handle_timeout`] has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let removal = self.removals.first().map(|(t, _)| *t);
        let retry = self.retry_deadlines.first().map(|(t, _)| *t);
        [
            removal,
            self.exit_deadline,
            retry,
            self.client_log.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next event for the driver.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Destroys every network (each reported as removed with
    /// [`RemovalReason::Shutdown`]) and drops every hold. Clients stay
    /// connected but hold nothing. Returns the number of networks destroyed.
    pub fn shutdown(&mut self, _now: Instant) -> usize {
        let mut names: Vec<NetworkName> = self.networks.keys().cloned().collect();
        names.sort();
        let count = names.len();
        for client in self.clients.values_mut() {
            client.held.clear();
        }
        self.removals.clear();
        self.retries.clear();
        self.retry_deadlines.clear();
        for name in names {
            self.remove_network(name, RemovalReason::Shutdown);
        }
        self.exit_deadline = None;
        count
    }

    /// Number of connected clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Number of connected clients that hold at least one network.
    pub fn holding_client_count(&self) -> usize {
        self.clients.values().filter(|c| !c.held.is_empty()).count()
    }

    /// Number of live networks (held or idle).
    pub fn network_count(&self) -> usize {
        self.networks.len()
    }

    /// Holders of `name`, or `None` if the network is not live.
    pub fn holders(&self, name: &str) -> Option<usize> {
        self.networks.get(name).map(|e| e.holders)
    }

    /// Networks `client` holds.
    pub fn held_by(&self, client: ClientId) -> Option<&[NetworkName]> {
        self.clients.get(&client).map(|p| p.held.as_slice())
    }

    /// A status report as seen by `viewer` (`None`: an internal caller that
    /// sees everything). A viewer sees the clients of its own user; root sees
    /// all clients. Networks and counters are visible to everyone.
    pub fn status(&self, now: Instant, viewer: Option<ClientId>) -> StatusReport {
        let viewer_uid = viewer
            .and_then(|v| self.clients.get(&v))
            .map(|p| p.creds.uid);
        let sees = |p: &Client| match (viewer, viewer_uid) {
            (None, _) | (_, Some(0)) => true,
            (Some(_), Some(uid)) => p.creds.uid == uid,
            (Some(_), None) => false,
        };
        let secs = |d: Duration| d.as_secs_f64();
        let mut networks: Vec<NetworkStatus> = self
            .networks
            .iter()
            .map(|(name, e)| NetworkStatus {
                name: name.to_string(),
                description: e.config.description.clone(),
                info: e.info.clone(),
                holders: e.holders,
                age_seconds: secs(now.saturating_duration_since(e.created_at)),
                idle_for_seconds: e.idle_since.map(|t| secs(now.saturating_duration_since(t))),
                removal_in_seconds: e
                    .removal_deadline(self.options.network_idle_timeout)
                    .map(|t| secs(t.saturating_duration_since(now))),
                subnet_origin: Some(e.origin.as_str().to_owned()),
                persistent: e.persistent(),
                configuration_pending: e.config_changed,
            })
            .collect();
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        let mut waiting_networks: Vec<WaitingNetwork> = self
            .retries
            .iter()
            .map(|(name, r)| WaitingNetwork {
                name: name.to_string(),
                failed_attempts: r.backoff.failures(),
                last_error: r.last_error.clone(),
                retry_in_seconds: r
                    .backoff
                    .next_attempt()
                    .map_or(0.0, |t| secs(t.saturating_duration_since(now))),
            })
            .collect();
        waiting_networks.sort_by(|a, b| a.name.cmp(&b.name));
        // The first clients by id, capped before their entries are built.
        let mut visible: Vec<(&ClientId, &Client)> =
            self.clients.iter().filter(|(_, p)| sees(p)).collect();
        visible.sort_unstable_by_key(|(id, _)| **id);
        visible.truncate(MAX_STATUS_CLIENTS);
        let clients: Vec<ClientStatus> = visible
            .into_iter()
            .map(|(id, p)| {
                let mut held: Vec<String> = p.held.iter().map(|n| n.to_string()).collect();
                held.sort();
                ClientStatus {
                    id: id.0,
                    pid: p.creds.pid,
                    uid: p.creds.uid,
                    gid: p.creds.gid,
                    networks: held,
                    connected_seconds: secs(now.saturating_duration_since(p.connected_at)),
                }
            })
            .collect();
        StatusReport {
            version: self.daemon.version.clone(),
            pid: self.daemon.pid,
            backend: self.backend.kind().to_owned(),
            uptime_seconds: secs(now.saturating_duration_since(self.started)),
            network_idle_timeout_seconds: secs(self.options.network_idle_timeout),
            exit_idle_timeout_seconds: self.options.exit_idle_timeout.map(secs),
            config_dir: self.daemon.config_dir.clone(),
            log_level: self.daemon.log_level.clone(),
            hidden_clients: self.clients.len() - clients.len(),
            client_count: self.clients.len(),
            networks,
            waiting_networks,
            clients,
            counters: self.counters.clone(),
        }
    }

    /// Checks the internal invariants, for tests, fuzzing and model
    /// checking (feature `test-util`). Visits everything: not for
    /// production paths.
    ///
    /// - each network's holder count equals the number of clients holding it;
    /// - a client holds only live networks, each once, within the limit;
    /// - a network is idle (has a removal deadline) exactly when it has no
    ///   holders, and the deadline table matches;
    /// - an exit deadline exists only while no client is connected.
    #[cfg(any(test, feature = "test-util"))]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (id, p) in &self.clients {
            if p.held.len() > self.options.max_networks_per_client {
                return Err(format!("{id} holds {} networks", p.held.len()));
            }
            for (i, name) in p.held.iter().enumerate() {
                if p.held[..i].contains(name) {
                    return Err(format!("{id} holds {name} twice"));
                }
                if !self.networks.contains_key(name) {
                    return Err(format!("{id} holds {name}, which is not live"));
                }
                *counts.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut idle = 0;
        for (name, e) in &self.networks {
            let expected = counts.get(name.as_str()).copied().unwrap_or(0);
            if e.holders != expected {
                return Err(format!(
                    "{name} counts {} holders but {expected} clients hold it",
                    e.holders
                ));
            }
            match (
                e.holders,
                e.removal_deadline(self.options.network_idle_timeout),
            ) {
                (0, Some(t)) => {
                    idle += 1;
                    if !self.removals.contains(&(t, name.clone())) {
                        return Err(format!("idle {name} has no removal timer"));
                    }
                }
                (0, None) if e.persistent() => {}
                (0, None) => return Err(format!("{name} has no holders and no removal deadline")),
                (_, Some(_)) => return Err(format!("held {name} is marked idle")),
                (_, None) => {}
            }
        }
        if self.removals.len() != idle {
            return Err(format!(
                "{} removal timers for {idle} idle networks",
                self.removals.len()
            ));
        }
        if self.exit_deadline.is_some() && !self.clients.is_empty() {
            return Err("exit deadline set while clients are connected".into());
        }
        for name in self.retries.keys() {
            if self.networks.contains_key(name) {
                return Err(format!("live {name} is still waiting for a retry"));
            }
        }
        if self.retry_deadlines.len() != self.retries.len() {
            return Err(format!(
                "{} retry deadlines for {} networks waiting",
                self.retry_deadlines.len(),
                self.retries.len()
            ));
        }
        Ok(())
    }

    fn count_failure(&mut self, status: Status) {
        bump(&mut self.counters.failures, status.slug());
    }

    fn acquire(
        &mut self,
        now: Instant,
        client: ClientId,
        name: NetworkName,
    ) -> Reply<B::Serialization> {
        // A client that ended its input has left as far as holds go.
        let Some(p) = self.clients.get(&client).filter(|p| !p.input_ended) else {
            return Reply::Error(Status::INTERNAL_ERROR);
        };
        let creds = p.creds;
        let already = p.held.contains(&name);
        let held_count = p.held.len();

        if !already
            && self.networks.get(&name).is_some_and(|e| e.holders == 0)
            && let Err(e) = self.refresh_idle(&name)
        {
            return self.refuse(now, client, &creds, &name, e);
        }

        if let Some(entry) = self.networks.get(&name)
            && !already
            && !self.allowed(&entry.config, &creds)
        {
            return self.refuse(now, client, &creds, &name, AcquireError::NotAllowed);
        }
        if already {
            // Idempotent: the client holds it; answer again, count nothing.
            self.counters.acquires += 1;
            return match self.networks.get(&name) {
                Some(e) => Reply::Acquired {
                    network: e.serialization.clone(),
                    info: e.info.clone(),
                },
                None => Reply::Error(Status::INTERNAL_ERROR),
            };
        }
        if held_count >= self.options.max_networks_per_client {
            let limit = self.options.max_networks_per_client;
            return self.refuse(
                now,
                client,
                &creds,
                &name,
                AcquireError::ClientLimit { limit },
            );
        }

        if !self.networks.contains_key(&name)
            && let Err(e) = self.create(now, &name, &creds)
        {
            return self.refuse(now, client, &creds, &name, e);
        }
        let timeout = self.options.network_idle_timeout;
        let Some(entry) = self.networks.get_mut(&name) else {
            return Reply::Error(Status::INTERNAL_ERROR);
        };
        if entry.holders == 0 {
            if let Some(deadline) = entry.removal_deadline(timeout) {
                self.removals.remove(&(deadline, name.clone()));
                debug!(network = %name, "idle network reused; removal cancelled");
            }
            entry.idle_since = None;
        }
        entry.holders += 1;
        let reply = Reply::Acquired {
            network: entry.serialization.clone(),
            info: entry.info.clone(),
        };
        if let Some(p) = self.clients.get_mut(&client) {
            p.held.push(name);
        }
        self.counters.acquires += 1;
        reply
    }

    /// Creates `name` through the backend, leaving no trace on failure.
    fn create(
        &mut self,
        now: Instant,
        name: &NetworkName,
        creds: &ClientCredentials,
    ) -> Result<(), AcquireError> {
        if name.problem().is_some() {
            // Like the original broker, any string is looked up and an
            // unknown one is "not found". A name outside the accepted form
            // cannot be configured, so it never reaches the configuration
            // source (which could turn it into a file path). The refusal's
            // log line names the problem.
            return Err(AcquireError::NotFound);
        }
        let config = match self.config.lookup(name) {
            Lookup::Found(config) => config,
            Lookup::NotFound => return Err(AcquireError::NotFound),
            Lookup::Broken(e) => return Err(AcquireError::BrokenConfiguration(e)),
        };
        if !self.allowed(&config, creds) {
            return Err(AcquireError::NotAllowed);
        }
        let persistent = config.persistent;
        let result = self.create_with(now, name, config);
        if let Err(error) = &result
            && persistent
        {
            // A persistent network must come up eventually, whoever asked.
            self.schedule_retry(now, name, error);
        }
        result
    }

    /// Creates `name` from `config` through the backend, leaving no trace
    /// on failure.
    fn create_with(
        &mut self,
        now: Instant,
        name: &NetworkName,
        config: NetworkConfig,
    ) -> Result<(), AcquireError> {
        if self.networks.len() >= self.options.max_networks {
            return Err(AcquireError::BrokerLimit {
                limit: self.options.max_networks,
            });
        }
        let (network, origin) = self.create_in_backend(name, &config)?;
        let info = self.backend.info(&network);
        self.remember(name, &config, &info);
        let serialization = self.backend.serialization(&network);
        info!(
            network = %name,
            mode = %info.mode,
            subnet = %info.subnet,
            mask = %info.mask,
            ipv6 = %format_args!("{}/{}", info.ipv6_prefix, info.ipv6_prefix_length),
            %origin,
            "network created"
        );
        self.counters.creations += 1;
        self.events.push_back(Event::NetworkCreated {
            name: name.clone(),
            info: info.clone(),
        });
        self.networks.insert(
            name.clone(),
            Entry {
                network,
                serialization,
                info,
                config,
                holders: 0,
                created_at: now,
                idle_since: None,
                origin,
                config_changed: false,
            },
        );
        self.clear_retry(name);
        Ok(())
    }

    fn release(
        &mut self,
        now: Instant,
        client: ClientId,
        name: &NetworkName,
    ) -> Reply<B::Serialization> {
        let Some(p) = self.clients.get_mut(&client) else {
            return Reply::Error(Status::INTERNAL_ERROR);
        };
        let Some(pos) = p.held.iter().position(|n| n == name) else {
            debug!(client = client.0, network = %name, "release of a network not held");
            return Reply::Error(Status::NOT_FOUND);
        };
        let name = p.held.swap_remove(pos);
        self.counters.releases += 1;
        self.drop_hold(now, name);
        Reply::Released
    }

    fn drop_hold(&mut self, now: Instant, name: NetworkName) {
        let timeout = self.options.network_idle_timeout;
        let Some(entry) = self.networks.get_mut(&name) else {
            return;
        };
        entry.holders = entry.holders.saturating_sub(1);
        if entry.holders == 0 {
            entry.idle_since = Some(now);
            if entry.config_changed {
                self.apply_changed_config(now, name);
            } else if let Some(deadline) = entry.removal_deadline(timeout) {
                debug!(network = %name, after = ?timeout, "last holder left; removal scheduled");
                self.removals.insert((deadline, name));
            }
        }
    }

    fn remove_network(&mut self, name: NetworkName, reason: RemovalReason) {
        if let Some(entry) = self.networks.remove(&name) {
            if let Some(deadline) = entry.removal_deadline(self.options.network_idle_timeout) {
                self.removals.remove(&(deadline, name.clone()));
            }
            self.backend.destroy(entry.network);
            self.counters.removals += 1;
            info!(network = %name, ?reason, "network removed");
            self.events
                .push_back(Event::NetworkRemoved { name, reason });
        }
    }

    /// Logs a refused `acquire` with its reason, within the limit per user
    /// (see `client_log`) and at a level that matches who must act (debug:
    /// a typo of the client's; info: an access decision; warning: the
    /// operator's configuration, a limit or the backend), and builds the
    /// reply.
    fn refuse(
        &mut self,
        now: Instant,
        client: ClientId,
        creds: &ClientCredentials,
        name: &NetworkName,
        error: AcquireError,
    ) -> Reply<B::Serialization> {
        if !self.client_log.admit(now, creds.uid) {
            return Reply::AcquireFailed(error);
        }
        let reason = error.slug();
        match &error {
            AcquireError::NotFound => match name.problem() {
                Some(problem) => debug!(
                    client = client.0,
                    network = %name,
                    reason,
                    "acquire refused: no network can have this name ({problem})"
                ),
                None => {
                    debug!(client = client.0, network = %name, reason, "acquire refused: {error}");
                }
            },
            AcquireError::NotAllowed => {
                info!(client = client.0, uid = creds.uid, network = %name, reason, "acquire refused: {error}");
            }
            AcquireError::BrokenConfiguration(e) if e.is_transient() => {
                error!(
                    client = client.0,
                    network = %name,
                    reason,
                    "cannot read the configuration now, answering internal error: {error}"
                );
            }
            _ => {
                warn!(
                    client = client.0,
                    pid = creds.pid,
                    uid = creds.uid,
                    network = %name,
                    reason,
                    "acquire refused: {error}"
                );
            }
        }
        Reply::AcquireFailed(error)
    }

    fn allowed(&self, config: &NetworkConfig, creds: &ClientCredentials) -> bool {
        if !config.is_restricted() || creds.uid == 0 {
            return true;
        }
        if let Some(users) = &config.allowed_users {
            let hit = users.iter().any(|u| match u {
                Principal::Id(id) => *id == creds.uid,
                Principal::Name(n) => self.accounts.user_id(n) == Some(creds.uid),
            });
            if hit {
                return true;
            }
        }
        if let Some(groups) = &config.allowed_groups {
            let hit = groups.iter().any(|g| {
                let gid = match g {
                    Principal::Id(id) => Some(*id),
                    Principal::Name(n) => self.accounts.group_id(n),
                };
                gid.is_some_and(|gid| {
                    gid == creds.gid || self.accounts.is_member(creds.uid, creds.gid, gid)
                })
            });
            if hit {
                return true;
            }
        }
        false
    }
}

/// Adds one to the counter `key`, allocating the key only the first time
/// (refused requests can come in floods).
fn bump(counters: &mut std::collections::BTreeMap<String, u64>, key: &str) {
    match counters.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counters.insert(key.to_owned(), 1);
        }
    }
}

#[cfg(test)]
mod persistent_tests;
#[cfg(test)]
mod subnet_tests;

#[cfg(test)]
mod tests;
