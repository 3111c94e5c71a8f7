//! Install and uninstall plans: what to do, computed from what is there.
//!
//! [`plan_install`] and [`plan_uninstall`] are pure functions of a
//! [`JobSpec`], an observed [`InstallState`] and options. They never touch
//! the machine, which is what makes them testable on Linux and makes
//! `install` idempotent: on a machine where everything is in place and the
//! job is loaded, the plan is empty.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::shell::{join, quote};
use super::{
    ACCOUNT_ID_RANGE, JobSpec, SERVICE_ACCOUNT, entitlements_plist_xml, job_plist_xml, path_string,
    sha256_hex,
};
use vmnet_broker_proto::text::escape_path;

/// Owner and permission bits of an existing file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// Owning user id.
    pub uid: u32,
    /// Owning group id.
    pub gid: u32,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
}

/// An existing small file: its metadata and contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedFile {
    /// Owner and mode.
    pub meta: FileMeta,
    /// Contents.
    pub contents: Vec<u8>,
}

/// The installed binary: its metadata and SHA-256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedBinary {
    /// Owner and mode.
    pub meta: FileMeta,
    /// SHA-256 of the file as it is now (after signing), lowercase hex.
    pub sha256: String,
}

/// The binary to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceBinary {
    /// Where it is.
    pub path: PathBuf,
    /// SHA-256 of its contents, lowercase hex.
    pub sha256: String,
}

/// The service account as the directory service knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// `UniqueID`.
    pub uid: u32,
    /// `PrimaryGroupID`, if set.
    pub primary_gid: Option<u32>,
}

/// Users and groups, as far as the plan needs them (system scope only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    /// The [`SERVICE_ACCOUNT`] user, if it exists.
    pub user: Option<UserRecord>,
    /// The gid of the [`SERVICE_ACCOUNT`] group, if it exists.
    pub group_gid: Option<u32>,
    /// Every `UniqueID` in use (`dscl . -list /Users UniqueID`).
    pub used_uids: BTreeSet<u32>,
    /// Every `PrimaryGroupID` in use (`dscl . -list /Groups PrimaryGroupID`).
    pub used_gids: BTreeSet<u32>,
}

/// Whether launchd has the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// `launchctl print <target>` does not know the job.
    NotLoaded,
    /// The job is loaded (running or waiting for a client).
    Loaded,
}

/// How many clients the running broker has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerClients {
    /// Not asked (the job is not loaded, so nothing can be connected).
    NotAsked,
    /// The broker answered `status`: this many clients other than the
    /// asking process.
    Count(u64),
    /// The broker could not be asked; the text says why.
    Unknown(String),
    /// The broker answered `status` with `INVALID_REQUEST` (4): it is the
    /// original C broker, which has no `status` and cannot say how many
    /// clients it has. It is stopped the way its own installer stops it
    /// ([`Action::StopOriginal`]).
    Original,
}

/// Files the original broker's installer puts next to its binary and we do
/// not install: removed when upgrading (and on uninstall).
pub const ORIGINAL_LEFTOVERS: [&str; 2] = ["uninstall.sh", "LICENSE"];

/// Seconds to wait for the original broker to exit after SIGTERM, as its
/// own installer waits. It ignores SIGTERM while clients are connected, so
/// still running after this means VMs are using it.
pub const ORIGINAL_STOP_WAIT_SECS: u64 = 5;

/// What exists already. Produced by [`super::probe`] on macOS, or built by
/// hand in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallState {
    /// The installed binary.
    pub binary: Option<ObservedBinary>,
    /// The install record next to it.
    pub stamp: Option<String>,
    /// The entitlements file next to it.
    pub entitlements: Option<ObservedFile>,
    /// The job file.
    pub plist: Option<ObservedFile>,
    /// The install directory.
    pub install_dir: Option<FileMeta>,
    /// The log directory.
    pub log_dir: Option<FileMeta>,
    /// The state directory (system install only; see [`crate::Paths::state_dir`]).
    pub state_dir: Option<FileMeta>,
    /// The job file's directory.
    pub plist_dir: Option<FileMeta>,
    /// Users and groups (left empty for the user scope).
    pub accounts: Accounts,
    /// Whether launchd has the job.
    pub job: JobStatus,
    /// The running broker's clients.
    pub clients: BrokerClients,
    /// The original broker's files found in the install directory (see
    /// [`ORIGINAL_LEFTOVERS`]).
    pub leftovers: Vec<PathBuf>,
}

