//! The drop-in configuration directory: one file per network.
//!
//! `NAME.json` or `NAME.plist` (XML or binary) defines the network `NAME`.
//! Files are read when their network is about to be created, never cached,
//! so an edit applies to the next creation and never to a live network.
//!
//! Like sshd's StrictModes, a file is only trusted if it and the directory
//! are owned by a trusted user (root, and in development the broker's own
//! user) and are not writable by group or others; an untrusted file is
//! ignored with a logged reason. Development setups may turn the check off.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use vmnet_broker_proto::NetworkName;
use vmnet_broker_proto::text::escape_path;

use vmnet_broker_core::config::{
    BUILTIN_NAMES, ConfigError, ConfigSource, Lookup, NetworkConfig, ParseFailure, builtin,
    parse_json, parse_plist,
};

/// Where the system broker looks for drop-in files.
pub(crate) const DEFAULT_CONFIG_DIR: &str = "/etc/vmnet-broker.d";

/// Largest configuration file read (1 MiB); a larger file is an error.
const MAX_FILE_SIZE: u64 = 1 << 20;

const EXTENSIONS: [&str; 2] = ["json", "plist"];

/// A drop-in configuration directory.
#[derive(Debug, Clone)]
pub(crate) struct ConfigDir {
    path: PathBuf,
    trusted_owners: Vec<u32>,
    strict: bool,
}

