//! The XPC transport on macOS: the Mach-service listener feeds the
//! [`Driver`] from one serial dispatch queue, as the original C broker does.
//! Type-checked on Linux; not run by us.
//!
//! This file only moves XPC objects: every event (connection, request,
//! disconnection, timer, signal) runs on the same queue and is reported to
//! the driver, so the broker is never used from two threads at once; the
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
use vmnet_broker_core::broker::{ClientCredentials, ClientId, Reply};
use vmnet_broker_macos::dispatch::{OneShotTimer, SignalSource};
use vmnet_broker_macos::xpc::{
    ServiceEvent, XpcConnection, XpcDictionary, XpcListener, XpcObject, XpcRequest, XpcTransaction,
};
use vmnet_broker_proto::text::escape;
use vmnet_broker_proto::{Request, Status, keys};

use super::driver::{Driver, Stop, ignored_signals};
use super::ready::ReadyFd;

struct State<B: Backend> {
    driver: Driver<B>,
    connections: HashMap<u64, XpcConnection>,
    transaction: Option<XpcTransaction>,
}

type Shared<B> = Arc<Mutex<State<B>>>;

/// Serves on the Mach service `name` until the broker exits. Never returns
/// on success: the process exits from the queue.
pub(super) fn serve<B>(name: &str, driver: Driver<B>, ready: Option<ReadyFd>) -> Result<(), String>
where
    B: Backend<Serialization = XpcObject> + Send + 'static,
    B::Network: Send,
{
    let queue = DispatchQueue::new(name, None);
    let state: Shared<B> = Arc::new(Mutex::new(State {
        driver,
        connections: HashMap::new(),
        transaction: None,
    }));
    let timer_cell: Arc<OnceLock<OneShotTimer>> = Arc::new(OnceLock::new());

    let timer = {
        let (state, cell) = (state.clone(), timer_cell.clone());
        OneShotTimer::new(&queue, move || {
            with_state(&state, |s| s.driver.handle_timeout(Instant::now()));
            after_event(&state, &cell);
        })
    };
    let _ = timer_cell.set(timer);

    let mut signals = Vec::new();
    for (signal, label) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let (state, cell) = (state.clone(), timer_cell.clone());
        let source = SignalSource::new(signal, &queue, move || {
            with_state(&state, |s| {
                if let Some(stop) = s.driver.handle_stop_signal(label) {
                    exit_now(s, Some(stop), 0);
                }
            });
            after_event(&state, &cell);
        })
        .map_err(|e| format!("cannot handle {label}: {e}"))?;
        signals.push(source);
    }
    {
        let (state, cell) = (state.clone(), timer_cell.clone());
        let source = SignalSource::new(libc::SIGHUP, &queue, move || {
            with_state(&state, |s| s.driver.handle_reload_signal(Instant::now()));
            // A reload may start retries or change the idle deadlines.
            after_event(&state, &cell);
        })
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
        signals.push(source);
    }
    for (signal, label) in ignored_signals() {
        let state = state.clone();
        let source = SignalSource::new(signal, &queue, move || {
            with_state(&state, |s| s.driver.handle_ignored_signal(&label));
        });
        // A signal that cannot be watched keeps its default action: say
        // so, and serve.
        match source {
            Ok(source) => signals.push(source),
            Err(e) => warn!("{e}; it keeps its default action"),
        }
    }

    let listener = {
        let (state, cell) = (state.clone(), timer_cell.clone());
        XpcListener::start(name, &queue, move |event| {
            on_service_event(&state, event);
            after_event(&state, &cell);
        })
        .map_err(|e| format!("cannot listen on the Mach service {}: {e}", escape(name)))?
    };
    info!(service = %escape(name), "listening on the Mach service");
    if let Some(ready) = ready {
        ready.notify();
    }
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

/// After every input: exit if the broker is idle, keep the transaction in
/// step with the clients, and re-arm the timer.
fn after_event<B: Backend>(state: &Shared<B>, timer: &OnceLock<OneShotTimer>) {
    let deadline = with_state(state, |s| {
        if let Some(stop) = s.driver.poll_stop() {
            exit_now(s, Some(stop), 0);
        }
        match (s.driver.client_count() > 0, s.transaction.is_some()) {
            (true, false) => s.transaction = Some(XpcTransaction::begin()),
            (false, true) => s.transaction = None,
            _ => {}
        }
        s.driver.next_deadline()
    });
    if let Some(timer) = timer.get() {
        timer.set(deadline);
    }
}

/// Releases every network and ends the process.
fn exit_now<B: Backend>(s: &mut State<B>, why: Option<Stop>, code: i32) -> ! {
    match why {
        Some(stop) => s.driver.shutdown(stop),
        None => s.driver.release_all(),
    }
    std::process::exit(code)
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
            admission,
        } => {
            let creds = ClientCredentials {
                pid: credentials.pid,
                uid: credentials.euid,
                gid: credentials.egid,
            };
            // A refusal is logged by the driver.
            match s.driver.handle_connect(now, ClientId(peer.0), creds) {
                Ok(()) => {
                    s.connections.insert(peer.0, connection);
                }
                // Cancelled by the listener, never activated.
                Err(_) => admission.refuse(),
            }
        }
        ServiceEvent::Request { peer, request } => answer(s, ClientId(peer.0), &request, now),
        ServiceEvent::Disconnected { peer } => {
            s.connections.remove(&peer.0);
            s.driver.handle_disconnect(now, ClientId(peer.0));
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
                exit_now(s, None, 1);
            }
            warn!("listener error: {description}");
        }
    });
}

/// Answers one request with the reply object bound to it
/// (`xpc_dictionary_create_reply`), created once: if filling it fails, the
/// same object carries error 7, so the client always gets its reply.
fn answer<B>(s: &mut State<B>, peer: ClientId, request: &XpcRequest, now: Instant)
where
    B: Backend<Serialization = XpcObject>,
{
    let decoded = Request::decode(request.message(), s.driver.max_name());
    let reply = s.driver.handle_request(now, peer, decoded);
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
        // A non-zero error wins over anything already set (the upstream
        // client's rule), so a half-filled reply still reads as error 7.
        if let Err(e) = dict.set_i64(keys::ERROR, Status::INTERNAL_ERROR.code()) {
            warn!(peer = peer.0, "cannot set the error in the reply: {e}");
        }
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
        refused @ (Reply::Error(_) | Reply::AcquireFailed(_)) => {
            dict.set_i64(keys::ERROR, refused.status().code())?;
        }
    }
    Ok(())
}
