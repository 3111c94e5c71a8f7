//! The client commands: `acquire`, `status`, `check`.

pub(crate) mod acquire;
pub(crate) mod check;
pub(crate) mod docs;
pub(crate) mod install;
pub(crate) mod status;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use vmnet_broker_client::{Client, Error, Status};

/// Connects to the broker at `socket`, on the Mach service `mach_service`,
/// or where the environment says, waiting at most `timeout` seconds to
/// connect and for each reply.
pub(crate) fn connect(
    socket: Option<&Path>,
    mach_service: Option<&str>,
    timeout: f64,
) -> Result<Client, Error> {
    let timeout = Duration::from_secs_f64(timeout);
    match (socket, mach_service) {
        (Some(path), _) => Client::connect_socket_with_timeout(path, timeout),
        #[cfg(any(target_os = "macos", feature = "fake-apple"))]
        (None, Some(service)) => Client::connect_xpc_service_with_timeout(service, timeout),
        #[cfg(not(any(target_os = "macos", feature = "fake-apple")))]
        (None, Some(_)) => Err(Error::InvalidRequest(
            "--mach-service: XPC exists only on macOS; use --socket".into(),
        )),
        (None, None) => Client::connect_with_timeout(timeout),
    }
}

/// The exit code for a failed request: the status number for statuses 1 to
/// 7, 8 for any other status.
pub(crate) fn exit_code_for(status: Status) -> ExitCode {
    match status.code() {
        c @ 1..=7 => ExitCode::from(u8::try_from(c).unwrap_or(8)),
        _ => ExitCode::from(8),
    }
}

/// Prints a client error the way every command does and picks the exit code.
pub(crate) fn report(what: &str, e: &Error) -> ExitCode {
    let status = e.status();
    let name = status.c_name().unwrap_or("unknown status");
    eprintln!("vmnet-broker: {what}: {name} ({}): {e}", status.code());
    if matches!(e, Error::Timeout { .. }) {
        eprintln!(
            "vmnet-broker: the broker may be stopped or overloaded; wait longer with --timeout SECS or VMNET_BROKER_TIMEOUT."
        );
    } else if matches!(e, Error::UntrustedServer { .. }) {
        eprintln!(
            "vmnet-broker: find who serves the socket (ss -xlp, lsof) and use another path with --socket."
        );
    } else if let Some(hint) = transport_hint(e) {
        eprintln!("vmnet-broker: {hint}");
    }
    exit_code_for(status)
}

/// What to do about a failure to talk to the broker, by what the system
/// said: only a missing or refusing socket means no broker is running.
fn transport_hint(e: &Error) -> Option<&'static str> {
    use std::io::ErrorKind;
    match e {
        Error::Connect { source, .. } => match source.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
                Some("is the broker running? Start it with `vmnet-broker serve`.")
            }
            ErrorKind::InvalidInput => Some(
                "a Unix socket path must be shorter than about 100 bytes; use a shorter --socket path.",
            ),
            ErrorKind::PermissionDenied => Some(
                "this user may not connect to that socket; check the permissions of the socket and of its directory.",
            ),
            _ => None,
        },
        Error::Closed => Some(CLOSED_HINT),
        Error::Io { source, .. }
            if matches!(
                source.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
            ) =>
        {
            Some(CLOSED_HINT)
        }
        Error::Xpc(_) => Some(
            "is the broker's launchd service installed and loaded? See `vmnet-broker install`.",
        ),
        _ => None,
    }
}

/// The hint for a broker that closed the connection without answering.
const CLOSED_HINT: &str = "the broker closed the connection without answering: it may be at its limit of connections (--max-clients, or --max-clients-per-user for this user) or shutting down; its log says why.";

/// The installed launchd job files of the default label, system job first,
/// then the current user's, with their contents: those that exist and can
/// be read (none outside macOS).
pub(crate) fn installed_job_files() -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let label = vmnet_broker_launchd::DEFAULT_LABEL;
    let specs = [
        vmnet_broker_launchd::JobSpec::system(label).ok(),
        vmnet_broker_launchd::JobSpec::current_user(label).ok(),
    ];
    specs
        .into_iter()
        .flatten()
        .filter_map(|spec| {
            let path = spec.paths().plist;
            let bytes = std::fs::read(&path).ok()?;
            Some((path, bytes))
        })
        .collect()
}