impl InstallState {
    /// A machine where nothing of ours exists and no id is in use.
    pub fn empty() -> Self {
        Self {
            binary: None,
            stamp: None,
            entitlements: None,
            plist: None,
            install_dir: None,
            log_dir: None,
            state_dir: None,
            plist_dir: None,
            accounts: Accounts::default(),
            job: JobStatus::NotLoaded,
            clients: BrokerClients::NotAsked,
            leftovers: Vec::new(),
        }
    }

    /// Whether what is installed is the original C broker: its job file
    /// runs the binary with `Program` (ours uses `ProgramArguments`), or the
    /// running broker answered `status` with 4.
    pub fn is_original(&self) -> bool {
        self.clients == BrokerClients::Original
            || self.plist.as_ref().is_some_and(|f| {
                crate::job::job_dictionary(&f.contents).is_some_and(|d| d.contains_key("Program"))
            })
    }
}

/// Options of `install`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallOptions {
    /// Replace a running broker even if it has clients.
    pub force: bool,
}

/// Options of `uninstall`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UninstallOptions {
    /// Remove a running broker even if it has clients.
    pub force: bool,
    /// Also delete the [`SERVICE_ACCOUNT`] user and group (system scope).
    pub remove_account: bool,
    /// Also delete the log directory.
    pub remove_logs: bool,
}

/// A user and group to own a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// User name (for display).
    pub user: String,
    /// User id.
    pub uid: u32,
    /// Group name (for display).
    pub group: String,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// `root:wheel` (0:0).
    pub fn root() -> Self {
        Self {
            user: "root".into(),
            uid: 0,
            group: "wheel".into(),
            gid: 0,
        }
    }

    /// The service account with the given ids.
    pub fn service(uid: u32, gid: u32) -> Self {
        Self {
            user: SERVICE_ACCOUNT.into(),
            uid,
            group: SERVICE_ACCOUNT.into(),
            gid,
        }
    }

    fn matches(&self, meta: &FileMeta) -> bool {
        meta.uid == self.uid && meta.gid == self.gid
    }
}

/// The install record kept next to the installed binary.
///
/// Signing changes the binary, so the installed copy never equals the file
/// it came from. The stamp remembers what the installed copy was made from
/// (source hash, entitlements hash, signing identifier) and what it looked
/// like right after signing; when all of that still holds, the binary is up
/// to date and is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// SHA-256 of the source binary.
    pub source_sha256: String,
    /// SHA-256 of the entitlements file it was signed with.
    pub entitlements_sha256: String,
    /// The codesign identifier (the label).
    pub identifier: String,
    /// SHA-256 of the installed binary right after signing.
    pub installed_sha256: String,
}

const STAMP_HEADER: &str = "# vmnet-broker install record; written by `vmnet-broker install`";

impl Stamp {
    /// Reads a stamp; `None` if any field is missing.
    pub fn parse(text: &str) -> Option<Self> {
        let field = |key: &str| {
            text.lines().find_map(|line| {
                let (k, v) = line.split_once(' ')?;
                (k == key).then(|| v.trim().to_owned())
            })
        };
        Some(Self {
            source_sha256: field("source-sha256")?,
            entitlements_sha256: field("entitlements-sha256")?,
            identifier: field("identifier")?,
            installed_sha256: field("installed-sha256")?,
        })
    }

    /// The stamp as text.
    pub fn render(&self) -> String {
        format!(
            "{STAMP_HEADER}\nsource-sha256 {}\nentitlements-sha256 {}\nidentifier {}\n\
             installed-sha256 {}\n",
            self.source_sha256, self.entitlements_sha256, self.identifier, self.installed_sha256
        )
    }
}