impl ConfigDir {
    /// The directory at `path`, trusting files owned by root only, with
    /// permission checks on.
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            trusted_owners: vec![0],
            strict: true,
        }
    }

    /// The directory at `path` read under the ownership `rule`; `strict`
    /// as in [`ConfigDir::strict_permissions`].
    pub(crate) fn with_rule(
        path: impl Into<PathBuf>,
        rule: crate::config_owner::OwnerRule,
        strict: bool,
    ) -> Self {
        Self::new(path)
            .trust_owners(rule.trusted_owners())
            .strict_permissions(strict)
    }

    /// Also trusts files owned by these users (the broker's own uid when it
    /// runs unprivileged, for example).
    pub(crate) fn trust_owners(mut self, uids: impl IntoIterator<Item = u32>) -> Self {
        for uid in uids {
            if !self.trusted_owners.contains(&uid) {
                self.trusted_owners.push(uid);
            }
        }
        self
    }

    /// Turns the ownership and permission checks on or off.
    pub(crate) fn strict_permissions(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The files that define `stem`. Only "no such file" means a file is
    /// absent: any other failure to look (a directory that cannot be
    /// searched, for example) is an error, so that access control never
    /// falls back to a less restricted built-in.
    fn candidates(&self, stem: &str) -> Result<Vec<PathBuf>, ConfigError> {
        let mut found = Vec::new();
        for ext in EXTENSIONS {
            let path = self.path.join(format!("{stem}.{ext}"));
            match fs::symlink_metadata(&path) {
                Ok(_) => found.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(read_error(&path, &e)),
            }
        }
        Ok(found)
    }

    /// Checks that `path` is owned by a trusted user and writable only by
    /// its owner.
    fn check_secure(&self, path: &Path) -> Result<(), ConfigError> {
        if !self.strict {
            return Ok(());
        }
        insecurity(path, &self.trusted_owners).map_or(Ok(()), |reason| {
            Err(ConfigError::Insecure {
                path: path.to_owned(),
                reason,
            })
        })
    }

    /// Opens `path` without following a symlink and without blocking (a
    /// FIFO must not stall the broker), checks on the descriptor that it
    /// is a regular file that may be trusted, and reads it.
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, ConfigError> {
        let file = open_config(path).map_err(|e| read_error(path, &e))?;
        let meta = file.metadata().map_err(|e| read_error(path, &e))?;
        if !meta.file_type().is_file() {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                message: format!(
                    "it is {}, not a regular file",
                    describe_type(&meta.file_type())
                ),
            });
        }
        if self.strict
            && let Some(reason) = insecurity_of(&meta, &self.trusted_owners)
        {
            return Err(ConfigError::Insecure {
                path: path.to_owned(),
                reason,
            });
        }
        read_limited(file, path)
    }

    fn load_file(&self, path: &Path) -> Result<NetworkConfig, ConfigError> {
        self.check_secure(&self.path)?;
        let bytes = self.read_file(path)?;
        let is_plist = path.extension().is_some_and(|e| e == "plist");
        let result = if is_plist {
            parse_plist(&bytes)
        } else {
            parse_json(&bytes)
        };
        result.map_err(|failure| match failure {
            ParseFailure::Syntax(message) => ConfigError::Syntax {
                path: path.to_owned(),
                format: if is_plist { "property list" } else { "JSON" },
                message,
            },
            ParseFailure::Invalid(problems) => ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            },
        })
    }

    /// Validates the whole directory and reports every problem: unreadable
    /// or invalid files, insecure permissions, names defined twice, file
    /// names that are not network names, and static subnets or prefixes
    /// that overlap between networks. The networks listed as available are
    /// those the broker's own lookup finds. `reader` says whether a
    /// directory this process may not read is also closed to the broker.
    pub(crate) fn check(&self, reader: Reader) -> CheckReport {
        let mut report = CheckReport {
            dir: self.path.clone(),
            files: Vec::new(),
            general: Vec::new(),
            networks: Vec::new(),
            unreadable_here: false,
        };
        let listing = fs::read_dir(&self.path);
        if let (Reader::Other { uid }, Some(denied)) = (reader, self.denied(&listing)) {
            report.unreadable_here = true;
            let searchable = search_denied(&self.path).is_none();
            let unchecked = if searchable {
                "the networks defined there"
            } else {
                "the files in it (overrides of the built-in networks, other networks)"
            };
            report.general.push(Finding::error(format!(
                "cannot read {} as uid {uid} ({denied}), so {unchecked} were not checked; \
                 a broker running as root or as the directory's owner reads them: run \
                 `vmnet-broker check` as that user (for example with sudo) to check them. \
                 A broker running as uid {uid} cannot read them either",
                escape_path(&self.path)
            )));
            if searchable {
                report.add_networks(self, BUILTIN_NAMES.iter().copied());
            } else {
                // Not even the built-ins can be looked up: list them as
                // what the broker serves unless a file there replaces one.
                report.networks = BUILTIN_NAMES
                    .iter()
                    .map(|name| {
                        let source = format!(
                            "built-in, unless {} replaces it (not checked)",
                            escape_path(&self.path)
                        );
                        ((*name).to_owned(), source)
                    })
                    .collect();
                report.networks.sort();
            }
            return report;
        }
        let entries = match listing {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.general.push(Finding::note(format!(
                    "{} does not exist; only the built-in networks are available",
                    escape_path(&self.path)
                )));
                report.add_networks(self, BUILTIN_NAMES.iter().copied());
                return report;
            }
            Err(e) => {
                report.general.push(Finding::error(format!(
                    "cannot read {}: {e}; the networks defined there cannot be checked",
                    escape_path(&self.path)
                )));
                report.add_networks(self, BUILTIN_NAMES.iter().copied());
                return report;
            }
        };
        if let Err(e) = self.check_secure(&self.path) {
            report.general.push(Finding::error(e.to_string()));
        }
        // The type comes from the directory entry (or lstat), never from
        // following a symlink.
        let mut paths: Vec<(PathBuf, bool)> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                Some((e.path(), is_dir))
            })
            .collect();
        paths.sort();

        let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (path, is_dir) in paths {
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A directory named like a network file is reported, as the
            // broker refuses it; other directories are not ours.
            let looks_like_config = EXTENSIONS
                .iter()
                .any(|ext| file_name.ends_with(&format!(".{ext}")));
            if file_name.starts_with('.') || (is_dir && !looks_like_config) {
                continue;
            }
            let mut check = FileCheck {
                path: path.clone(),
                name: None,
                config: None,
                findings: Vec::new(),
                unreadable_here: false,
            };
            let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
            match ext.as_deref() {
                Some(e) if EXTENSIONS.contains(&e) => {}
                _ => {
                    check.findings.push(Finding::warning(
                        "ignored: only NAME.json and NAME.plist files define networks",
                    ));
                    report.files.push(check);
                    continue;
                }
            }
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            match NetworkName::new(&stem) {
                Ok(name) => check.name = Some(name.to_string()),
                Err(e) => {
                    check.findings.push(Finding::error(format!(
                        "the file name does not give a valid network name: {e}"
                    )));
                    report.files.push(check);
                    continue;
                }
            }
            if let Reader::Other { uid } = reader
                && let Err(e) = open_config(&path)
                && e.kind() == std::io::ErrorKind::PermissionDenied
            {
                // Closed to this user, not necessarily to the broker.
                check.findings.push(Finding::warning(format!(
                    "cannot read it as uid {uid} ({e}), so it was not checked; a broker \
                     running as root or as the directory's owner reads it: run \
                     `vmnet-broker check` as that user to check it"
                )));
                check.unreadable_here = true;
                report.unreadable_here = true;
                by_name.entry(stem).or_default().push(report.files.len());
                report.files.push(check);
                continue;
            }
            match self.load_file(&path) {
                Ok(config) => check.config = Some(config),
                Err(ConfigError::Invalid { problems, .. }) => {
                    check
                        .findings
                        .extend(problems.iter().map(|p| Finding::error(p.to_string())));
                }
                Err(e) => check.findings.push(Finding::error(strip_path(&e, &path))),
            }
            by_name.entry(stem).or_default().push(report.files.len());
            report.files.push(check);
        }

        for (name, idx) in &by_name {
            if idx.len() > 1 {
                let duplicate = ConfigError::Duplicate {
                    name: name.clone(),
                    paths: idx.iter().map(|&i| report.files[i].path.clone()).collect(),
                }
                .to_string();
                for &i in idx {
                    report.files[i]
                        .findings
                        .push(Finding::error(duplicate.clone()));
                    report.files[i].config = None;
                }
            }
        }
        report.check_overlaps();
        let names = BUILTIN_NAMES
            .iter()
            .copied()
            .chain(by_name.keys().map(String::as_str));
        report.add_networks(self, names);
        report
    }

    /// Why this process may not list or search the directory, if it is
    /// for lack of permission.
    fn denied(&self, listing: &std::io::Result<fs::ReadDir>) -> Option<String> {
        match listing {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(e.to_string()),
            _ => search_denied(&self.path),
        }
    }
}

