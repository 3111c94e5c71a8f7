//! `vmnet-broker serve`: builds the broker from the options and runs a
//! transport around it.

mod listener;
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

use crate::cli::{BackendKind, ServeArgs};
use crate::sys::{self, SystemAccounts};
use crate::{EXIT_FAILURE, EXIT_USAGE, logging};

pub use socket::WireValue;

/// The broker type every driver runs.
pub type DaemonBroker<B> = Broker<B, ConfigDir, SystemAccounts>;

/// Runs the daemon until it exits; returns the process exit code.
pub fn run(args: ServeArgs) -> ExitCode {
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
            if !args.sim_fail_create.is_empty() {
                info!(names = ?args.sim_fail_create, "simulated creation failures enabled");
                sim.set_failures(FailurePlan {
                    names: args.sim_fail_create.clone(),
                    ..FailurePlan::default()
                });
            }
            serve_with(&args, sim)
        }
        BackendKind::Vmnet => serve_vmnet(&args),
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
fn serve_vmnet(args: &ServeArgs) -> Result<(), String> {
    let backend = vmnet_backend::VmnetBackend;
    if args.socket.is_some() {
        return serve_with(args, backend);
    }
    let broker = build_broker(args, backend);
    xpc::serve(
        &args.mach_service,
        broker,
        usize::from(args.max_name_length),
    )
}

#[cfg(not(any(target_os = "macos", feature = "fake-apple")))]
fn serve_vmnet(_args: &ServeArgs) -> Result<(), String> {
    Err("the vmnet backend exists only on macOS 26 or later; use --backend simulated".into())
}

/// Runs the socket transport with `backend`.
fn serve_with<B>(args: &ServeArgs, backend: B) -> Result<(), String>
where
    B: Backend,
    B::Serialization: WireValue,
{
    let broker = build_broker(args, backend);
    let path = args
        .socket
        .clone()
        .unwrap_or_else(vmnet_broker_client::default_socket_path);
    let listener = listener::bind(&path).map_err(|e| e.to_string())?;
    socket::Server::new(
        broker,
        listener,
        args.max_request_size,
        args.max_name_length,
    )
    .map_err(|e| format!("cannot start the event loop: {e}"))?
    .run()
    .map_err(|e| format!("event loop failed: {e}"))
}

/// The broker, configured from the command line.
pub fn build_broker<B: Backend>(args: &ServeArgs, backend: B) -> DaemonBroker<B> {
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
        max_networks: args.max_networks,
    };
    let euid = sys::effective_uid();
    let config = ConfigDir::new(&args.config_dir)
        .trust_owners([euid])
        .strict_permissions(!args.insecure_config_permissions);
    if args.insecure_config_permissions {
        warn!("configuration files are read whatever their owner and permissions");
    }
    if let Some(limit) = sys::raise_fd_limit() {
        info!(open_files = limit, "file descriptor limit");
    }
    info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        backend = backend.kind(),
        config_dir = %args.config_dir.display(),
        network_idle_timeout = ?options.network_idle_timeout,
        exit_idle_timeout = ?options.exit_idle_timeout,
        "vmnet-broker starting"
    );
    let daemon = DaemonInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
    };
    Broker::new(
        options,
        backend,
        config,
        SystemAccounts,
        daemon,
        Instant::now(),
    )
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