/// One step of a plan.
///
/// Every action has a one-line description ([`Action::describe`]) and a
/// shell rendering ([`Action::shell`]). For the actions that run a program
/// (`launchctl`, `dscl`, `codesign`) the rendering is exactly the command
/// that [`super::execute`] runs; file actions are carried out with Rust's
/// standard library and rendered as the equivalent `install`, `cat`, `rm`
/// commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop the original broker as its own installer does: `launchctl kill
    /// SIGTERM <target>`, then wait up to `wait_secs` for its process to go.
    /// It ignores SIGTERM while clients are connected, so if it is still
    /// running then, VMs are using it: stop there, unless `force`.
    StopOriginal {
        /// `system/<label>` or `gui/<uid>/<label>`.
        target: String,
        /// Seconds to wait.
        wait_secs: u64,
        /// Go on even if it keeps running.
        force: bool,
    },
    /// `launchctl bootout <target>`, then wait until launchd no longer lists
    /// the job (launchd sends SIGTERM, then SIGKILL after `ExitTimeOut`).
    Bootout {
        /// `system/<label>` or `gui/<uid>/<label>`.
        target: String,
    },
    /// Create the service group with `dscl`.
    CreateGroup {
        /// Group name.
        name: String,
        /// `PrimaryGroupID`.
        gid: u32,
    },
    /// Create the hidden service user with `dscl`.
    CreateUser {
        /// User name.
        name: String,
        /// `UniqueID`.
        uid: u32,
        /// `PrimaryGroupID`.
        gid: u32,
    },
    /// Set an existing user's primary group with `dscl`.
    SetPrimaryGroup {
        /// User name.
        name: String,
        /// The group id.
        gid: u32,
    },
    /// Create a directory (and missing parents) and set its owner and mode.
    EnsureDir {
        /// The directory.
        path: PathBuf,
        /// Permission bits.
        mode: u32,
        /// Owner; `None` leaves it to the running user.
        owner: Option<Owner>,
    },
    /// Replace a file atomically with `contents`.
    WriteFile {
        /// The file.
        path: PathBuf,
        /// New contents.
        contents: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Owner; `None` leaves it to the running user.
        owner: Option<Owner>,
    },
    /// Copy a file over another, atomically.
    CopyFile {
        /// Source.
        from: PathBuf,
        /// Destination.
        to: PathBuf,
        /// Permission bits of the destination.
        mode: u32,
        /// Owner; `None` leaves it to the running user.
        owner: Option<Owner>,
    },
    /// Ad-hoc sign a binary with entitlements:
    /// `codesign --force --sign - --identifier <id> --entitlements <file> <path>`.
    Codesign {
        /// The binary.
        path: PathBuf,
        /// Signing identifier.
        identifier: String,
        /// Entitlements file.
        entitlements: PathBuf,
    },
    /// Write the install record, completing it with the hash of `binary`
    /// as it is at that moment.
    WriteStamp {
        /// The stamp file.
        path: PathBuf,
        /// The binary whose hash is recorded as `installed-sha256`.
        binary: PathBuf,
        /// The known fields (`installed_sha256` is filled in when run).
        stamp: Stamp,
        /// Permission bits.
        mode: u32,
        /// Owner; `None` leaves it to the running user.
        owner: Option<Owner>,
    },
    /// `launchctl bootstrap <domain> <plist>`.
    Bootstrap {
        /// `system` or `gui/<uid>`.
        domain: String,
        /// The job file.
        plist: PathBuf,
    },
    /// Remove a file (nothing if it is gone already).
    RemoveFile {
        /// The file.
        path: PathBuf,
    },
    /// Remove a directory if it is empty (left in place, with a warning, if
    /// something else is in it).
    RemoveDir {
        /// The directory.
        path: PathBuf,
    },
    /// Remove a directory and everything in it.
    RemoveTree {
        /// The directory.
        path: PathBuf,
    },
    /// Delete a user with `dscl`.
    DeleteUser {
        /// User name.
        name: String,
    },
    /// Delete a group with `dscl`.
    DeleteGroup {
        /// Group name.
        name: String,
    },
}

fn s(p: &Path) -> String {
    path_string(p)
}

fn dscl(args: &[&str]) -> Vec<String> {
    let mut argv = vec!["dscl".to_owned(), ".".to_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv
}

fn owner_lines(path: &Path, mode: u32, owner: Option<&Owner>) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(o) = owner {
        lines.push(format!("chown {}:{} {}", o.user, o.group, quote(&s(path))));
    }
    lines.push(format!("chmod {mode:o} {}", quote(&s(path))));
    lines
}

