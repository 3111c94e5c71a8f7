//! The XPC driver on macOS: the Mach-service listener feeds the broker from
//! one serial dispatch queue, as the original C broker does. Type-checked on
//! Linux; not run by us.
//!
//! Every event (connection, request, disconnection, timer, signal) runs on
//! the same queue, so the broker is never used from two threads at once; the
//! mutex around it only satisfies the type system. A transaction is open
//! while clients are connected, so launchd does not kill the broker under
//! running VMs. Every exit path (idle, signal, listener failure) releases
//! every network before the process ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use dispatch2::DispatchQueue;
use tracing::{error, info, warn};
use vmnet_broker_core::backend::Backend;
use vmnet_broker_core::broker::{ClientCredentials, ClientId, Event, Reply};
use vmnet_broker_macos::dispatch::{OneShotTimer, SignalSource};
use vmnet_broker_macos::xpc::{
    ServiceEvent, XpcConnection, XpcDictionary, XpcListener, XpcObject, XpcRequest, XpcTransaction,
};
use vmnet_broker_proto::{Request, keys};

use super::DaemonBroker;

struct State<B: Backend> {
    broker: DaemonBroker<B>,
    connections: HashMap<u64, XpcConnection>,
    transaction: Option<XpcTransaction>,
    max_name: usize,
}

type Shared<B> = Arc<Mutex<State<B>>>;

/// Serves on the Mach service `name` until the broker exits. Never returns
/// on success: the process exits from the queue.
pub fn serve<B>(name: &str, broker: DaemonBroker<B>, max_name: usize) -> Result<(), String>
where
    B: Backend<Serialization = XpcObject> + Send + 'static,
    B::Network: Send,
{
    let queue = DispatchQueue::new(name, None);
    let state: Shared<B> = Arc::new(Mutex::new(State {
        broker,
        connections: HashMap::new(),
        transaction: None,
        max_name,
    }));
    let timer_cell: Arc<OnceLock<OneShotTimer>> = Arc::new(OnceLock::new());

    let timer = {
        let (state, cell) = (state.clone(), timer_cell.clone());
        OneShotTimer::new(&queue, move || {
            with_state(&state, |s| s.broker.handle_timeout(Instant::now()));
            after_event(&state, &cell);
        })
    };
    let _ = timer_cell.set(timer);

    let mut signals = Vec::new();
    for (signal, label) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let (state, cell) = (state.clone(), timer_cell.clone());
        let source = SignalSource::new(signal, &queue, move || {
            on_signal(&state, label);
            after_event(&state, &cell);
        })
        .map_err(|e| format!("cannot handle {label}: {e}"))?;
        signals.push(source);
    }

    let listener = {
        let (state, cell) = (state.clone(), timer_cell.clone());
        XpcListener::start(name, &queue, move |event| {
            on_service_event(&state, event);
            after_event(&state, &cell);
        })
        .map_err(|e| format!("cannot listen on the Mach service {name:?}: {e}"))?
    };
    info!(service = name, "listening on the Mach service");
    after_event(&state, &timer_cell);
    // The listener, signal sources and timer live until the process exits.
    std::mem::forget(listener);
    std::mem::forget(signals);
    dispatch2::dispatch_main()
}

fn with_state<B: Backend, T>(state: &Shared<B>, f: impl FnOnce(&mut State<B>) -> T) -> T {
    let mut guard = match state.lock() {
        Ok(g) => g,
        // A handler panicked while holding the lock; the state is still
        // consistent between inputs, so keep serving.
        Err(poisoned) => poisoned.into_inner(),
    };
    f(&mut guard)
}

/// After every input: drain events (exiting if the broker is idle), keep the
/// transaction in step with the clients, and re-arm the timer.
fn after_event<B: Backend>(state: &Shared<B>, timer: &OnceLock<OneShotTimer>) {
    let deadline = with_state(state, |s| {
        let mut exit = false;
        while let Some(event) = s.broker.poll_event() {
            exit |= event == Event::IdleExit;
        }
        if exit {
            info!("no clients for the idle delay; exiting");
            exit_now(s, 0);
        }
        match (s.broker.client_count() > 0, s.transaction.is_some()) {
            (true, false) => s.transaction = Some(XpcTransaction::begin()),
            (false, true) => s.transaction = None,
            _ => {}
        }
        s.broker.poll_timeout()
    });
    if let Some(timer) = timer.get() {
        timer.set(deadline);
    }
}

