//! `vmnet-broker serve`: builds the broker from the options and runs a
//! transport around it.
//!
//! [`driver`] holds what both transports share (decoding, the broker,
//! encoding, signal and exit policy); `socket` (the development transport)
//! and `xpc` (the Mach service, macOS only) move bytes or XPC objects.

pub(crate) mod driver;
mod listener;
#[allow(
    unsafe_code,
    reason = "taking ownership of the inherited --ready-fd descriptor is the one unsafe step"
)]
mod ready;
mod socket;
#[cfg(any(target_os = "macos", feature = "fake-apple"))]
mod vmnet_backend;
#[cfg(any(target_os = "macos", feature = "fake-apple"))]
mod xpc;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config_dir::ConfigDir;
use tracing::{error, info, warn};
use vmnet_broker_core::backend::Backend;
use vmnet_broker_core::backend::sim::{FailurePlan, SimBackend};
use vmnet_broker_core::broker::{Broker, BrokerOptions, DaemonInfo};
use vmnet_broker_proto::text::escape_path;

use crate::cli::{BackendKind, ServeArgs};
use crate::config_owner::OwnerRule;
use crate::hostnet::SystemHostNetworks;
use crate::state_store::{StateStore, default_state_dir};
use crate::sys::{self, SystemAccounts};
use crate::{EXIT_FAILURE, EXIT_USAGE, logging};

pub(crate) use driver::{Driver, WireValue};
use ready::ReadyFd;

/// The broker type every driver runs.
pub(crate) type DaemonBroker<B> = Broker<B, ConfigDir, SystemAccounts>;

