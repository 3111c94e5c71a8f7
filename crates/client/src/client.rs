//! [`Client`], [`Network`] and the process-wide client.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use vmnet_broker_proto::{NetworkInfo, StatusReport};

use crate::Error;
use crate::timeout::{clamp_timeout, env_timeout};
use crate::transport::{Serialization, Transport};

/// A connection to the broker.
///
/// The broker ties every hold to the connection it was made on, so a
/// `Client` is the unit of ownership: when the connection closes, the
/// broker drops all of its holds. The connection closes when the `Client`,
/// every clone of it and every [`Network`] acquired through it have been
/// dropped. A `Network` keeps the connection open on its own, so it stays
/// valid after the `Client` that made it is gone.
///
/// A `Client` is `Send + Sync` and cheap to clone (clones share the one
/// connection). Requests from several threads are sent one at a time over
/// that connection; each waits for its reply before the next is sent.
///
/// ```no_run
/// use vmnet_broker_client::Client;
///
/// let client = Client::connect()?;
/// let network = client.acquire("shared")?;
/// if let Some(info) = network.info() {
///     println!("{} is {}/{}", network.name(), info.subnet, info.prefix_len());
/// }
/// network.release()?;
/// # Ok::<(), vmnet_broker_client::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
}

struct State {
    transport: Transport,
    /// Holds per network name on this connection. The broker counts one
    /// hold per connection, so `release` is sent only when the last handle
    /// for a name goes.
    holds: HashMap<String, Hold>,
    /// Source of [`Hold::id`].
    next_hold: u64,
    /// The transport epoch `holds` belongs to.
    epoch: u64,
}

/// This connection's hold on one network.
#[derive(Debug)]
struct Hold {
    /// Tells this hold from an earlier one on the same name that was
    /// released with [`Client::release`]: handles of the old one must not
    /// release the new one.
    id: u64,
    /// Live handles (including detached ones, which never go).
    handles: usize,
}

impl State {
    /// Forgets holds the broker has dropped because the connection was
    /// lost.
    fn sync_epoch(&mut self) {
        let now = self.transport.epoch();
        if now != self.epoch {
            self.holds.clear();
            self.epoch = now;
        }
    }
}

impl Client {
    /// Connects to the broker the usual way for this system.
    ///
    /// On macOS this is the XPC Mach service `com.github.nirs.vmnet-broker`,
    /// unless `VMNET_BROKER_SOCKET` is set, in which case it is that
    /// development socket. Elsewhere it is the development socket found by
    /// [`crate::default_socket_path`].
    ///
    /// Connecting and each request wait at most `$VMNET_BROKER_TIMEOUT`
    /// seconds, or [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT) when it is
    /// unset ([`crate::env_timeout`]); an invalid value fails with
    /// [`Error::InvalidTimeout`] before anything is sent.
    pub fn connect() -> Result<Self, Error> {
        Self::connect_with_timeout(env_timeout()?)
    }

    /// Connects to a broker's development socket at `path`.
    ///
    /// ```no_run
    /// let client = vmnet_broker_client::Client::connect_socket("/tmp/vmnet-broker-test.sock")?;
    /// # Ok::<(), vmnet_broker_client::Error>(())
    /// ```
    ///
    /// The connection is refused with [`Error::UntrustedServer`] unless the
    /// process serving the socket runs as root or as this process's user.
    /// Connecting and each request wait as [`Client::connect`] says.
    pub fn connect_socket(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::connect_socket_with_timeout(path, env_timeout()?)
    }

    /// [`Client::connect_socket`] with another bound on connecting and on
    /// each request; a broker that does not answer in time gives
    /// [`Error::Timeout`] ([`Status::XPC_FAILURE`](crate::Status::XPC_FAILURE)).
    /// The timeout is brought within [`MIN_TIMEOUT`](crate::MIN_TIMEOUT)
    /// and [`MAX_TIMEOUT`](crate::MAX_TIMEOUT).
    pub fn connect_socket_with_timeout(
        path: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        Ok(Self::with_transport(Transport::socket(
            path.as_ref(),
            clamp_timeout(timeout),
        )?))
    }