impl Action {
    /// A one-line description for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Bootout { target } => format!("stop and unload the launchd job {target}"),
            Self::StopOriginal {
                target,
                wait_secs,
                force,
            } => format!(
                "stop the original vmnet-broker {target}: SIGTERM, then wait up to {wait_secs} s \
                 for it to exit; it keeps running while VMs are connected, {}",
                if *force {
                    "but --force goes on anyway"
                } else {
                    "and then nothing is changed (--force goes on anyway)"
                }
            ),
            Self::CreateGroup { name, gid } => format!("create group {name} (gid {gid})"),
            Self::CreateUser { name, uid, gid } => {
                format!("create hidden user {name} (uid {uid}, gid {gid})")
            }
            Self::SetPrimaryGroup { name, gid } => {
                format!("set the primary group of {name} to gid {gid}")
            }
            Self::EnsureDir { path, mode, owner } => format!(
                "create directory {} (mode {mode:o}{})",
                escape_path(path),
                owned_by(owner.as_ref())
            ),
            Self::WriteFile {
                path, mode, owner, ..
            } => format!(
                "write {} (mode {mode:o}{})",
                escape_path(path),
                owned_by(owner.as_ref())
            ),
            Self::CopyFile {
                from,
                to,
                mode,
                owner,
            } => format!(
                "copy {} to {} (mode {mode:o}{})",
                escape_path(from),
                escape_path(to),
                owned_by(owner.as_ref())
            ),
            Self::Codesign {
                path, identifier, ..
            } => format!(
                "sign {} ad hoc as {identifier} with the virtualization entitlement",
                escape_path(path)
            ),
            Self::WriteStamp { path, .. } => {
                format!("record what was installed in {}", escape_path(path))
            }
            Self::Bootstrap { domain, plist } => {
                format!("load the launchd job {} into {domain}", escape_path(plist))
            }
            Self::RemoveFile { path } => format!("remove {}", escape_path(path)),
            Self::RemoveDir { path } => format!("remove directory {} if empty", escape_path(path)),
            Self::RemoveTree { path } => {
                format!("remove directory {} and its contents", escape_path(path))
            }
            Self::DeleteUser { name } => format!("delete user {name}"),
            Self::DeleteGroup { name } => format!("delete group {name}"),
        }
    }

    /// The programs this action runs, as argument vectors (empty for file
    /// actions, which use the standard library).
    pub fn commands(&self) -> Vec<Vec<String>> {
        match self {
            Self::Bootout { target } => {
                vec![vec!["launchctl".into(), "bootout".into(), target.clone()]]
            }
            Self::StopOriginal { target, .. } => vec![vec![
                "launchctl".into(),
                "kill".into(),
                "SIGTERM".into(),
                target.clone(),
            ]],
            Self::CreateGroup { name, gid } => {
                let record = format!("/Groups/{name}");
                vec![
                    dscl(&["-create", &record]),
                    dscl(&["-create", &record, "PrimaryGroupID", &gid.to_string()]),
                    dscl(&["-create", &record, "RealName", "vmnet-broker daemon"]),
                    dscl(&["-create", &record, "Password", "*"]),
                ]
            }
            Self::CreateUser { name, uid, gid } => {
                let record = format!("/Users/{name}");
                vec![
                    dscl(&["-create", &record]),
                    dscl(&["-create", &record, "UniqueID", &uid.to_string()]),
                    dscl(&["-create", &record, "PrimaryGroupID", &gid.to_string()]),
                    dscl(&["-create", &record, "UserShell", "/usr/bin/false"]),
                    dscl(&["-create", &record, "NFSHomeDirectory", "/var/empty"]),
                    dscl(&["-create", &record, "RealName", "vmnet-broker daemon"]),
                    dscl(&["-create", &record, "Password", "*"]),
                    dscl(&["-create", &record, "IsHidden", "1"]),
                ]
            }
            Self::SetPrimaryGroup { name, gid } => vec![dscl(&[
                "-create",
                &format!("/Users/{name}"),
                "PrimaryGroupID",
                &gid.to_string(),
            ])],
            Self::Codesign {
                path,
                identifier,
                entitlements,
            } => vec![vec![
                "codesign".into(),
                "--force".into(),
                "--sign".into(),
                "-".into(),
                "--identifier".into(),
                identifier.clone(),
                "--entitlements".into(),
                s(entitlements),
                s(path),
            ]],
            Self::Bootstrap { domain, plist } => vec![vec![
                "launchctl".into(),
                "bootstrap".into(),
                domain.clone(),
                s(plist),
            ]],
            Self::DeleteUser { name } => vec![dscl(&["-delete", &format!("/Users/{name}")])],
            Self::DeleteGroup { name } => vec![dscl(&["-delete", &format!("/Groups/{name}")])],
            Self::EnsureDir { .. }
            | Self::WriteFile { .. }
            | Self::CopyFile { .. }
            | Self::WriteStamp { .. }
            | Self::RemoveFile { .. }
            | Self::RemoveDir { .. }
            | Self::RemoveTree { .. } => Vec::new(),
        }
    }

    /// Shell commands equivalent to this action, one per line.
    pub fn shell(&self) -> Vec<String> {
        if let Self::StopOriginal {
            target,
            wait_secs,
            force,
        } = self
        {
            let t = quote(target);
            let give_up = if *force {
                "break".to_owned()
            } else {
                format!(
                    "echo {} >&2; exit 1",
                    quote(&format!(
                        "VMs are still connected to the original vmnet-broker {target}: stop \
                         them and run this again, or pass --force"
                    ))
                )
            };
            return vec![
                format!("launchctl kill SIGTERM {t} || true"),
                format!(
                    "i=0; while launchctl print {t} 2>/dev/null | grep -q 'pid = '; do \
                     i=$((i + 1)); if [ \"$i\" -gt {} ]; then {give_up}; fi; sleep 0.1; done",
                    wait_secs * 10
                ),
            ];
        }
        let commands = self.commands();
        if !commands.is_empty() {
            return commands.iter().map(|argv| join(argv)).collect();
        }
        match self {
            Self::EnsureDir { path, mode, owner } => {
                let mut lines = vec![format!("mkdir -p {}", quote(&s(path)))];
                lines.extend(owner_lines(path, *mode, owner.as_ref()));
                lines
            }
            Self::WriteFile {
                path,
                contents,
                mode,
                owner,
            } => {
                let text = String::from_utf8_lossy(contents);
                let mut lines = vec![format!(
                    "cat > {} <<'VMNET_BROKER_EOF'\n{}VMNET_BROKER_EOF",
                    quote(&s(path)),
                    if text.ends_with('\n') || text.is_empty() {
                        text.into_owned()
                    } else {
                        format!("{text}\n")
                    }
                )];
                lines.extend(owner_lines(path, *mode, owner.as_ref()));
                lines
            }
            Self::CopyFile {
                from,
                to,
                mode,
                owner,
            } => {
                let owner_flags = owner
                    .as_ref()
                    .map(|o| format!(" -o {} -g {}", o.user, o.group))
                    .unwrap_or_default();
                vec![format!(
                    "install -m {mode:o}{owner_flags} {} {}",
                    quote(&s(from)),
                    quote(&s(to))
                )]
            }
            Self::WriteStamp {
                path,
                binary,
                stamp,
                mode,
                owner,
            } => {
                let mut line = format!("{{ printf '%s\\n' {}", quote(STAMP_HEADER));
                for (key, value) in [
                    ("source-sha256", &stamp.source_sha256),
                    ("entitlements-sha256", &stamp.entitlements_sha256),
                    ("identifier", &stamp.identifier),
                ] {
                    let _ = write!(line, " {}", quote(&format!("{key} {value}")));
                }
                let _ = write!(
                    line,
                    "; echo \"installed-sha256 $(shasum -a 256 {} | cut -d ' ' -f 1)\"; }} > {}",
                    quote(&s(binary)),
                    quote(&s(path))
                );
                let mut lines = vec![line];
                lines.extend(owner_lines(path, *mode, owner.as_ref()));
                lines
            }
            Self::RemoveFile { path } => vec![format!("rm -f {}", quote(&s(path)))],
            Self::RemoveDir { path } => vec![format!("rmdir {}", quote(&s(path)))],
            Self::RemoveTree { path } => vec![format!("rm -rf {}", quote(&s(path)))],
            // Program-running actions returned above.
            _ => Vec::new(),
        }
    }
}

