//! Installing the broker as a launchd job.
//!
//! The pieces, in the order the `install` command uses them:
//!
//! 1. [`JobSpec`] says *what* to install: the label (also the Mach service
//!    name), the scope ([`Scope::System`] LaunchDaemon or [`Scope::User`]
//!    LaunchAgent) and, through [`JobSpec::paths`], where every file goes.
//! 2. [`job_plist_xml`] and [`entitlements_plist_xml`] produce the two
//!    property lists we write.
//! 3. [`probe`] looks at the machine (files, `dscl`, `launchctl`, the running
//!    broker's client count) and returns an [`InstallState`]. It runs
//!    commands through a [`CommandRunner`] so tests can script the answers.
//! 4. [`plan_install`] / [`plan_uninstall`] turn the spec and the state into
//!    a [`Plan`]: an ordered list of [`Action`]s. They are pure functions,
//!    so re-running `install` on an installed machine plans nothing, and a
//!    broker with clients is never replaced without `--force`.
//! 5. [`Plan::shell_script`] prints the plan as shell commands (`--dry-run`);
//!    [`execute`] carries it out.
//!
//! Only steps 1, 2 and 4 are meaningful on Linux, where they are unit
//! tested; steps 3 and 5 compile everywhere but expect macOS tools.
//!
//! This crate is used by the daemon's `install`, `uninstall` and `check`
//! commands only. It is kept apart from the XPC/vmnet FFI crate
//! (`vmnet-broker-macos`) so that clients and `libvmnet_broker` do not carry
//! the planner or its dependencies (plist, sha2). It needs Unix file
//! permissions and ownership, so it is empty on other systems.

#![cfg(unix)]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod exec;
mod job;
mod plan;
mod probe;
mod shell;

use std::path::{Path, PathBuf};

pub use exec::{ExecError, ExecOptions, execute, execute_with};
pub use job::{
    JobOptions, VIRTUALIZATION_ENTITLEMENT, entitlements_plist, entitlements_plist_xml, job_plist,
    job_plist_xml,
};
pub use plan::{
    Accounts, Action, BrokerClients, FileMeta, InstallOptions, InstallState, JobStatus,
    ORIGINAL_LEFTOVERS, ORIGINAL_STOP_WAIT_SECS, ObservedBinary, ObservedFile, Owner, Plan,
    PlanError, SourceBinary, Stamp, UninstallOptions, UserRecord, plan_install, plan_uninstall,
};
pub use probe::{
    CommandOutput, CommandRunner, ProbeError, SystemRunner, clients_in_status, parse_dscl_list,
    parse_dscl_read, probe, sha256_file, sha256_hex,
};
pub use shell::quote as shell_quote;

/// The default label, which is also the Mach service name clients look up
/// (the same as the original C implementation).
pub const DEFAULT_LABEL: &str = vmnet_broker_proto::MACH_SERVICE_NAME;

/// The unprivileged account the system daemon runs as.
pub const SERVICE_ACCOUNT: &str = "_vmnetbroker";

/// Ids for a new service account are picked in this range, where macOS
/// keeps role accounts.
pub const ACCOUNT_ID_RANGE: std::ops::RangeInclusive<u32> = 200..=400;

/// Seconds launchd waits after SIGTERM before SIGKILL (`ExitTimeOut`).
pub const EXIT_TIMEOUT_SECS: i64 = 60;

/// File name of the installed binary.
pub const BINARY_NAME: &str = "vmnet-broker";

/// File name of the log file (the job's standard error).
pub const LOG_FILE_NAME: &str = "vmnet-broker.log";

/// File name of the entitlements file kept next to the binary (codesign
/// reads it when signing the installed copy).
pub const ENTITLEMENTS_FILE_NAME: &str = "entitlements.plist";

/// File name of the install record kept next to the binary.
pub const STAMP_FILE_NAME: &str = "vmnet-broker.install-stamp";

const SYSTEM_INSTALL_DIR: &str = "/Library/Application Support/vmnet-broker";
const SYSTEM_LOG_DIR: &str = "/Library/Logs/vmnet-broker";
/// Where the system broker keeps its remembered subnets (the daemon's
/// default `--state-dir` on macOS for root and system accounts).
const SYSTEM_STATE_DIR: &str = "/var/db/vmnet-broker";
const SYSTEM_PLIST_DIR: &str = "/Library/LaunchDaemons";