/// The error if this process may not search `dir` (look up names in it),
/// for lack of permission.
fn search_denied(dir: &Path) -> Option<String> {
    // Resolving "DIR/." needs search permission on DIR, as any name in it.
    match fs::symlink_metadata(dir.join(".")) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(e.to_string()),
        _ => None,
    }
}

/// Whose view of the directory `check` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    /// Root, or the directory's owner, taken to be the user the broker
    /// runs as: what this process cannot read, that broker cannot either.
    Broker,
    /// Another user (`uid`), who may well not be the broker's: a directory
    /// closed to it may be open to a broker running as root or as the
    /// directory's owner.
    Other {
        /// This process's effective uid.
        uid: u32,
    },
}

impl Reader {
    /// The view of a process running as `euid` on the directory `dir`.
    pub(crate) fn of(euid: u32, dir: &Path) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if euid == 0 || fs::metadata(dir).is_ok_and(|m| m.uid() == euid) {
                return Self::Broker;
            }
            Self::Other { uid: euid }
        }
        #[cfg(not(unix))]
        {
            let _ = (euid, dir);
            Self::Broker
        }
    }
}

impl ConfigDir {
    /// What the broker finds for `name`, with the file that defines it
    /// (`None` for a built-in network or when no single file does). This
    /// is the broker's lookup; `check` uses it too, so that the two always
    /// agree on which networks can be acquired.
    pub(crate) fn lookup_with_file(&self, name: &NetworkName) -> (Lookup, Option<PathBuf>) {
        if name.problem().is_some() {
            // Not a possible file stem: never build a path from it.
            return (Lookup::NotFound, None);
        }
        let files = match self.candidates(name.as_str()) {
            Ok(files) => files,
            Err(e) => return (Lookup::Broken(e), None),
        };
        match files.as_slice() {
            [] => (
                builtin(name.as_str()).map_or(Lookup::NotFound, Lookup::Found),
                None,
            ),
            [path] => match self.load_file(path) {
                Ok(config) => (Lookup::Found(config), Some(path.clone())),
                Err(e) => (Lookup::Broken(e), Some(path.clone())),
            },
            _ => (
                Lookup::Broken(ConfigError::Duplicate {
                    name: name.to_string(),
                    paths: files,
                }),
                None,
            ),
        }
    }

