//! Carrying out a plan.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::shell::join;
use super::{Action, CommandOutput, CommandRunner, Owner, Plan, Stamp, sha256_file};
use vmnet_broker_proto::text::{escape, escape_path};

/// Knobs of [`execute_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOptions {
    /// How long to wait for launchd to forget a job after `bootout`. The
    /// default is 90 s: launchd's `ExitTimeOut` of 60 s plus slack.
    pub bootout_timeout: Duration,
    /// How often to ask `launchctl print` while waiting.
    pub poll_interval: Duration,
    /// Refuse to run a plan that needs root when not root.
    pub check_root: bool,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            bootout_timeout: Duration::from_secs(90),
            poll_interval: Duration::from_millis(250),
            check_root: true,
        }
    }
}

/// Carrying out a plan failed. Actions before the failing one were done.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The plan changes system locations and this process is not root.
    #[error(
        "installing the system daemon needs root: run the command with sudo, or pass --user to \
         install a LaunchAgent for your user only"
    )]
    NeedsRoot,
    /// A file operation failed.
    #[error("could not {action}: {source}")]
    Io {
        /// The action's description.
        action: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A program could not be started.
    #[error("could not {action}: cannot run `{}`: {source}", escape(command))]
    Spawn {
        /// The action's description.
        action: String,
        /// The command line.
        command: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A program failed.
    #[error("could not {action}: `{}` exited with {}: {}", escape(command), code.map_or("a signal".to_owned(), |c| format!("status {c}")), escape(stderr))]
    Failed {
        /// The action's description.
        action: String,
        /// The command line.
        command: String,
        /// Its exit code.
        code: Option<i32>,
        /// Its standard error (trimmed).
        stderr: String,
    },
    /// The original broker is still running after SIGTERM: it ignores
    /// SIGTERM while clients are connected.
    #[error(
        "VMs are still connected to the original vmnet-broker {target}: it is still running \
         {secs} s after SIGTERM, which it ignores while clients are connected. Nothing was \
         changed. Stop the VMs that use vmnet-broker networks and run this again, or pass \
         --force to replace it anyway (their networks will go away)"
    )]
    VmsStillConnected {
        /// The service target.
        target: String,
        /// Seconds waited.
        secs: u64,
    },
    /// launchd still lists the job after `bootout`.
    #[error(
        "launchd still lists {target} {secs} s after `launchctl bootout`; check it with \
         `launchctl print {target}` and run the command again"
    )]
    BootoutTimeout {
        /// The service target.
        target: String,
        /// Seconds waited.
        secs: u64,
    },
}

/// Runs `plan` with default options; `progress` is called before each
/// action.
///
/// # Errors
///
/// See [`ExecError`]; execution stops at the first failing action.
pub fn execute(
    plan: &Plan,
    runner: &mut dyn CommandRunner,
    progress: &mut dyn FnMut(&Action),
) -> Result<(), ExecError> {
    execute_with(plan, runner, progress, &ExecOptions::default())
}

/// Runs `plan`; `progress` is called before each action.
///
/// Programs run through `runner`; file actions use the standard library and
/// replace files atomically (write a temporary file next to the target, set
/// mode and owner, rename).
///
/// # Errors
///
/// See [`ExecError`]; execution stops at the first failing action.
pub fn execute_with(
    plan: &Plan,
    runner: &mut dyn CommandRunner,
    progress: &mut dyn FnMut(&Action),
    opts: &ExecOptions,
) -> Result<(), ExecError> {
    if opts.check_root && plan.requires_root && !plan.is_empty() && !is_root() {
        return Err(ExecError::NeedsRoot);
    }
    for action in &plan.actions {
        progress(action);
        run_action(action, runner, opts)?;
    }
    Ok(())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn run_action(
    action: &Action,
    runner: &mut dyn CommandRunner,
    opts: &ExecOptions,
) -> Result<(), ExecError> {
    let io_err = |source| ExecError::Io {
        action: action.describe(),
        source,
    };
    match action {
        Action::Bootout { target } => bootout(action, target, runner, opts),
        Action::StopOriginal {
            target,
            wait_secs,
            force,
        } => stop_original(action, target, *wait_secs, *force, runner, opts),
        Action::EnsureDir { path, mode, owner } => {
            fs::create_dir_all(path).map_err(io_err)?;
            set_mode_owner(path, *mode, owner.as_ref()).map_err(io_err)
        }
        Action::WriteFile {
            path,
            contents,
            mode,
            owner,
        } => replace_file(path, *mode, owner.as_ref(), |tmp| fs::write(tmp, contents))
            .map_err(io_err),
        Action::CopyFile {
            from,
            to,
            mode,
            owner,
        } => {
            if same_file(from, to) {
                set_mode_owner(to, *mode, owner.as_ref()).map_err(io_err)
            } else {
                replace_file(to, *mode, owner.as_ref(), |tmp| {
                    fs::copy(from, tmp).map(drop)
                })
                .map_err(io_err)
            }
        }
        Action::WriteStamp {
            path,
            binary,
            stamp,
            mode,
            owner,
        } => {
            let installed = sha256_file(binary).map_err(io_err)?;
            let text = Stamp {
                installed_sha256: installed,
                ..stamp.clone()
            }
            .render();
            replace_file(path, *mode, owner.as_ref(), |tmp| fs::write(tmp, &text)).map_err(io_err)
        }
        Action::RemoveFile { path } => ignore_missing(fs::remove_file(path)).map_err(io_err),
        Action::RemoveTree { path } => ignore_missing(fs::remove_dir_all(path)).map_err(io_err),
        Action::RemoveDir { path } => match fs::remove_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                tracing::warn!(
                    path = %escape_path(path),
                    "left the directory in place: it holds files vmnet-broker did not install"
                );
                Ok(())
            }
            other => ignore_missing(other).map_err(io_err),
        },
        Action::CreateGroup { .. }
        | Action::CreateUser { .. }
        | Action::SetPrimaryGroup { .. }
        | Action::Codesign { .. }
        | Action::Bootstrap { .. }
        | Action::DeleteUser { .. }
        | Action::DeleteGroup { .. } => {
            for argv in action.commands() {
                run_checked(action, &argv, runner)?;
            }
            Ok(())
        }
    }
}