/// Where the job is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A LaunchDaemon in the system domain, running as
    /// [`SERVICE_ACCOUNT`]. Needs root to install. Every user's clients
    /// share its networks.
    System,
    /// A LaunchAgent in one user's GUI domain (`gui/<uid>`), running as that
    /// user. Needs no root; only that user's processes can reach it.
    User {
        /// The user's id (for `launchctl bootstrap gui/<uid>`).
        uid: u32,
        /// The user's home directory; every path is under it.
        home: PathBuf,
    },
}

/// A label that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobSpecError {
    /// The label is empty, too long, or has characters outside
    /// `A-Z a-z 0-9 . _ -`, or starts with a dot.
    #[error(
        "invalid launchd label {0:?}: use 1 to 128 characters from A-Z, a-z, 0-9, '.', '_' \
         and '-', not starting with '.' (for example com.github.nirs.vmnet-broker)"
    )]
    InvalidLabel(String),
    /// `--user` was asked for but `$HOME` is not set.
    #[error("HOME is not set, so the per-user install location is unknown: set HOME and retry")]
    NoHome,
}

/// What to install: label, scope, and extra arguments for `serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    label: String,
    scope: Scope,
    extra_arguments: Vec<String>,
    run_at_load: bool,
}

/// Every path a job uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Directory holding the binary, its entitlements and the install stamp.
    pub install_dir: PathBuf,
    /// The installed binary.
    pub binary: PathBuf,
    /// The entitlements file codesign uses for the installed binary.
    pub entitlements: PathBuf,
    /// The install record (see [`Stamp`]).
    pub stamp: PathBuf,
    /// Directory of the job file (`/Library/LaunchDaemons` or
    /// `~/Library/LaunchAgents`).
    pub plist_dir: PathBuf,
    /// The job file, `<plist_dir>/<label>.plist`.
    pub plist: PathBuf,
    /// Directory of the log file.
    pub log_dir: PathBuf,
    /// The log file (the job's standard error).
    pub log_file: PathBuf,
    /// The broker's state directory (remembered subnets): created for the
    /// service account by a system install; a per-user broker keeps its
    /// state in the install directory.
    pub state_dir: PathBuf,
}

impl JobSpec {
    /// A system LaunchDaemon with `label`.
    pub fn system(label: &str) -> Result<Self, JobSpecError> {
        Ok(Self {
            label: checked_label(label)?,
            scope: Scope::System,
            extra_arguments: Vec::new(),
            run_at_load: false,
        })
    }

    /// A LaunchAgent for the user `uid` whose home is `home`.
    pub fn user(label: &str, uid: u32, home: impl Into<PathBuf>) -> Result<Self, JobSpecError> {
        Ok(Self {
            label: checked_label(label)?,
            scope: Scope::User {
                uid,
                home: home.into(),
            },
            extra_arguments: Vec::new(),
            run_at_load: false,
        })
    }