    /// The networks configured as persistent (valid files only), sorted.
    pub(crate) fn persistent_names(&self) -> Vec<String> {
        self.configured_names()
            .into_iter()
            .filter(|n| matches!(self.lookup(n), Lookup::Found(c) if c.persistent))
            .map(|n| n.to_string())
            .collect()
    }
}

impl ConfigSource for ConfigDir {
    fn lookup(&self, name: &NetworkName) -> Lookup {
        self.lookup_with_file(name).0
    }

    /// The built-ins and every `NAME.json` / `NAME.plist` whose stem is a
    /// network name (hidden files aside). An unreadable directory gives the
    /// built-ins only.
    fn configured_names(&self) -> Vec<NetworkName> {
        let mut names: Vec<NetworkName> = vmnet_broker_core::config::BUILTIN_NAMES
            .iter()
            .filter_map(|n| NetworkName::new(n).ok())
            .collect();
        if let Ok(entries) = fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                let path = entry.path();
                let ext_ok = path
                    .extension()
                    .is_some_and(|e| EXTENSIONS.iter().any(|x| e == *x));
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                if ext_ok
                    && !stem.starts_with('.')
                    && let Ok(name) = NetworkName::new(stem)
                {
                    names.push(name);
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

/// Why `path` may not be trusted, or `None` if it may.
fn insecurity(path: &Path, trusted: &[u32]) -> Option<String> {
    match fs::metadata(path) {
        Ok(meta) => insecurity_of(&meta, trusted),
        Err(e) => Some(format!("its ownership cannot be checked: {e}")),
    }
}

/// Why a file with this metadata may not be trusted, or `None` if it may.
#[cfg(unix)]
fn insecurity_of(meta: &fs::Metadata, trusted: &[u32]) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !trusted.contains(&meta.uid()) {
        let owners = trusted
            .iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join(" or ");
        return Some(format!(
            "it is owned by uid {}, not by uid {owners}; change its owner (chown)",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "it is writable by group or others (mode {:o}); run chmod go-w on it",
            meta.mode() & 0o7777
        ));
    }
    None
}

#[cfg(not(unix))]
fn insecurity_of(_meta: &fs::Metadata, _trusted: &[u32]) -> Option<String> {
    None
}

/// Opens a configuration file for reading: never through a symlink, never
/// blocking (on a FIFO or a device), closed on exec.
#[cfg(unix)]
fn open_config(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
}

#[cfg(not(unix))]
fn open_config(path: &Path) -> std::io::Result<fs::File> {
    fs::File::open(path)
}

/// What kind of file this is, for messages.
fn describe_type(t: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// Whether an operating-system error says "try again later" (the process
/// or system is out of something) rather than something about the file.
fn is_transient(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(
                nix::libc::EMFILE
                    | nix::libc::ENFILE
                    | nix::libc::ENOMEM
                    | nix::libc::ENOBUFS
                    | nix::libc::EINTR
                    | nix::libc::EAGAIN
                    | nix::libc::EIO
            )
        )
    }
    #[cfg(not(unix))]
    {
        matches!(
            e.kind(),
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::OutOfMemory
        )
    }
}

/// The error for a failure to look at or read `path`: transient failures
/// (out of descriptors, memory, I/O error) are told apart, because the
/// file may well be fine.
fn read_error(path: &Path, e: &std::io::Error) -> ConfigError {
    #[cfg(unix)]
    let message = match e.raw_os_error() {
        Some(nix::libc::ELOOP) => {
            "it is a symbolic link (or a loop of them); configuration files must be regular files"
                .to_owned()
        }
        // Opening a socket fails with ENXIO: name what is there instead.
        Some(nix::libc::ENXIO) => match fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_file() => format!(
                "it is {}, not a regular file",
                describe_type(&meta.file_type())
            ),
            _ => e.to_string(),
        },
        _ => e.to_string(),
    };
    #[cfg(not(unix))]
    let message = e.to_string();
    if is_transient(e) {
        ConfigError::Unavailable {
            path: path.to_owned(),
            message,
        }
    } else {
        ConfigError::Read {
            path: path.to_owned(),
            message,
        }
    }
}

