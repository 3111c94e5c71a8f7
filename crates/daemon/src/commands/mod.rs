//! The client commands: `acquire`, `status`, `check`.

pub mod acquire;
pub mod check;
pub mod docs;
pub mod install;
pub mod status;

use std::path::Path;
use std::process::ExitCode;

use vmnet_broker_client::{Client, Error, Status};

/// Connects to the broker at `socket`, or where the environment says.
pub fn connect(socket: Option<&Path>) -> Result<Client, Error> {
    match socket {
        Some(path) => Client::connect_socket(path),
        None => Client::connect(),
    }
}

/// The exit code for a failed request: the status number for statuses 1 to
/// 7, 8 for any other status.
pub fn exit_code_for(status: Status) -> ExitCode {
    match status.code() {
        c @ 1..=7 => ExitCode::from(c as u8),
        _ => ExitCode::from(8),
    }
}

/// Prints a client error the way every command does and picks the exit code.
pub fn report(what: &str, e: &Error) -> ExitCode {
    let status = e.status();
    let name = status.c_name().unwrap_or("unknown status");
    eprintln!("vmnet-broker: {what}: {name} ({}): {e}", status.code());
    if status == Status::XPC_FAILURE {
        eprintln!("vmnet-broker: is the broker running? Start it with `vmnet-broker serve`.");
    }
    exit_code_for(status)
}