fn owned_by(owner: Option<&Owner>) -> String {
    owner
        .map(|o| format!(", owner {}:{}", o.user, o.group))
        .unwrap_or_default()
}

/// An ordered list of actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Whether the actions need root (system scope).
    pub requires_root: bool,
    /// The steps, in order.
    pub actions: Vec<Action>,
    /// What the plan found worth saying that is not an action (an upgrade
    /// from the original broker, an account reused), for people.
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// One line per action, for people.
    pub fn describe(&self) -> Vec<String> {
        self.actions.iter().map(Action::describe).collect()
    }

    /// The plan as a shell script (`--dry-run`): each action as a comment
    /// with its description, followed by its commands.
    pub fn shell_script(&self) -> String {
        let mut out = String::from("#!/bin/sh\nset -e\n");
        for note in &self.notes {
            let _ = writeln!(out, "# note: {note}");
        }
        if self.actions.is_empty() {
            out.push_str("# nothing to do\n");
        }
        for action in &self.actions {
            let _ = writeln!(out, "\n# {}", action.describe());
            for line in action.shell() {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The running broker has clients and would be stopped.
    #[error(
        "the running broker {label} has {clients} connected client{plural}; stopping it now \
         would cut their virtual machines off the network. Stop the VMs that use vmnet-broker \
         networks and run this again, or pass --force to stop it anyway",
        plural = if *clients == 1 { "" } else { "s" }
    )]
    BrokerInUse {
        /// The job's label.
        label: String,
        /// Number of clients other than the installer.
        clients: u64,
    },
    /// The broker would be stopped, but could not be asked about clients.
    #[error(
        "could not ask the running broker {label} how many clients it has ({reason}); check \
         with `vmnet-broker status`, or pass --force to stop it anyway"
    )]
    BrokerStateUnknown {
        /// The job's label.
        label: String,
        /// What went wrong.
        reason: String,
    },
    /// No id in [`ACCOUNT_ID_RANGE`] is free for the service account.
    #[error(
        "no id from 200 to 400 is free for both a user and a group, so the {SERVICE_ACCOUNT} \
         account cannot be created; create the {SERVICE_ACCOUNT} user and group yourself and \
         run this again"
    )]
    NoFreeAccountId,
}

