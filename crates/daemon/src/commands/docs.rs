//! `vmnet-broker completions SHELL` and `vmnet-broker man [--out-dir DIR]`:
//! shell completions and manual pages, both generated from the command-line
//! definition in `cli.rs`, so they never drift from `--help`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use vmnet_broker_proto::text::escape_path;

use crate::EXIT_FAILURE;
use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// The program name used in completions and manual pages.
const BIN: &str = "vmnet-broker";

/// The command tree as users see it: built, so that every subcommand knows
/// its full name (`vmnet-broker serve`), without clap's `help` subcommand.
fn command() -> clap::Command {
    let mut cmd = Cli::command().bin_name(BIN).disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Prints the completion script for one shell on standard output.
pub(crate) fn completions(args: CompletionsArgs) -> ExitCode {
    let mut cmd = command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, BIN, &mut out);
    write_stdout(&out)
}

/// Writes `vmnet-broker.1` and one page per subcommand into the directory,
/// or prints `vmnet-broker.1` alone on standard output.
pub(crate) fn man(args: ManArgs) -> ExitCode {
    let cmd = command();
    let Some(dir) = args.out_dir else {
        let mut out = Vec::new();
        if let Err(e) = clap_mangen::Man::new(cmd).render(&mut out) {
            eprintln!("{BIN}: cannot render the manual page: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
        return write_stdout(&out);
    };
    match write_pages(cmd, &dir) {
        Ok(names) => {
            for name in names {
                println!("{}", escape_path(&dir.join(name)));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "{BIN}: cannot write manual pages to {}: {e}",
                escape_path(&dir)
            );
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Renders the page of `cmd` and of every visible subcommand below it into
/// `dir` (which must exist), returning the file names written in order.
fn write_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<String>> {
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "not an existing directory",
        ));
    }
    let mut names = Vec::new();
    write_tree(cmd, dir, &mut names)?;
    Ok(names)
}

fn write_tree(cmd: clap::Command, dir: &Path, names: &mut Vec<String>) -> std::io::Result<()> {
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let man = clap_mangen::Man::new(cmd);
    let name = man.get_filename();
    let mut page = Vec::new();
    man.render(&mut page)?;
    std::fs::write(dir.join(&name), page)?;
    names.push(name);
    for sub in subcommands {
        write_tree(sub, dir, names)?;
    }
    Ok(())
}

/// Writes generated text to standard output; a closed pipe is a failure.
fn write_stdout(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{BIN}: cannot write to standard output: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
