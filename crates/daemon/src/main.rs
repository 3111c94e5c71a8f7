//! `vmnet-broker`: the daemon (`serve`) and its command-line clients.
//!
//! Exit codes of the client commands map to protocol statuses: 1 cannot
//! reach the broker, 2 invalid reply, 3 not allowed, 4 invalid request,
//! 5 not found, 6 create failure, 7 internal error, 8 a status this version
//! does not know. Usage errors exit with 64, other failures with 70.

#![forbid(unsafe_code)]

mod cli;
mod commands;
#[allow(
    unreachable_pub,
    clippy::use_self,
    reason = "rewritten on other branches at the time the lints came in; drop this allow and run cargo clippy --fix after they merge"
)]
mod config_dir;
mod logging;
#[allow(
    unreachable_pub,
    clippy::use_self,
    reason = "rewritten on other branches at the time the lints came in; drop this allow and run cargo clippy --fix after they merge"
)]
mod serve;
mod sys;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit code for command-line usage errors (sysexits' EX_USAGE).
const EXIT_USAGE: u8 = 64;
/// Exit code for failures that are not protocol statuses (EX_SOFTWARE).
const EXIT_FAILURE: u8 = 70;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Acquire(args) => commands::acquire::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Install(args) => commands::install::install(args),
        Command::Uninstall(args) => commands::install::uninstall(args),
    }
}