    /// [`Client::connect`] with another timeout (see
    /// [`Client::connect_socket_with_timeout`]). Over XPC it bounds each
    /// request (connecting does not wait there).
    pub fn connect_with_timeout(timeout: Duration) -> Result<Self, Error> {
        #[cfg(target_os = "macos")]
        {
            match std::env::var_os(crate::SOCKET_ENV) {
                Some(path) if !path.is_empty() => Self::connect_socket_with_timeout(path, timeout),
                _ => Self::connect_xpc_service_with_timeout(
                    vmnet_broker_proto::MACH_SERVICE_NAME,
                    timeout,
                ),
            }
        }
        #[cfg(not(target_os = "macos"))]
        {
            Self::connect_socket_with_timeout(crate::default_socket_path(), timeout)
        }
    }

    /// Changes how long connecting again (development socket) and each
    /// request (socket and XPC) may take, from the next request on. Over
    /// XPC a request that times out cancels the connection: the holds are
    /// gone and the next request connects again. The timeout is brought
    /// within [`MIN_TIMEOUT`](crate::MIN_TIMEOUT) and
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT).
    pub fn set_timeout(&self, timeout: Duration) {
        self.inner
            .lock()
            .transport
            .set_timeout(clamp_timeout(timeout));
    }

    /// Blocks until the connection to the broker is lost (the broker
    /// exited, crashed or dropped this client) and returns why. Every
    /// hold of this client is gone by then; later requests connect again.
    ///
    /// Requests may still be made from other threads meanwhile. The wait
    /// uses its own duplicate of the connection's descriptor, so the
    /// connection (and every hold on it) stays open while a `wait_closed`
    /// is in progress, even if every `Client` and `Network` is dropped;
    /// call it from a thread that ends with the process, as `vmnet-broker
    /// acquire --hold` does. Over XPC the connection is probed with a
    /// `status` request every few seconds.
    pub fn wait_closed(&self) -> Error {
        let (watch, is_socket) = {
            let state = self.inner.lock();
            (
                state.transport.watch(),
                matches!(state.transport, Transport::Socket(_)),
            )
        };
        let error = match watch {
            Some(socket) => crate::transport::wait_closed(&socket),
            // A socket client that is not connected holds nothing.
            None if is_socket => Error::Closed,
            None => return self.probe_until_lost(),
        };
        let mut state = self.inner.lock();
        state.transport.mark_lost();
        state.sync_epoch();
        error
    }

    /// The XPC form of [`Client::wait_closed`] (and the answer when no
    /// socket connection is open).
    fn probe_until_lost(&self) -> Error {
        let start = self.inner.lock().epoch;
        loop {
            match self.status() {
                Err(e) if e.is_transport() => return e,
                _ if self.inner.lock().epoch != start => return Error::Closed,
                _ => std::thread::sleep(Duration::from_secs(2)),
            }
        }
    }

    /// Connects to the broker's XPC Mach service
    /// (`com.github.nirs.vmnet-broker`), whatever the environment says.
    ///
    /// As with any XPC connection, this does not contact the broker yet:
    /// a broker that cannot be reached shows up as
    /// [`Status::XPC_FAILURE`](crate::Status::XPC_FAILURE) on the first
    /// request.
    #[cfg(any(target_os = "macos", feature = "fake-apple"))]
    pub fn connect_xpc() -> Result<Self, Error> {
        Self::connect_xpc_service(vmnet_broker_proto::MACH_SERVICE_NAME)
    }

    /// Connects to a broker on the XPC Mach service `service` (a broker
    /// started with `serve --mach-service NAME`).
    ///
    /// Errors: [`Error::InvalidRequest`] if the name holds a NUL byte.
    #[cfg(any(target_os = "macos", feature = "fake-apple"))]
    pub fn connect_xpc_service(service: &str) -> Result<Self, Error> {
        Self::connect_xpc_service_with_timeout(service, env_timeout()?)
    }

    /// [`Client::connect_xpc_service`] with another bound on each request
    /// (see [`Client::set_timeout`]).
    #[cfg(any(target_os = "macos", feature = "fake-apple"))]
    pub fn connect_xpc_service_with_timeout(
        service: &str,
        timeout: Duration,
    ) -> Result<Self, Error> {
        Ok(Self::with_transport(Transport::xpc(
            service,
            clamp_timeout(timeout),
        )?))
    }

    fn with_transport(transport: Transport) -> Self {
        let epoch = transport.epoch();
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    transport,
                    holds: HashMap::new(),
                    next_hold: 0,
                    epoch,
                }),
            }),
        }
    }

    /// Acquires the network `name`: the broker creates it on first use, or
    /// returns the live one, and holds it for this connection until the
    /// returned [`Network`] is released or dropped.
    ///
    /// Acquiring a name this client already holds is allowed and returns a
    /// second handle; the broker counts one hold per connection, so the
    /// client sends `release` only when the last handle for the name goes.
    ///
    /// The name is sent as given; the broker decides whether it is valid
    /// ([`Status::INVALID_REQUEST`](crate::Status::INVALID_REQUEST)) and
    /// whether it exists ([`Status::NOT_FOUND`](crate::Status::NOT_FOUND)).
    pub fn acquire(&self, name: &str) -> Result<Network, Error> {
        let mut state = self.inner.lock();
        let result = state.transport.acquire(name);
        state.sync_epoch();
        let (serialization, info) = result?;
        let state = &mut *state;
        let hold = state.holds.entry(name.to_owned()).or_insert_with(|| {
            state.next_hold += 1;
            Hold {
                id: state.next_hold,
                handles: 0,
            }
        });
        hold.handles += 1;
        Ok(Network {
            inner: Arc::clone(&self.inner),
            name: name.to_owned(),
            info,
            serialization,
            hold: hold.id,
            epoch: state.epoch,
            live: true,
        })
    }

    /// Drops this connection's hold on `name` now, whatever [`Network`]
    /// handles for it still exist. Those handles become inert: releasing
    /// one reports [`Status::NOT_FOUND`](crate::Status::NOT_FOUND), and
    /// dropping one does nothing.
    ///
    /// Releasing a network this connection does not hold is an error from
    /// the broker, [`Status::NOT_FOUND`](crate::Status::NOT_FOUND).
    pub fn release(&self, name: &str) -> Result<(), Error> {
        let mut state = self.inner.lock();
        state.holds.remove(name);
        let result = state.transport.release(name);
        state.sync_epoch();
        result
    }

    /// Asks the broker to describe itself: networks, holders, clients and
    /// counters.
    ///
    /// ```no_run
    /// let client = vmnet_broker_client::Client::connect()?;
    /// for net in client.status()?.networks {
    ///     println!("{}: {} holders", net.name, net.holders);
    /// }
    /// # Ok::<(), vmnet_broker_client::Error>(())
    /// ```
    pub fn status(&self) -> Result<StatusReport, Error> {
        let mut state = self.inner.lock();
        let result = state.transport.status();
        state.sync_epoch();
        result
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Client");
        // Never wait for a request in flight just to print.
        match self.inner.state.try_lock() {
            Ok(state) => d
                .field("transport", &state.transport.describe())
                .field("holds", &state.holds),
            Err(_) => d.field("state", &"<busy>"),
        };
        d.finish()
    }
}