fn read_limited(file: fs::File, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(path, &e))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(ConfigError::Read {
            path: path.to_owned(),
            message: format!("file is larger than {MAX_FILE_SIZE} bytes"),
        });
    }
    Ok(bytes)
}

/// The error text without the leading `path: `, for per-file listings.
fn strip_path(e: &ConfigError, path: &Path) -> String {
    let text = e.to_string();
    let prefix = format!("{}: ", escape_path(path));
    text.strip_prefix(&prefix)
        .map(str::to_owned)
        .unwrap_or(text)
}

/// How serious a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Severity {
    /// Information only.
    Note,
    /// Probably a mistake, but the configuration works.
    Warning,
    /// The network (or file) cannot be used.
    Error,
}

/// One thing `check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// What it is.
    pub message: String,
}

impl Finding {
    fn error(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
        }
    }
    fn warning(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            message: message.into(),
        }
    }
    fn note(message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Note,
            message: message.into(),
        }
    }
}

/// What `check` found about one file.
#[derive(Debug, Clone)]
pub(crate) struct FileCheck {
    /// The file.
    pub path: PathBuf,
    /// The network it defines, if its name is valid.
    pub name: Option<String>,
    /// The configuration, if the file is valid.
    pub config: Option<NetworkConfig>,
    /// Problems and remarks.
    pub findings: Vec<Finding>,
    /// The file could not be read by this user, who is not the broker's
    /// (see [`Reader::Other`]): not checked.
    pub unreadable_here: bool,
}

/// The result of [`ConfigDir::check`].
#[derive(Debug, Clone)]
pub(crate) struct CheckReport {
    /// The directory checked.
    pub dir: PathBuf,
    /// One entry per file, sorted by path.
    pub files: Vec<FileCheck>,
    /// Findings about the directory itself.
    pub general: Vec<Finding>,
    /// Every network that can be acquired, with where it comes from
    /// (`built-in` or the file path), sorted by name.
    pub networks: Vec<(String, String)>,
    /// This process could not read the directory, but the broker may:
    /// its files were not checked (see [`Reader::Other`]).
    pub unreadable_here: bool,
}

