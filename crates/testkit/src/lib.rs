//! Starting the real `vmnet-broker` binary for end-to-end tests, shared by
//! the daemon's and the client's tests.
//!
//! [`spawn_serving`] passes `--ready-fd N` to `serve` and waits for the
//! byte the broker writes once it listens: no polling of the socket, and a
//! broker that exits early is reported at once with its status.

#![forbid(unsafe_code)]

pub mod fake_server;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::poll::{PollFd, PollFlags, poll};

/// How long to wait for a broker to serve. A guard against hanging, not a
/// measurement.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Serialises the short window in which the readiness pipe's write end is
/// inheritable, so that brokers started by parallel tests do not inherit
/// each other's pipes.
static SPAWN: Mutex<()> = Mutex::new(());

/// The broker binary: `$VMNET_BROKER_BIN` if set, else `vmnet-broker` in
/// the cargo target directory of the running test
/// (`target/<profile>/deps/<test>` -> `target/<profile>/vmnet-broker`).
///
/// # Panics
///
/// When the binary is not there (build it first).
pub fn broker_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("VMNET_BROKER_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let bin = dir.join(format!("vmnet-broker{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "broker binary {} not found: run `cargo build -p vmnet-broker` first \
         (or set VMNET_BROKER_BIN)",
        bin.display()
    );
    bin
}

/// The fake broker of the client contract (`vmnet-broker-contract-server`,
/// [`fake_server`]): `$VMNET_BROKER_CONTRACT_SERVER` if set, else the
/// binary in the cargo target directory of the running test.
///
/// # Errors
///
/// A message saying how to build it, when it is not there.
pub fn contract_server_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("VMNET_BROKER_CONTRACT_SERVER") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let bin = dir.join(format!(
        "vmnet-broker-contract-server{}",
        std::env::consts::EXE_SUFFIX
    ));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "the contract's fake broker {} is not built: run `cargo build -p vmnet-broker-testkit` \
             first (or set VMNET_BROKER_CONTRACT_SERVER)",
            bin.display()
        ))
    }
}

/// Why a broker did not start serving.
#[derive(Debug)]
pub enum StartError {
    /// It exited before it was ready.
    Exited(std::process::ExitStatus),
    /// It was not ready within [`PATIENCE`] (it was killed).
    TimedOut,
    /// Starting it failed.
    Io(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited(status) => write!(f, "the broker exited before serving ({status})"),
            Self::TimedOut => write!(f, "the broker did not serve within {PATIENCE:?}"),
            Self::Io(e) => write!(f, "cannot start the broker: {e}"),
        }
    }
}

impl From<nix::Error> for StartError {
    fn from(e: nix::Error) -> Self {
        Self::Io(e.into())
    }
}

impl From<std::io::Error> for StartError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Starts `serve` (`command` is `vmnet-broker serve ...` with its options)
/// with `--ready-fd N` added, and returns once the broker serves.
///
/// # Errors
///
/// [`StartError`] when the broker exits first or does not serve in time.
pub fn spawn_serving(command: &mut Command) -> Result<Child, StartError> {
    let (read_end, mut child) = {
        let _guard = SPAWN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (read_end, write_end) = nix::unistd::pipe()?;
        cloexec(&read_end, true)?;
        // Only the broker gets the write end: it is inheritable only while
        // the lock is held, and this process closes its copy right after.
        cloexec(&write_end, false)?;
        command
            .arg("--ready-fd")
            .arg(write_end.as_raw_fd().to_string());
        let child = command.spawn();
        drop(write_end);
        (read_end, child?)
    };
    let deadline = Instant::now() + PATIENCE;
    let mut pipe = File::from(read_end);
    loop {
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        let ready = match poll(&mut fds, 100u16) {
            Ok(n) => n > 0,
            Err(nix::errno::Errno::EINTR) => false,
            Err(e) => return Err(kill(child, e.into())),
        };
        if ready {
            let mut byte = [0u8; 1];
            return match pipe.read(&mut byte) {
                Ok(1) => Ok(child),
                // End of file without the byte: it exited (or closed the
                // descriptor without being ready).
                Ok(_) => match child.wait() {
                    Ok(status) => Err(StartError::Exited(status)),
                    Err(e) => Err(StartError::Io(e)),
                },
                Err(e) => Err(kill(child, e.into())),
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartError::Exited(status));
        }
        if Instant::now() > deadline {
            return Err(kill(child, StartError::TimedOut));
        }
    }
}

fn kill(mut child: Child, error: StartError) -> StartError {
    let _ = child.kill();
    let _ = child.wait();
    error
}

fn cloexec(fd: &OwnedFd, on: bool) -> nix::Result<()> {
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd, FcntlArg::F_SETFD(flags)).map(drop)
}

/// Suspends process `pid` with SIGSTOP and returns once every thread of it has
/// stopped. `kill` only queues the signal: a thread that is running, or is
/// being woken by data on its socket, can still answer a request before it
/// stops. On Linux the threads' states are read from `/proc`; elsewhere
/// this waits a moment instead.
///
/// # Errors
///
/// When the signal cannot be sent, or the process did not stop within
/// [`PATIENCE`].
pub fn suspend_process(pid: u32) -> std::io::Result<()> {
    let raw = i32::try_from(pid).map_err(std::io::Error::other)?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(raw),
        nix::sys::signal::Signal::SIGSTOP,
    )?;
    let deadline = Instant::now() + PATIENCE;
    while !all_threads_stopped(pid) {
        if Instant::now() > deadline {
            return Err(std::io::Error::other(format!(
                "process {pid} did not stop within {PATIENCE:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Whether every thread of `pid` is stopped (state `T` in
/// `/proc/PID/task/TID/stat`, the field after the command name).
#[cfg(target_os = "linux")]
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The command name is in parentheses and may hold anything.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|state| state == 'T')
        })
    })
}

#[cfg(not(target_os = "linux"))]
fn all_threads_stopped(_pid: u32) -> bool {
    std::thread::sleep(Duration::from_millis(200));
    true
}

/// Binds a Unix socket at `path` that accepts connections and keeps them
/// open without ever answering, as a stopped or stuck broker looks to a
/// client. It serves until the test process ends.
///
/// # Errors
///
/// When the socket cannot be bound.
pub fn silent_server(path: &Path) -> std::io::Result<()> {
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for stream in listener.incoming().flatten() {
            kept.push(stream);
        }
    });
    Ok(())
}

/// Resumes a process suspended by [`suspend_process`] (SIGCONT).
///
/// # Errors
///
/// When the signal cannot be sent.
pub fn resume_process(pid: u32) -> std::io::Result<()> {
    let raw = i32::try_from(pid).map_err(std::io::Error::other)?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(raw),
        nix::sys::signal::Signal::SIGCONT,
    )?;
    Ok(())
}