impl Inner {
    /// Locks the connection. A panic in another thread while it held the
    /// lock leaves the state usable (every update is a single step), so a
    /// poisoned lock is taken over rather than propagated.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops one handle of the hold `hold` on `name`, made in `epoch`.
    fn release(&self, name: &str, hold: u64, epoch: u64) -> Result<(), Error> {
        let mut state = self.lock();
        state.sync_epoch();
        if epoch != state.epoch {
            return Err(Error::ConnectionLost {
                network: name.to_owned(),
            });
        }
        match state.holds.get_mut(name) {
            Some(h) if h.id == hold && h.handles > 1 => {
                h.handles -= 1;
                return Ok(());
            }
            Some(h) if h.id == hold => {}
            // Released already with `Client::release`.
            _ => {
                return Err(Error::Broker {
                    command: vmnet_broker_proto::commands::RELEASE,
                    network: Some(name.to_owned()),
                    status: crate::Status::NOT_FOUND,
                });
            }
        }
        state.holds.remove(name);
        let result = state.transport.release(name);
        state.sync_epoch();
        result
    }
}

/// A network held through a [`Client`].
///
/// The hold lasts until [`Network::release`] is called or the `Network` is
/// dropped (dropping releases too, ignoring errors), or until the
/// connection closes. The `Network` keeps its connection open, so it stays
/// valid even after the `Client` that acquired it has been dropped.
///
/// Two handles for the same name from one client share the broker's single
/// hold: it is released when the last of them goes.
pub struct Network {
    inner: Arc<Inner>,
    name: String,
    info: Option<NetworkInfo>,
    serialization: Serialization,
    /// The [`Hold`] this handle belongs to.
    hold: u64,
    epoch: u64,
    /// False once released or detached, so that `Drop` does nothing.
    live: bool,
}