impl CheckReport {
    /// The persistent networks among the valid files, sorted (the built-in
    /// networks are never persistent): what
    /// [`ConfigDir::persistent_names`] gives, without reading the files
    /// again.
    pub(crate) fn persistent_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .files
            .iter()
            .filter(|f| f.config.as_ref().is_some_and(|c| c.persistent))
            .filter_map(|f| f.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Number of findings of severity [`Severity::Error`].
    pub(crate) fn error_count(&self) -> usize {
        self.general
            .iter()
            .chain(self.files.iter().flat_map(|f| &f.findings))
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    fn check_overlaps(&mut self) {
        let valid: Vec<(usize, String, NetworkConfig)> = self
            .files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((i, f.name.clone()?, f.config.clone()?)))
            .collect();
        let mut found: Vec<(usize, Finding)> = Vec::new();
        for (a, (ia, na, ca)) in valid.iter().enumerate() {
            for (ib, nb, cb) in &valid[a + 1..] {
                if let (Some(sa), Some(sb)) = (ca.ipv4, cb.ipv4)
                    && sa.overlaps(&sb)
                {
                    found.push((
                        *ia,
                        Finding::error(format!(
                            "subnet {sa} overlaps subnet {sb} of network {nb:?}"
                        )),
                    ));
                    found.push((
                        *ib,
                        Finding::error(format!(
                            "subnet {sb} overlaps subnet {sa} of network {na:?}"
                        )),
                    ));
                }
                if let (Some(pa), Some(pb)) = (ca.ipv6, cb.ipv6)
                    && pa.overlaps(&pb)
                {
                    found.push((
                        *ia,
                        Finding::error(format!("IPv6 prefix {pa} overlaps {pb} of network {nb:?}")),
                    ));
                    found.push((
                        *ib,
                        Finding::error(format!("IPv6 prefix {pb} overlaps {pa} of network {na:?}")),
                    ));
                }
                for ra in &ca.port_forwarding_rules {
                    if cb.port_forwarding_rules.iter().any(|rb| {
                        rb.protocol == ra.protocol && rb.external_port == ra.external_port
                    }) {
                        found.push((
                            *ia,
                            Finding::warning(format!(
                                "{} port {} is also forwarded by network {nb:?}; only one of them can be live at a time",
                                ra.protocol.as_str(),
                                ra.external_port
                            )),
                        ));
                    }
                }
            }
        }
        for (i, finding) in found {
            self.files[i].findings.push(finding);
        }
    }

    /// Lists the networks among `names` that the broker's lookup finds,
    /// with where each comes from. A name whose lookup fails, and whose
    /// files have no error reported yet, gets an error saying why.
    fn add_networks<'a>(&mut self, dir: &ConfigDir, names: impl IntoIterator<Item = &'a str>) {
        let mut networks: BTreeMap<String, String> = BTreeMap::new();
        for name in names {
            let Ok(network) = NetworkName::new(name) else {
                continue;
            };
            match dir.lookup_with_file(&network) {
                (Lookup::Found(_), None) => {
                    networks.insert(name.to_owned(), "built-in".to_owned());
                }
                (Lookup::Found(_), Some(path)) => {
                    let source = escape_path(&path).into_owned();
                    let source = if builtin(name).is_some() {
                        format!("{source} (replaces the built-in)")
                    } else {
                        source
                    };
                    networks.insert(name.to_owned(), source);
                }
                (Lookup::NotFound, _) => {}
                (Lookup::Broken(_), Some(path))
                    if self
                        .files
                        .iter()
                        .any(|f| f.path == path && f.unreadable_here) =>
                {
                    networks.insert(
                        name.to_owned(),
                        format!(
                            "{} (not checked: unreadable as this user)",
                            escape_path(&path)
                        ),
                    );
                }
                (Lookup::Broken(e), _) => {
                    let explained = self.files.iter().any(|f| {
                        f.name.as_deref() == Some(name)
                            && f.findings.iter().any(|x| x.severity == Severity::Error)
                    });
                    if !explained {
                        self.general.push(Finding::error(format!(
                            "{e}; network {name:?} cannot be acquired"
                        )));
                    }
                }
            }
        }
        self.networks = networks.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use vmnet_broker_proto::Mode;

    fn own_uid() -> u32 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(std::env::temp_dir())
            .map(|m| m.uid())
            .unwrap_or(0)
    }