/// Runs `argv` for `action`; a command that cannot be started is an
/// [`ExecError::Spawn`], whatever it would have printed is the caller's.
fn spawn(
    runner: &mut dyn CommandRunner,
    action: &Action,
    argv: &[String],
) -> Result<CommandOutput, ExecError> {
    runner.run(argv).map_err(|source| ExecError::Spawn {
        action: action.describe(),
        command: join(argv),
        source,
    })
}

fn run_checked(
    action: &Action,
    argv: &[String],
    runner: &mut dyn CommandRunner,
) -> Result<(), ExecError> {
    let out = spawn(runner, action, argv)?;
    if out.success {
        Ok(())
    } else {
        Err(ExecError::Failed {
            action: action.describe(),
            command: join(argv),
            code: out.code,
            stderr: out.stderr.trim().to_owned(),
        })
    }
}

fn job_listed(
    runner: &mut dyn CommandRunner,
    action: &Action,
    target: &str,
) -> Result<bool, ExecError> {
    Ok(launchctl(runner, action, "print", target)?.success)
}

/// Runs `launchctl VERB TARGET` for `action`.
fn launchctl(
    runner: &mut dyn CommandRunner,
    action: &Action,
    verb: &str,
    target: &str,
) -> Result<CommandOutput, ExecError> {
    let argv = ["launchctl".to_owned(), verb.to_owned(), target.to_owned()];
    spawn(runner, action, &argv)
}

/// `launchctl bootout` may return before the job is gone (it reports
/// "Operation now in progress" while the process is still exiting), and a
/// `bootstrap` right after would then fail. So: boot out, then wait until
/// `launchctl print` no longer knows the job.
fn bootout(
    action: &Action,
    target: &str,
    runner: &mut dyn CommandRunner,
    opts: &ExecOptions,
) -> Result<(), ExecError> {
    let out = launchctl(runner, action, "bootout", target)?;
    let start = Instant::now();
    loop {
        if !job_listed(runner, action, target)? {
            return Ok(());
        }
        if start.elapsed() >= opts.bootout_timeout {
            if !out.success {
                return Err(ExecError::Failed {
                    action: action.describe(),
                    command: format!("launchctl bootout {target}"),
                    code: out.code,
                    stderr: out.stderr.trim().to_owned(),
                });
            }
            return Err(ExecError::BootoutTimeout {
                target: target.to_owned(),
                secs: opts.bootout_timeout.as_secs(),
            });
        }
        thread::sleep(opts.poll_interval);
    }
}

/// Whether launchd reports a running process for `target` (`launchctl
/// print` shows `pid = N` only while the job runs).
fn job_running(
    runner: &mut dyn CommandRunner,
    action: &Action,
    target: &str,
) -> Result<bool, ExecError> {
    let out = launchctl(runner, action, "print", target)?;
    Ok(out.success
        && out
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("pid = ")))
}

/// SIGTERM, then wait up to `wait_secs` for the process to go, as the
/// original installer does. A failing `kill` (nothing running) is fine.
fn stop_original(
    action: &Action,
    target: &str,
    wait_secs: u64,
    force: bool,
    runner: &mut dyn CommandRunner,
    opts: &ExecOptions,
) -> Result<(), ExecError> {
    // `launchctl kill SIGTERM TARGET`, as the plan shows it.
    for argv in action.commands() {
        spawn(runner, action, &argv)?;
    }
    let wait = Duration::from_secs(wait_secs);
    let start = Instant::now();
    loop {
        if !job_running(runner, action, target)? {
            return Ok(());
        }
        if start.elapsed() >= wait {
            if force {
                tracing::warn!(
                    target,
                    "the original broker is still running (VMs are connected); going on because of --force"
                );
                return Ok(());
            }
            return Err(ExecError::VmsStillConnected {
                target: target.to_owned(),
                secs: wait_secs,
            });
        }
        thread::sleep(opts.poll_interval.min(wait));
    }
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn set_mode_owner(path: &Path, mode: u32, owner: Option<&Owner>) -> io::Result<()> {
    if let Some(o) = owner {
        std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.vmnet-broker-tmp"))
}

/// Fills a temporary file next to `path` with `fill`, sets its mode and
/// owner, then renames it over `path`, so that readers (and a running
/// process) see either the old or the new file, never a half-written one.
fn replace_file(
    path: &Path,
    mode: u32,
    owner: Option<&Owner>,
    fill: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_sibling(path);
    let result = fill(&tmp)
        .and_then(|()| set_mode_owner(&tmp, mode, owner))
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