fn dir_ok(meta: Option<&FileMeta>, mode: u32, owner: Option<&Owner>) -> bool {
    meta.is_some_and(|m| m.mode == mode && owner.is_none_or(|o| o.matches(m)))
}

fn file_ok(file: Option<&ObservedFile>, contents: &[u8], mode: u32, owner: Option<&Owner>) -> bool {
    file.is_some_and(|f| f.contents == contents && dir_ok(Some(&f.meta), mode, owner))
}

fn check_clients(spec: &JobSpec, clients: &BrokerClients, force: bool) -> Result<(), PlanError> {
    if force {
        return Ok(());
    }
    match clients {
        // The original cannot be asked; StopOriginal finds out when run.
        BrokerClients::NotAsked | BrokerClients::Count(0) | BrokerClients::Original => Ok(()),
        BrokerClients::Count(n) => Err(PlanError::BrokerInUse {
            label: spec.label().to_owned(),
            clients: *n,
        }),
        BrokerClients::Unknown(reason) => Err(PlanError::BrokerStateUnknown {
            label: spec.label().to_owned(),
            reason: reason.clone(),
        }),
    }
}

/// Picks the service account's ids and the actions to get there.
fn plan_account(acc: &Accounts) -> Result<(Vec<Action>, u32, u32), PlanError> {
    let name = SERVICE_ACCOUNT.to_owned();
    let free_uid = |used: &BTreeSet<u32>| ACCOUNT_ID_RANGE.clone().find(|id| !used.contains(id));
    match (&acc.user, acc.group_gid) {
        (Some(user), Some(gid)) => {
            let mut actions = Vec::new();
            if user.primary_gid != Some(gid) {
                actions.push(Action::SetPrimaryGroup { name, gid });
            }
            Ok((actions, user.uid, gid))
        }
        (None, Some(gid)) => {
            let uid = if acc.used_uids.contains(&gid) {
                free_uid(&acc.used_uids).ok_or(PlanError::NoFreeAccountId)?
            } else {
                gid
            };
            Ok((vec![Action::CreateUser { name, uid, gid }], uid, gid))
        }
        (Some(user), None) => {
            let gid = if acc.used_gids.contains(&user.uid) {
                free_uid(&acc.used_gids).ok_or(PlanError::NoFreeAccountId)?
            } else {
                user.uid
            };
            Ok((
                vec![
                    Action::CreateGroup {
                        name: name.clone(),
                        gid,
                    },
                    Action::SetPrimaryGroup { name, gid },
                ],
                user.uid,
                gid,
            ))
        }
        (None, None) => {
            let id = ACCOUNT_ID_RANGE
                .clone()
                .find(|id| !acc.used_uids.contains(id) && !acc.used_gids.contains(id))
                .ok_or(PlanError::NoFreeAccountId)?;
            Ok((
                vec![
                    Action::CreateGroup {
                        name: name.clone(),
                        gid: id,
                    },
                    Action::CreateUser {
                        name,
                        uid: id,
                        gid: id,
                    },
                ],
                id,
                id,
            ))
        }
    }
}