/// Runs the daemon until it exits; returns the process exit code.
pub(crate) fn run(args: ServeArgs) -> ExitCode {
    // Taken over first, before the broker opens anything of its own.
    let ready = match args.ready_fd.map(ReadyFd::inherit).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vmnet-broker: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = logging::init(&args.log_level, args.log_format, &args.mach_service) {
        eprintln!("vmnet-broker: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let backend = args.backend.unwrap_or(if cfg!(target_os = "macos") {
        BackendKind::Vmnet
    } else {
        BackendKind::Simulated
    });
    let result = match backend {
        BackendKind::Simulated => {
            warn!(
                "using the simulated backend: networks exist only inside this broker; no VM can use them"
            );
            let mut sim = SimBackend::new(args.sim_seed.unwrap_or_else(fastrand_seed));
            sim.set_host_networks(SystemHostNetworks);
            if !args.sim_fail_create.is_empty() {
                info!(names = ?args.sim_fail_create, "simulated creation failures enabled");
                sim.set_failures(FailurePlan {
                    names: args.sim_fail_create.clone(),
                    ..FailurePlan::default()
                });
            }
            serve_with(&args, sim, ready)
        }
        BackendKind::Vmnet => serve_vmnet(&args, ready),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The vmnet backend: over XPC on the Mach service, or over the
/// development socket with `--socket`.
#[cfg(any(target_os = "macos", feature = "fake-apple"))]
fn serve_vmnet(args: &ServeArgs, ready: Option<ReadyFd>) -> Result<(), String> {
    let backend = vmnet_backend::VmnetBackend;
    if args.socket.is_some() {
        return serve_with(args, backend, ready);
    }
    let driver = build_driver(args, backend);
    xpc::serve(&args.mach_service, driver, ready)
}

#[cfg(not(any(target_os = "macos", feature = "fake-apple")))]
fn serve_vmnet(_args: &ServeArgs, _ready: Option<ReadyFd>) -> Result<(), String> {
    Err("the vmnet backend exists only on macOS 26 or later; use --backend simulated".into())
}

/// Runs the socket transport with `backend`.
fn serve_with<B>(args: &ServeArgs, backend: B, ready: Option<ReadyFd>) -> Result<(), String>
where
    B: Backend,
    B::Serialization: WireValue,
{
    let path = args
        .socket
        .clone()
        .unwrap_or_else(vmnet_broker_client::default_socket_path);
    // Before the bind: from the moment the socket file exists, no signal
    // may end the process behind the loop's back.
    let signals = socket::CaughtSignals::install()
        .map_err(|e| format!("cannot install the signal handlers: {e}"))?;
    let listener = listener::bind(&path).map_err(|e| e.to_string())?;
    // After the bind: a broker that cannot listen (another one runs, the
    // path is bad) creates no state directory and no persistent network.
    let driver = build_driver(args, backend);
    let server = socket::Server::new(
        driver,
        listener,
        signals,
        args.max_request_size,
        args.max_clients,
    )
    .map_err(|e| format!("cannot start the event loop: {e}"))?;
    // The socket listens and the signal handlers are in place: connections
    // made from now on wait in the backlog until the loop takes them.
    if let Some(ready) = ready {
        ready.notify();
    }
    server.run().map_err(|e| format!("event loop failed: {e}"))
}

/// The driver around a broker configured from the command line.
/// The configuration is read once here (persistent networks start).
pub(crate) fn build_driver<B: Backend>(args: &ServeArgs, backend: B) -> Driver<B> {
    let mut driver = Driver::new(
        build_broker(args, backend),
        args.max_request_size,
        usize::from(args.max_name_length),
    );
    driver.reload(Instant::now());
    driver
}

/// The broker, configured from the command line.
fn build_broker<B: Backend>(args: &ServeArgs, backend: B) -> DaemonBroker<B> {
    let secs = |s: f64| Duration::from_secs_f64(s);
    let options = BrokerOptions {
        network_idle_timeout: secs(args.network_idle_timeout.unwrap_or(args.idle_timeout)),
        exit_idle_timeout: if args.no_idle_exit {
            None
        } else {
            Some(secs(args.exit_idle_timeout.unwrap_or(args.idle_timeout)))
        },
        max_networks_per_client: args.max_networks_per_client,
        max_clients: args.max_clients,
        max_clients_per_user: args.max_clients_per_user,
        max_networks: args.max_networks,
    };
    let euid = sys::effective_uid();
    let rule = OwnerRule::for_uid(euid);
    let config = ConfigDir::with_rule(&args.config_dir, rule, !args.insecure_config_permissions);
    if args.insecure_config_permissions {
        warn!("configuration files are read whatever their owner and permissions");
    } else {
        info!("configuration ownership: {rule}");
    }
    if let Some(limit) = sys::raise_fd_limit() {
        info!(open_files = limit, "file descriptor limit");
    }
    info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        backend = backend.kind(),
        config_dir = %escape_path(&args.config_dir),
        network_idle_timeout = ?options.network_idle_timeout,
        exit_idle_timeout = ?options.exit_idle_timeout,
        "vmnet-broker starting"
    );
    let daemon = DaemonInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        config_dir: Some(args.config_dir.display().to_string()),
        log_level: Some(args.log_level.clone()),
    };
    let mut broker = Broker::new(
        options,
        backend,
        config,
        SystemAccounts,
        daemon,
        Instant::now(),
    );
    broker.set_host_networks(SystemHostNetworks);
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| default_state_dir(args.socket.as_deref()));
    match StateStore::open(&state_dir) {
        Ok(store) => {
            let (subnets, warnings) = store.load();
            for w in warnings {
                warn!("{w}");
            }
            info!(
                state_dir = %escape_path(&state_dir),
                networks = subnets.len(),
                "remembered subnets loaded"
            );
            broker.set_remembered(subnets);
            broker.set_subnet_store(store);
        }
        Err(e) => warn!("{e}; subnets are not remembered across restarts"),
    }
    broker
}

/// A seed for the simulation when none is given: time and pid, which is
/// plenty for picking IPv6 prefixes.
fn fastrand_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_secs() << 30) ^ u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}