    /// A LaunchAgent for the user running this process (effective uid and
    /// `$HOME`).
    pub fn current_user(label: &str) -> Result<Self, JobSpecError> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or(JobSpecError::NoHome)?;
        Self::user(label, nix::unistd::geteuid().as_raw(), PathBuf::from(home))
    }

    /// Adds arguments after `serve --mach-service <label>` in the job's
    /// `ProgramArguments` (for example `--log-level debug`).
    pub fn with_extra_arguments(mut self, args: impl IntoIterator<Item = String>) -> Self {
        self.extra_arguments.extend(args);
        self
    }

    /// Makes launchd start the broker when the job is loaded (at boot for
    /// the system job, at login for a user's), for persistent networks:
    /// `RunAtLoad` in the job file.
    pub fn with_run_at_load(mut self, run_at_load: bool) -> Self {
        self.run_at_load = run_at_load;
        self
    }

    /// Whether the job starts when loaded.
    pub fn run_at_load(&self) -> bool {
        self.run_at_load
    }

    /// The label, which is also the Mach service name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Whether this is the system LaunchDaemon.
    pub fn is_system(&self) -> bool {
        matches!(self.scope, Scope::System)
    }

    /// Where every file of the job goes.
    pub fn paths(&self) -> Paths {
        let (install_dir, plist_dir, log_dir) = match &self.scope {
            Scope::System => (
                PathBuf::from(SYSTEM_INSTALL_DIR),
                PathBuf::from(SYSTEM_PLIST_DIR),
                PathBuf::from(SYSTEM_LOG_DIR),
            ),
            Scope::User { home, .. } => {
                let library = home.join("Library");
                (
                    library.join("Application Support").join("vmnet-broker"),
                    library.join("LaunchAgents"),
                    library.join("Logs").join("vmnet-broker"),
                )
            }
        };
        let state_dir = match &self.scope {
            Scope::System => PathBuf::from(SYSTEM_STATE_DIR),
            Scope::User { .. } => install_dir.clone(),
        };
        Paths {
            state_dir,
            binary: install_dir.join(BINARY_NAME),
            entitlements: install_dir.join(ENTITLEMENTS_FILE_NAME),
            stamp: install_dir.join(STAMP_FILE_NAME),
            install_dir,
            plist: plist_dir.join(format!("{}.plist", self.label)),
            plist_dir,
            log_file: log_dir.join(LOG_FILE_NAME),
            log_dir,
        }
    }

    /// The job's command line: `<binary> serve --mach-service <label>`,
    /// then the extra arguments.
    pub fn program_arguments(&self) -> Vec<String> {
        let mut args = vec![
            path_string(&self.paths().binary),
            "serve".to_owned(),
            "--mach-service".to_owned(),
            self.label.clone(),
        ];
        args.extend(self.extra_arguments.iter().cloned());
        args
    }

    /// The launchctl domain: `system` or `gui/<uid>`.
    pub fn domain(&self) -> String {
        match &self.scope {
            Scope::System => "system".to_owned(),
            Scope::User { uid, .. } => format!("gui/{uid}"),
        }
    }

    /// The launchctl service target: `<domain>/<label>`.
    pub fn service_target(&self) -> String {
        format!("{}/{}", self.domain(), self.label)
    }
}

fn checked_label(label: &str) -> Result<String, JobSpecError> {
    let ok = !label.is_empty()
        && label.len() <= 128
        && !label.starts_with('.')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(label.to_owned())
    } else {
        Err(JobSpecError::InvalidLabel(label.to_owned()))
    }
}

/// A path as a string for property lists and command lines. Our paths are
/// built from UTF-8 pieces (and `$HOME`); a non-UTF-8 home is shown lossily.
pub(crate) fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_paths_match_the_upstream_layout() {
        let spec = JobSpec::system(DEFAULT_LABEL).unwrap();
        let p = spec.paths();
        assert_eq!(
            p.binary,
            Path::new("/Library/Application Support/vmnet-broker/vmnet-broker")
        );
        assert_eq!(
            p.plist,
            Path::new("/Library/LaunchDaemons/com.github.nirs.vmnet-broker.plist")
        );
        assert_eq!(
            p.log_file,
            Path::new("/Library/Logs/vmnet-broker/vmnet-broker.log")
        );
        assert_eq!(spec.service_target(), "system/com.github.nirs.vmnet-broker");
    }

    #[test]
    fn user_paths_live_under_home() {
        let spec = JobSpec::user("org.example.broker", 501, "/Users/ann").unwrap();
        let p = spec.paths();
        assert_eq!(
            p.plist,
            Path::new("/Users/ann/Library/LaunchAgents/org.example.broker.plist")
        );
        assert_eq!(
            p.binary,
            Path::new("/Users/ann/Library/Application Support/vmnet-broker/vmnet-broker")
        );
        assert_eq!(
            p.log_file,
            Path::new("/Users/ann/Library/Logs/vmnet-broker/vmnet-broker.log")
        );
        assert_eq!(spec.domain(), "gui/501");
        assert_eq!(spec.service_target(), "gui/501/org.example.broker");
    }

    #[test]
    fn program_arguments_run_serve_with_the_label() {
        let spec = JobSpec::system("org.example.b")
            .unwrap()
            .with_extra_arguments(["--log-level".to_owned(), "debug".to_owned()]);
        assert_eq!(
            spec.program_arguments(),
            [
                "/Library/Application Support/vmnet-broker/vmnet-broker",
                "serve",
                "--mach-service",
                "org.example.b",
                "--log-level",
                "debug"
            ]
        );
    }

    #[test]
    fn labels_that_could_escape_a_file_name_are_refused() {
        for bad in ["", ".hidden", "a/b", "a b", "../x", "x\n", &"a".repeat(129)] {
            let err = JobSpec::system(bad).unwrap_err();
            assert!(err.to_string().contains("invalid launchd label"), "{bad:?}");
        }
        assert!(JobSpec::system("com.github.nirs.vmnet-broker").is_ok());
    }
}