    fn dir_with(files: &[(&str, &str)]) -> (tempfile::TempDir, ConfigDir) {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for (name, body) in files {
            let p = tmp.path().join(name);
            fs::write(&p, body).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let uid = {
            use std::os::unix::fs::MetadataExt;
            fs::metadata(tmp.path()).unwrap().uid()
        };
        let dir = ConfigDir::new(tmp.path()).trust_owners([uid, own_uid()]);
        (tmp, dir)
    }

    fn name(s: &str) -> NetworkName {
        NetworkName::new(s).unwrap()
    }

    #[test]
    fn lookup_reads_json_and_plist_and_falls_back_to_builtins() {
        let plist = r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>mode</key><string>host</string></dict></plist>"#;
        let (_tmp, dir) = dir_with(&[("lab.json", r#"{"mode": "shared"}"#), ("iso.plist", plist)]);
        assert!(matches!(dir.lookup(&name("lab")), Lookup::Found(c) if c.mode == Mode::Shared));
        assert!(matches!(dir.lookup(&name("iso")), Lookup::Found(c) if c.mode == Mode::Host));
        assert!(matches!(dir.lookup(&name("shared")), Lookup::Found(_)));
        assert_eq!(dir.lookup(&name("nope")), Lookup::NotFound);
    }

    #[test]
    fn a_drop_in_overrides_a_builtin() {
        let (_tmp, dir) = dir_with(&[("shared.json", r#"{"mode": "host"}"#)]);
        assert!(matches!(dir.lookup(&name("shared")), Lookup::Found(c) if c.mode == Mode::Host));
    }

    #[test]
    fn broken_and_duplicate_files_break_only_their_name() {
        let (_tmp, dir) = dir_with(&[
            ("bad.json", r#"{"mode": "shared", "mtu": "big"}"#),
            ("twice.json", r#"{"mode": "host"}"#),
            ("twice.plist", "<plist><dict/></plist>"),
            ("good.json", r#"{"mode": "host"}"#),
        ]);
        match dir.lookup(&name("bad")) {
            Lookup::Broken(e) => assert!(e.to_string().contains("mtu: must be an integer"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            dir.lookup(&name("twice")),
            Lookup::Broken(ConfigError::Duplicate { .. })
        ));
        assert!(matches!(dir.lookup(&name("good")), Lookup::Found(_)));
    }

    #[test]
    fn files_writable_by_others_are_ignored() {
        let (tmp, dir) = dir_with(&[("open.json", r#"{"mode": "host"}"#)]);
        let p = tmp.path().join("open.json");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        match dir.lookup(&name("open")) {
            Lookup::Broken(ConfigError::Insecure { reason, .. }) => {
                assert!(reason.contains("chmod go-w"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let relaxed = dir.clone().strict_permissions(false);
        assert!(matches!(relaxed.lookup(&name("open")), Lookup::Found(_)));
    }

    #[test]
    fn untrusted_owner_is_ignored() {
        let (tmp, _) = dir_with(&[("x.json", r#"{"mode": "host"}"#)]);
        let strict_root_only = ConfigDir::new(tmp.path());
        if own_uid() != 0 {
            assert!(matches!(
                strict_root_only.lookup(&name("x")),
                Lookup::Broken(ConfigError::Insecure { .. })
            ));
        } else {
            assert!(matches!(
                strict_root_only.lookup(&name("x")),
                Lookup::Found(_)
            ));
        }
    }

    #[test]
    fn check_reports_every_problem() {
        let (_tmp, dir) = dir_with(&[
            (
                "a.json",
                r#"{"mode": "host", "subnet": "192.168.100.0", "mask": "255.255.254.0"}"#,
            ),
            (
                "b.json",
                r#"{"mode": "host", "subnet": "192.168.101.0", "mask": "255.255.255.0"}"#,
            ),
            ("c.json", r#"{"mode": "shared", "nat4": true, "mtu": 1}"#),
            ("d.json", "{"),
            ("bad name.json", r#"{"mode": "host"}"#),
            ("notes.txt", "hello"),
            ("e.json", r#"{"mode": "host"}"#),
            ("e.plist", "<plist><dict/></plist>"),
        ]);
        let report = dir.check(Reader::Broker);
        let text = |f: &FileCheck| {
            f.findings
                .iter()
                .map(|x| x.message.clone())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        let by_file = |n: &str| {
            report
                .files
                .iter()
                .find(|f| f.path.file_name().unwrap() == n)
                .map(text)
                .unwrap()
        };
        assert!(by_file("a.json").contains("overlaps subnet 192.168.101.0/24 of network \"b\""));
        assert!(by_file("b.json").contains("overlaps subnet 192.168.100.0/23"));
        let c = by_file("c.json");
        assert!(c.contains("nat4") && c.contains("mtu"), "{c}");
        assert!(by_file("d.json").contains("not a valid JSON document"));
        assert!(by_file("bad name.json").contains("not give a valid network name"));
        assert!(by_file("notes.txt").contains("ignored"));
        assert!(by_file("e.json").contains("more than one file"));
        // e.plist also lacks `mode`: 1+1+2+1+1+1+2.
        assert_eq!(report.error_count(), 9, "{report:#?}");
        let names: Vec<&str> = report.networks.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "host", "shared"]);
    }

    #[test]
    fn check_of_a_missing_directory_is_clean() {
        let report = ConfigDir::new("/nonexistent/vmnet-broker.d").check(Reader::Broker);
        assert_eq!(report.error_count(), 0);
        assert_eq!(report.networks.len(), 2);
    }
}