fn binary_ok(
    state: &InstallState,
    source: &SourceBinary,
    expected: &Stamp,
    owner: Option<&Owner>,
) -> bool {
    let Some(binary) = &state.binary else {
        return false;
    };
    let Some(stamp) = state.stamp.as_deref().and_then(Stamp::parse) else {
        return false;
    };
    let same_source = stamp.source_sha256 == source.sha256 || binary.sha256 == source.sha256;
    same_source
        && stamp.entitlements_sha256 == expected.entitlements_sha256
        && stamp.identifier == expected.identifier
        && stamp.installed_sha256 == binary.sha256
        && dir_ok(Some(&binary.meta), 0o755, owner)
}

/// Plans `install`: everything needed to get from `state` to an installed,
/// loaded, up-to-date job for `spec` running `source`.
///
/// Order: stop the old job (only if something changes), service account,
/// install directory, entitlements, binary (copy, sign, record), log
/// directory, job file, load the job. Nothing is planned for what is
/// already right; a loaded job with nothing to change gives an empty plan.
///
/// # Errors
///
/// [`PlanError::BrokerInUse`] or [`PlanError::BrokerStateUnknown`] if the
/// running job would have to be stopped while it has (or may have) clients
/// and `opts.force` is off; [`PlanError::NoFreeAccountId`] if the service
/// account must be created and no id is free.
pub fn plan_install(
    spec: &JobSpec,
    state: &InstallState,
    source: &SourceBinary,
    opts: &InstallOptions,
) -> Result<Plan, PlanError> {
    let paths = spec.paths();
    let system = spec.is_system();
    let mut changes = Vec::new();
    let original = state.is_original();
    let mut notes = Vec::new();
    if original {
        notes.push(
            "upgrading in place from the original vmnet-broker (C implementation): same label, \
             Mach service and install directory; its clients keep working with this broker"
                .to_owned(),
        );
        if let (true, Some(user)) = (system, &state.accounts.user) {
            notes.push(format!(
                "reusing its {SERVICE_ACCOUNT} account (uid {})",
                user.uid
            ));
        }
    }

    let root = system.then(Owner::root);
    let service = if system {
        let (actions, uid, gid) = plan_account(&state.accounts)?;
        changes.extend(actions);
        Some(Owner::service(uid, gid))
    } else {
        None
    };

    if !system && state.plist_dir.is_none() {
        changes.push(Action::EnsureDir {
            path: paths.plist_dir.clone(),
            mode: 0o755,
            owner: None,
        });
    }

    if !dir_ok(state.install_dir.as_ref(), 0o755, root.as_ref()) {
        changes.push(Action::EnsureDir {
            path: paths.install_dir.clone(),
            mode: 0o755,
            owner: root.clone(),
        });
    }

    let entitlements = entitlements_plist_xml();
    if !file_ok(
        state.entitlements.as_ref(),
        &entitlements,
        0o644,
        root.as_ref(),
    ) {
        changes.push(Action::WriteFile {
            path: paths.entitlements.clone(),
            contents: entitlements.clone(),
            mode: 0o644,
            owner: root.clone(),
        });
    }

    let stamp = Stamp {
        source_sha256: source.sha256.clone(),
        entitlements_sha256: sha256_hex(&entitlements),
        identifier: spec.label().to_owned(),
        installed_sha256: String::new(),
    };
    if !binary_ok(state, source, &stamp, root.as_ref()) {
        changes.push(Action::CopyFile {
            from: source.path.clone(),
            to: paths.binary.clone(),
            mode: 0o755,
            owner: root.clone(),
        });
        changes.push(Action::Codesign {
            path: paths.binary.clone(),
            identifier: spec.label().to_owned(),
            entitlements: paths.entitlements.clone(),
        });
        changes.push(Action::WriteStamp {
            path: paths.stamp.clone(),
            binary: paths.binary.clone(),
            stamp,
            mode: 0o644,
            owner: root.clone(),
        });
    }

    for path in &state.leftovers {
        changes.push(Action::RemoveFile { path: path.clone() });
    }

    if !dir_ok(state.log_dir.as_ref(), 0o755, service.as_ref()) {
        changes.push(Action::EnsureDir {
            path: paths.log_dir.clone(),
            mode: 0o755,
            owner: service.clone(),
        });
    }

    // The broker remembers subnets there; only its account may write it.
    if system && !dir_ok(state.state_dir.as_ref(), 0o700, service.as_ref()) {
        changes.push(Action::EnsureDir {
            path: paths.state_dir.clone(),
            mode: 0o700,
            owner: service.clone(),
        });
    }

    let job = job_plist_xml(spec);
    if !file_ok(state.plist.as_ref(), &job, 0o644, root.as_ref()) {
        changes.push(Action::WriteFile {
            path: paths.plist.clone(),
            contents: job,
            mode: 0o644,
            owner: root.clone(),
        });
    }

    let loaded = state.job == JobStatus::Loaded;
    let mut actions = Vec::new();
    if loaded && !changes.is_empty() {
        stop_running(spec, state, original, opts.force, &mut actions)?;
    }
    let reload = !loaded || !changes.is_empty();
    actions.extend(changes);
    if reload {
        actions.push(Action::Bootstrap {
            domain: spec.domain(),
            plist: paths.plist,
        });
    }
    Ok(Plan {
        requires_root: system,
        actions,
        notes,
    })
}