impl Network {
    /// The network's name, as passed to [`Client::acquire`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Mode and addresses, if the broker sent them (ours does; the original
    /// C broker does not).
    pub fn info(&self) -> Option<&NetworkInfo> {
        self.info.as_ref()
    }

    /// The network's serialization when it came over the development
    /// socket: a JSON value that only the broker's backend understands.
    /// `None` over XPC.
    pub fn serialization_json(&self) -> Option<&Value> {
        match &self.serialization {
            Serialization::Json(v) => Some(v),
            #[cfg(any(target_os = "macos", feature = "fake-apple"))]
            Serialization::Xpc(_) => None,
        }
    }

    /// The network's serialization when it came over XPC: the object to
    /// pass to `vmnet_network_create_with_serialization`. `None` over the
    /// development socket.
    ///
    /// [`XpcSerialization::retained`](crate::XpcSerialization::retained)
    /// gives an owned reference that outlives the `Network`; the raw
    /// pointer from `as_ptr` is valid only while the `Network` lives.
    #[cfg(any(target_os = "macos", feature = "fake-apple"))]
    pub fn xpc_serialization(&self) -> Option<&crate::XpcSerialization> {
        match &self.serialization {
            Serialization::Xpc(o) => Some(o),
            Serialization::Json(_) => None,
        }
    }

    /// Drops this handle's hold. The broker's hold for the connection is
    /// released when this is the last handle for the name on the client.
    ///
    /// Errors: [`Error::ConnectionLost`] if the connection broke since the
    /// network was acquired (the broker has dropped the hold already), or
    /// whatever the broker answered.
    pub fn release(mut self) -> Result<(), Error> {
        self.live = false;
        self.inner.release(&self.name, self.hold, self.epoch)
    }

    /// Gives up this handle but keeps the hold for as long as the
    /// connection stays open: it ends when the [`Client`] and every other
    /// [`Network`] of it have been dropped, or the process exits. This is
    /// how the original C client behaves.
    pub fn detach(mut self) {
        self.live = false;
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if self.live {
            self.live = false;
            // Best effort: there is nobody to report a failure to, and a
            // failed release leaves nothing to clean up on this side.
            let _ = self.inner.release(&self.name, self.hold, self.epoch);
        }
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("name", &self.name)
            .field("info", &self.info)
            .field("serialization", &self.serialization)
            .finish_non_exhaustive()
    }
}

/// The process-wide client used by [`acquire_network`]: connected on first
/// successful use and never closed.
static DEFAULT_CLIENT: Mutex<Option<Client>> = Mutex::new(None);

/// The process-wide client, connecting it on first use with
/// [`Client::connect`]. A failed connection is not remembered: the next
/// call tries again.
pub fn default_client() -> Result<Client, Error> {
    let mut slot = DEFAULT_CLIENT
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(client) = &*slot {
        return Ok(client.clone());
    }
    let client = Client::connect()?;
    *slot = Some(client.clone());
    Ok(client)
}

/// Acquires `name` through the process-wide client, like the original C
/// client's `vmnet_broker_acquire_network`: one connection, made on first
/// use and kept open for the life of the process.
///
/// The returned [`Network`] releases its hold when dropped; call
/// [`Network::detach`] to keep the hold until the process exits, as the C
/// client does.
///
/// ```no_run
/// let network = vmnet_broker_client::acquire_network("shared")?;
/// println!("{:?}", network.info());
/// network.detach();
/// # Ok::<(), vmnet_broker_client::Error>(())
/// ```
pub fn acquire_network(name: &str) -> Result<Network, Error> {
    default_client()?.acquire(name)
}
