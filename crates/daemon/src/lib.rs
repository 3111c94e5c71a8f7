//! `vmnet-broker`: the daemon (`serve`) and its command-line clients, as a
//! library so that the driver can be tested without the binary. The binary
//! (`src/main.rs`) only calls [`main`].
//!
//! Exit codes of the client commands map to protocol statuses: 1 cannot
//! reach the broker, 2 invalid reply, 3 not allowed, 4 invalid request,
//! 5 not found, 6 create failure, 7 internal error, 8 a status this version
//! does not know. Usage errors exit with 64, other failures with 70.

#![deny(unsafe_code)]

mod cli;
mod commands;
mod config_dir;
mod config_owner;
mod hostnet;
mod logging;
mod serve;
mod state_store;
mod sys;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit code for command-line usage errors (sysexits' EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit code for failures that are not protocol statuses (EX_SOFTWARE).
pub const EXIT_FAILURE: u8 = 70;

/// The message for a refused value that holds control characters, with
/// the value escaped: clap repeats a value as it came, so one from the
/// command line or the environment could otherwise drive the terminal or
/// fake lines of output. `None` for every other error (clap prints it).
fn escaped_usage_error(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(value)) = e.get(ContextKind::InvalidValue) else {
        return None;
    };
    if !value.chars().any(char::is_control) {
        return None;
    }
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.clone(),
        _ => "an option".to_owned(),
    };
    let reason = std::error::Error::source(e)
        .map(|source| {
            let text = source.to_string();
            if text.chars().any(char::is_control) {
                format!(": {}", vmnet_broker_proto::text::escape(&text))
            } else {
                format!(": {text}")
            }
        })
        .unwrap_or_default();
    Some(format!(
        "error: invalid value '{}' for '{arg}'{reason}\n\nFor more information, try '--help'.\n",
        vmnet_broker_proto::text::escape(value)
    ))
}

/// Parses the command line and runs the command; returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            match escaped_usage_error(&e) {
                Some(text) => eprint!("{text}"),
                None => {
                    let _ = e.print();
                }
            }
            return ExitCode::from(code);
        }
    };
    let Some(command) = cli.command else {
        // No subcommand: the daemon, as the original broker's binary is.
        return match cli::ServeArgs::defaults() {
            Ok(args) => serve::run(args),
            Err(e) => {
                let _ = e.print();
                ExitCode::from(EXIT_USAGE)
            }
        };
    };
    match command {
        Command::Serve(args) => serve::run(args),
        Command::Acquire(args) => commands::acquire::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Install(args) => commands::install::install(args),
        Command::Uninstall(args) => commands::install::uninstall(args),
        Command::Completions(args) => commands::docs::completions(args),
        Command::Man(args) => commands::docs::man(args),
    }
}