fn exit_now<B: Backend>(s: &mut State<B>, code: i32) -> ! {
    let released = s.broker.shutdown(Instant::now());
    while s.broker.poll_event().is_some() {}
    info!(networks = released, "all networks released; goodbye");
    std::process::exit(code)
}

fn on_signal<B: Backend>(state: &Shared<B>, name: &str) {
    with_state(state, |s| {
        if name == "SIGHUP" {
            super::reload(&mut s.broker);
            return;
        }
        let clients = s.broker.client_count();
        if clients > 0 {
            warn!(
                clients,
                "{name} received while clients are connected; ignoring it so running VMs keep their networks"
            );
        } else {
            info!("{name} with no clients connected; exiting");
            exit_now(s, 0);
        }
    });
}

fn on_service_event<B>(state: &Shared<B>, event: ServiceEvent)
where
    B: Backend<Serialization = XpcObject>,
{
    let now = Instant::now();
    with_state(state, |s| match event {
        ServiceEvent::Connected {
            peer,
            connection,
            credentials,
        } => {
            let creds = ClientCredentials {
                pid: credentials.pid,
                uid: credentials.euid,
                gid: credentials.egid,
            };
            match s.broker.handle_connect(now, ClientId(peer.0), creds) {
                Ok(()) => {
                    s.connections.insert(peer.0, connection);
                }
                Err(e) => {
                    warn!(pid = creds.pid, uid = creds.uid, "{e}");
                    connection.cancel();
                }
            }
        }
        ServiceEvent::Request { peer, request } => answer(s, ClientId(peer.0), &request, now),
        ServiceEvent::Disconnected { peer } => {
            s.connections.remove(&peer.0);
            s.broker.handle_disconnect(now, ClientId(peer.0));
        }
        ServiceEvent::TerminationImminent { peer } => {
            info!(peer = peer.0, "the system asks this service to exit soon");
        }
        ServiceEvent::Interrupted { peer } => {
            warn!(peer = peer.0, "client connection interrupted");
        }
        ServiceEvent::PeerError { peer, description } => {
            warn!(peer = peer.0, "client connection error: {description}");
        }
        ServiceEvent::ListenerError {
            invalid,
            description,
        } => {
            if invalid {
                error!(
                    "the Mach service listener is invalid ({description}); is the name listed in MachServices of the launchd job?"
                );
                exit_now(s, 1);
            }
            warn!("listener error: {description}");
        }
    });
}

fn answer<B>(s: &mut State<B>, peer: ClientId, request: &XpcRequest, now: Instant)
where
    B: Backend<Serialization = XpcObject>,
{
    let reply = match Request::decode(request.message(), s.max_name) {
        Ok(r) => s.broker.handle_request(now, peer, r),
        Err(e) => s.broker.handle_bad_request(now, peer, &e),
    };
    let mut dict = match request.create_reply() {
        Ok(d) => d,
        Err(e) => {
            warn!(
                peer = peer.0,
                "cannot reply (the message expected no reply?): {e}"
            );
            return;
        }
    };
    if let Err(e) = fill(&mut dict, reply) {
        warn!(peer = peer.0, "cannot build the reply: {e}");
        dict = XpcDictionary::new();
        let _ = dict.set_i64(
            keys::ERROR,
            vmnet_broker_proto::Status::INTERNAL_ERROR.code(),
        );
    }
    if let Err(e) = request.send_reply(&dict) {
        warn!(peer = peer.0, "cannot send the reply: {e}");
    }
}

fn fill(
    dict: &mut XpcDictionary,
    reply: Reply<XpcObject>,
) -> Result<(), vmnet_broker_macos::xpc::XpcError> {
    match reply {
        Reply::Acquired { network, info } => {
            dict.set_value(keys::NETWORK, &network)?;
            if let Ok(v) = serde_json::to_value(&info) {
                dict.set_json(keys::NETWORK_INFO, &v)?;
            }
        }
        Reply::Released => {}
        Reply::Status(report) => {
            if let Ok(v) = serde_json::to_value(&*report) {
                dict.set_json(keys::STATUS, &v)?;
            }
        }
        failed @ (Reply::Error(_) | Reply::AcquireFailed(_)) => {
            dict.set_i64(keys::ERROR, failed.status().code())?;
        }
    }
    Ok(())
}