/// The actions that stop the loaded job: the original broker is sent
/// SIGTERM first and must go within [`ORIGINAL_STOP_WAIT_SECS`] (checked when
/// run); ours is asked for its clients beforehand.
fn stop_running(
    spec: &JobSpec,
    state: &InstallState,
    original: bool,
    force: bool,
    actions: &mut Vec<Action>,
) -> Result<(), PlanError> {
    if original {
        actions.push(Action::StopOriginal {
            target: spec.service_target(),
            wait_secs: ORIGINAL_STOP_WAIT_SECS,
            force,
        });
    } else {
        check_clients(spec, &state.clients, force)?;
    }
    actions.push(Action::Bootout {
        target: spec.service_target(),
    });
    Ok(())
}

/// Plans `uninstall`: unload the job, remove the job file, the binary and
/// its companions, and on request the logs and the service account.
///
/// # Errors
///
/// [`PlanError::BrokerInUse`] or [`PlanError::BrokerStateUnknown`] if the
/// job is loaded, has (or may have) clients, and `opts.force` is off.
pub fn plan_uninstall(
    spec: &JobSpec,
    state: &InstallState,
    opts: &UninstallOptions,
) -> Result<Plan, PlanError> {
    let paths = spec.paths();
    let mut actions = Vec::new();
    let original = state.is_original();
    let notes = if original {
        vec!["removing the original vmnet-broker (C implementation)".to_owned()]
    } else {
        Vec::new()
    };
    if state.job == JobStatus::Loaded {
        stop_running(spec, state, original, opts.force, &mut actions)?;
    }
    if state.plist.is_some() {
        actions.push(Action::RemoveFile { path: paths.plist });
    }
    if state.binary.is_some() {
        actions.push(Action::RemoveFile { path: paths.binary });
    }
    if state.stamp.is_some() {
        actions.push(Action::RemoveFile { path: paths.stamp });
    }
    if state.entitlements.is_some() {
        actions.push(Action::RemoveFile {
            path: paths.entitlements,
        });
    }
    for path in &state.leftovers {
        actions.push(Action::RemoveFile { path: path.clone() });
    }
    if state.install_dir.is_some() {
        actions.push(Action::RemoveDir {
            path: paths.install_dir,
        });
    }
    if opts.remove_logs && state.log_dir.is_some() {
        actions.push(Action::RemoveTree {
            path: paths.log_dir,
        });
    }
    if opts.remove_account && spec.is_system() {
        // The remembered subnets belong to the account that goes away.
        if state.state_dir.is_some() {
            actions.push(Action::RemoveTree {
                path: paths.state_dir,
            });
        }
        if state.accounts.user.is_some() {
            actions.push(Action::DeleteUser {
                name: SERVICE_ACCOUNT.into(),
            });
        }
        if state.accounts.group_gid.is_some() {
            actions.push(Action::DeleteGroup {
                name: SERVICE_ACCOUNT.into(),
            });
        }
    }
    Ok(Plan {
        requires_root: spec.is_system(),
        actions,
        notes,
    })
}

#[cfg(test)]
mod tests;
