//! Looking at the machine: files, accounts, the launchd job, the broker.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use vmnet_broker_proto::StatusReport;
use vmnet_broker_proto::text::{escape, escape_path};

use super::shell::join;
use super::{
    Accounts, BrokerClients, FileMeta, InstallState, JobSpec, JobStatus, ORIGINAL_LEFTOVERS,
    ObservedBinary, ObservedFile, SERVICE_ACCOUNT, SourceBinary, UserRecord,
};

/// What a finished command reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit code (`None` if a signal ended it).
    pub code: Option<i32>,
    /// Standard output, decoded lossily.
    pub stdout: String,
    /// Standard error, decoded lossily.
    pub stderr: String,
}

/// Runs programs. [`SystemRunner`] runs them for real; tests script the
/// answers.
pub trait CommandRunner {
    /// Runs `argv[0]` with the remaining arguments and waits for it.
    ///
    /// # Errors
    ///
    /// The program could not be started.
    fn run(&mut self, argv: &[String]) -> io::Result<CommandOutput>;
}

/// Runs programs with [`std::process::Command`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&mut self, argv: &[String]) -> io::Result<CommandOutput> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command line"))?;
        let output = Command::new(program).args(args).output()?;
        Ok(CommandOutput {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Looking at the machine failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", escape_path(path))]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A program could not be started.
    #[error("cannot run `{}`: {source} (this needs macOS)", escape(command))]
    Spawn {
        /// The command line.
        command: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A program failed.
    #[error("`{}` failed: {}", escape(command), escape(stderr))]
    Failed {
        /// The command line.
        command: String,
        /// Its standard error (trimmed).
        stderr: String,
    },
    /// The binary to install is not a regular file.
    #[error("{} is not a file: pass the path of the vmnet-broker binary to install", escape_path(.0))]
    NotAFile(PathBuf),
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex SHA-256 of a file's contents.
///
/// # Errors
///
/// The file cannot be read.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl SourceBinary {
    /// Reads the binary to install and hashes it.
    ///
    /// # Errors
    ///
    /// The path is not a regular file or cannot be read.
    pub fn read(path: &Path) -> Result<Self, ProbeError> {
        let io_err = |source| ProbeError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = fs::metadata(path).map_err(io_err)?;
        if !meta.is_file() {
            return Err(ProbeError::NotAFile(path.to_owned()));
        }
        Ok(Self {
            path: path.to_owned(),
            sha256: sha256_file(path).map_err(io_err)?,
        })
    }
}

fn read_meta(path: &Path) -> Result<Option<FileMeta>, ProbeError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(FileMeta {
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ProbeError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn read_file(path: &Path) -> Result<Option<ObservedFile>, ProbeError> {
    let Some(meta) = read_meta(path)? else {
        return Ok(None);
    };
    match fs::read(path) {
        Ok(contents) => Ok(Some(ObservedFile { meta, contents })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ProbeError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn run(runner: &mut dyn CommandRunner, argv: &[&str]) -> Result<CommandOutput, ProbeError> {
    let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
    runner.run(&argv).map_err(|source| ProbeError::Spawn {
        command: join(&argv),
        source,
    })
}

fn run_ok(runner: &mut dyn CommandRunner, argv: &[&str]) -> Result<String, ProbeError> {
    let out = run(runner, argv)?;
    if out.success {
        Ok(out.stdout)
    } else {
        let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
        Err(ProbeError::Failed {
            command: join(&argv),
            stderr: out.stderr.trim().to_owned(),
        })
    }
}

/// Parses `dscl . -list /Users UniqueID` (or `/Groups PrimaryGroupID`)
/// output: one `name   id` per line. Lines whose id is not a `u32` (such
/// as `nobody -2`) are skipped.
pub fn parse_dscl_list(output: &str) -> Vec<(String, u32)> {
    output
        .lines()
        .filter_map(|line| {
            let line = line.trim_end();
            let (name, id) = line.rsplit_once(char::is_whitespace)?;
            Some((name.trim().to_owned(), id.parse().ok()?))
        })
        .filter(|(name, _)| !name.is_empty())
        .collect()
}

/// Parses `dscl . -read <record> <key>` output (`Key: value`) and returns
/// the value of `key` as a number.
pub fn parse_dscl_read(output: &str, key: &str) -> Option<u32> {
    output.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().parse().ok())?
    })
}

fn probe_accounts(runner: &mut dyn CommandRunner) -> Result<Accounts, ProbeError> {
    let users = parse_dscl_list(&run_ok(
        runner,
        &["dscl", ".", "-list", "/Users", "UniqueID"],
    )?);
    let groups = parse_dscl_list(&run_ok(
        runner,
        &["dscl", ".", "-list", "/Groups", "PrimaryGroupID"],
    )?);
    let uid = users
        .iter()
        .find(|(n, _)| n == SERVICE_ACCOUNT)
        .map(|(_, id)| *id);
    let user = match uid {
        Some(uid) => {
            let record = format!("/Users/{SERVICE_ACCOUNT}");
            let out = run_ok(runner, &["dscl", ".", "-read", &record, "PrimaryGroupID"])?;
            Some(UserRecord {
                uid,
                primary_gid: parse_dscl_read(&out, "PrimaryGroupID"),
            })
        }
        None => None,
    };
    Ok(Accounts {
        user,
        group_gid: groups
            .iter()
            .find(|(n, _)| n == SERVICE_ACCOUNT)
            .map(|(_, id)| *id),
        used_uids: users.iter().map(|(_, id)| *id).collect::<BTreeSet<_>>(),
        used_gids: groups.iter().map(|(_, id)| *id).collect::<BTreeSet<_>>(),
    })
}

/// The number of clients in a `status` report other than the process
/// `own_pid` (the installer asking). Run as root, the report lists every
/// client; otherwise hidden clients are counted too.
pub fn clients_in_status(report: &StatusReport, own_pid: u32) -> u64 {
    let own = report
        .clients
        .iter()
        .filter(|p| i64::from(p.pid) == i64::from(own_pid))
        .count();
    u64::try_from(report.client_count.saturating_sub(own)).unwrap_or(u64::MAX)
}

/// Looks at the machine for `spec`.
///
/// Reads the job's files (and the original broker's leftovers next to the
/// binary), asks `dscl` about users and groups (system scope only), asks
/// `launchctl print <target>` whether the job is loaded, and if it is, calls
/// `ask_broker`, which must ask the Mach service of `spec` (its label) for
/// the number of clients other than this process (see
/// [`clients_in_status`]) and answer [`BrokerClients::Original`] if the
/// broker answers `status` with 4. `ask_broker` connects to the Mach
/// service, so launchd starts the broker if it was not running; that is
/// harmless: it starts with no clients.
///
/// # Errors
///
/// A file cannot be read (other than not existing) or `dscl` fails.
pub fn probe(
    spec: &JobSpec,
    runner: &mut dyn CommandRunner,
    ask_broker: &mut dyn FnMut() -> BrokerClients,
) -> Result<InstallState, ProbeError> {
    let paths = spec.paths();
    let binary = match read_meta(&paths.binary)? {
        Some(meta) => Some(ObservedBinary {
            meta,
            sha256: sha256_file(&paths.binary).map_err(|source| ProbeError::Io {
                path: paths.binary.clone(),
                source,
            })?,
        }),
        None => None,
    };
    let stamp = read_file(&paths.stamp)?.map(|f| String::from_utf8_lossy(&f.contents).into_owned());
    let accounts = if spec.is_system() {
        probe_accounts(runner)?
    } else {
        Accounts::default()
    };
    let target = spec.service_target();
    let loaded = run(runner, &["launchctl", "print", &target])?.success;
    let (job, clients) = if loaded {
        (JobStatus::Loaded, ask_broker())
    } else {
        (JobStatus::NotLoaded, BrokerClients::NotAsked)
    };
    let mut leftovers = Vec::new();
    for name in ORIGINAL_LEFTOVERS {
        let path = paths.install_dir.join(name);
        if read_meta(&path)?.is_some() {
            leftovers.push(path);
        }
    }
    Ok(InstallState {
        leftovers,
        binary,
        stamp,
        entitlements: read_file(&paths.entitlements)?,
        plist: read_file(&paths.plist)?,
        install_dir: read_meta(&paths.install_dir)?,
        log_dir: read_meta(&paths.log_dir)?,
        state_dir: if spec.is_system() {
            read_meta(&paths.state_dir)?
        } else {
            None
        },
        plist_dir: read_meta(&paths.plist_dir)?,
        accounts,
        job,
        clients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dscl_lists_parse_and_skip_negative_ids() {
        let out = "_amavisd                 83\n_vmnetbroker   250\nnobody -2\nroot 0\n\n";
        assert_eq!(
            parse_dscl_list(out),
            [
                ("_amavisd".to_owned(), 83),
                ("_vmnetbroker".to_owned(), 250),
                ("root".to_owned(), 0)
            ]
        );
    }

    #[test]
    fn dscl_read_finds_the_key() {
        assert_eq!(
            parse_dscl_read("PrimaryGroupID: 250\n", "PrimaryGroupID"),
            Some(250)
        );
        assert_eq!(parse_dscl_read("UniqueID: 250\n", "PrimaryGroupID"), None);
        assert_eq!(
            parse_dscl_read("PrimaryGroupID: x\n", "PrimaryGroupID"),
            None
        );
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn status_client_count_leaves_out_the_asking_process() {
        let report: StatusReport = serde_json::from_value(serde_json::json!({
            "version": "0.1.0", "pid": 10, "backend": "vmnet", "uptime_seconds": 1.0,
            "network_idle_timeout_seconds": 120.0, "exit_idle_timeout_seconds": 120.0,
            "networks": [],
            "peers": [
                {"id": 1, "pid": 500, "uid": 501, "gid": 20, "networks": ["shared"],
                 "connected_seconds": 3.0},
                {"id": 2, "pid": 77, "uid": 0, "gid": 0, "networks": [],
                 "connected_seconds": 0.1}
            ],
            "peer_count": 3, "hidden_peers": 1,
            "counters": {"connects": 3, "disconnects": 0, "requests": 3, "acquires": 1,
                         "releases": 0, "creations": 1, "removals": 0, "failures": {}}
        }))
        .unwrap();
        assert_eq!(clients_in_status(&report, 77), 2);
        assert_eq!(clients_in_status(&report, 12345), 3);
    }
}
