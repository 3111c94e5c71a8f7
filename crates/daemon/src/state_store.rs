//! The broker's state file: the subnets it remembers, one small file in the
//! state directory.
//!
//! Only the broker writes it, and always atomically: the new content goes
//! to a temporary file in the same directory, which is flushed to disk and
//! then renamed over `state.json`, and the directory is flushed too, so a
//! crash or power loss leaves either the old file or the new one. Every
//! operation goes through a descriptor of the directory opened once at
//! start, files are opened without following symbolic links, and the
//! directory must belong to the broker's user and be writable by nobody
//! else. A state file that is missing, unreadable or damaged is a warning:
//! the broker then starts with nothing remembered.
//!
//! The content itself (format, validation) is `vmnet_broker_core::state`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};
use nix::unistd::{UnlinkatFlags, fsync, unlinkat};

use vmnet_broker_core::state::{RememberedSubnets, SubnetStore};
use vmnet_broker_proto::text::escape_path;

use crate::config_owner::MACOS_FIRST_PERSON_UID;

/// The state file's name inside the state directory.
pub(crate) const STATE_FILE: &str = "state.json";

/// Largest state file read (1 MiB: thousands of networks).
const MAX_STATE_SIZE: i64 = 1 << 20;

/// Where the system broker keeps its state on macOS (`/var/db` is where
/// system daemons keep theirs; `install` creates it for the broker's
/// account).
pub(crate) const MACOS_SYSTEM_STATE_DIR: &str = "/var/db/vmnet-broker";

/// The state directory when `--state-dir` is not given.
///
/// - macOS: the system broker (root or a system account, uid below 500)
///   uses [`MACOS_SYSTEM_STATE_DIR`]; a per-user broker
///   `~/Library/Application Support/vmnet-broker`.
/// - elsewhere: beside an explicit `--socket` (`broker.sock` gives
///   `broker.state`), so every broker with its own socket has its own
///   state; otherwise `$XDG_STATE_HOME/vmnet-broker`; otherwise beside the
///   default socket.
pub(crate) fn default_state_dir(explicit_socket: Option<&Path>) -> PathBuf {
    state_dir_from(
        cfg!(target_os = "macos"),
        crate::sys::effective_uid(),
        explicit_socket,
        std::env::var_os("XDG_STATE_HOME"),
        std::env::var_os("HOME"),
        vmnet_broker_client::default_socket_path,
    )
}

/// The rule of [`default_state_dir`] with its inputs passed in.
fn state_dir_from(
    macos: bool,
    euid: u32,
    explicit_socket: Option<&Path>,
    xdg_state_home: Option<OsString>,
    home: Option<OsString>,
    default_socket: impl FnOnce() -> PathBuf,
) -> PathBuf {
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if macos {
        if let Some(home) = absolute(home).filter(|_| euid >= MACOS_FIRST_PERSON_UID) {
            return home.join("Library/Application Support/vmnet-broker");
        }
        return PathBuf::from(MACOS_SYSTEM_STATE_DIR);
    }
    if let Some(socket) = explicit_socket {
        return beside_socket(socket);
    }
    if let Some(dir) = absolute(xdg_state_home) {
        return dir.join("vmnet-broker");
    }
    beside_socket(&default_socket())
}

fn beside_socket(socket: &Path) -> PathBuf {
    let dir = socket.with_extension("state");
    if dir == socket {
        let mut s = socket.as_os_str().to_owned();
        s.push(".d");
        PathBuf::from(s)
    } else {
        dir
    }
}

/// An open state directory.
#[derive(Debug)]
pub(crate) struct StateStore {
    path: PathBuf,
    dir: OwnedFd,
}

impl StateStore {
    /// Opens `path`, creating it (mode 0700, with missing parents) if it
    /// does not exist. Refuses a symbolic link, a directory of another
    /// user, or one that group or others may write to.
    pub(crate) fn open(path: &Path) -> Result<Self, String> {
        let show = escape_path(path);
        match std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
        {
            Ok(()) => {}
            Err(e) => return Err(format!("cannot create the state directory {show}: {e}")),
        }
        let dir = openat(
            nix::fcntl::AT_FDCWD,
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => {
                format!("the state directory {show} is a symbolic link or not a directory")
            }
            e => format!("cannot open the state directory {show}: {e}"),
        })?;
        let st = fstat(&dir).map_err(|e| format!("cannot inspect {show}: {e}"))?;
        let euid = crate::sys::effective_uid();
        if st.st_uid != euid {
            return Err(format!(
                "the state directory {show} belongs to uid {}, not to the broker's user (uid {euid})",
                st.st_uid
            ));
        }
        if mode_bits(&st) & 0o022 != 0 {
            return Err(format!(
                "the state directory {show} may be written by group or others (mode {:o}); run chmod go-w on it",
                mode_bits(&st) & 0o7777
            ));
        }
        Ok(Self {
            path: path.to_owned(),
            dir,
        })
    }

    /// The path of the state file, for messages.
    pub(crate) fn file_path(&self) -> PathBuf {
        self.path.join(STATE_FILE)
    }

    /// Reads the state file. Never fails: problems come back as warnings,
    /// with whatever could be read.
    pub(crate) fn load(&self) -> (RememberedSubnets, Vec<String>) {
        let file = self.file_path();
        match self.read_file() {
            Ok(bytes) => {
                let (subnets, warnings) = RememberedSubnets::decode(&bytes);
                let warnings = warnings
                    .into_iter()
                    .map(|w| format!("{}: {w}", escape_path(&file)))
                    .collect();
                (subnets, warnings)
            }
            Err(why) => (
                RememberedSubnets::new(),
                vec![format!(
                    "{}: {why}; starting with no remembered subnets",
                    escape_path(&file)
                )],
            ),
        }
    }

    fn read_file(&self) -> Result<Vec<u8>, String> {
        // O_NONBLOCK: a FIFO planted in place of the file must not block
        // the broker; it is refused below as not a regular file.
        let fd = openat(
            &self.dir,
            STATE_FILE,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOENT => "no state file yet".to_owned(),
            Errno::ELOOP => "is a symbolic link, which is not followed".to_owned(),
            e => format!("cannot open: {e}"),
        })?;
        let st = fstat(&fd).map_err(|e| format!("cannot inspect: {e}"))?;
        check_regular(&st)?;
        if st.st_size > MAX_STATE_SIZE {
            return Err(format!(
                "is {} bytes, more than the {MAX_STATE_SIZE} a state file may have",
                st.st_size
            ));
        }
        let mut bytes = Vec::new();
        File::from(fd)
            .take(MAX_STATE_SIZE as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read: {e}"))?;
        Ok(bytes)
    }

    /// Replaces the state file atomically with `subnets`.
    pub(crate) fn save(&self, subnets: &RememberedSubnets) -> Result<(), String> {
        let file = self.file_path();
        let tmp = format!(".{STATE_FILE}.{}.tmp", std::process::id());
        let result = self.write_tmp_and_rename(&tmp, &subnets.encode());
        if result.is_err() {
            let _ = unlinkat(&self.dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        result.map_err(|e| format!("cannot write {}: {e}", escape_path(&file)))
    }

    fn write_tmp_and_rename(&self, tmp: &str, bytes: &[u8]) -> Result<(), String> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(0o644);
        let fd = match openat(&self.dir, tmp, flags, mode) {
            // A temporary file left by a crash of a process with our pid.
            Err(Errno::EEXIST) => {
                unlinkat(&self.dir, tmp, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| format!("cannot remove the stale {tmp}: {e}"))?;
                openat(&self.dir, tmp, flags, mode)
            }
            other => other,
        }
        .map_err(|e| format!("cannot create {tmp}: {e}"))?;
        let mut f = File::from(fd);
        f.write_all(bytes)
            .map_err(|e| format!("cannot write {tmp}: {e}"))?;
        fsync(&f).map_err(|e| format!("cannot flush {tmp}: {e}"))?;
        drop(f);
        renameat(&self.dir, tmp, &self.dir, STATE_FILE)
            .map_err(|e| format!("cannot rename {tmp}: {e}"))?;
        fsync(&self.dir).map_err(|e| format!("cannot flush the directory: {e}"))?;
        Ok(())
    }
}

/// The mode bits of `st` (`mode_t` is 16 bits on macOS, 32 on Linux).
#[allow(clippy::useless_conversion)]
fn mode_bits(st: &FileStat) -> u32 {
    u32::from(st.st_mode)
}

impl SubnetStore for StateStore {
    fn save(&mut self, subnets: &RememberedSubnets) {
        match Self::save(self, subnets) {
            Ok(()) => tracing::debug!(networks = subnets.len(), "state file written"),
            Err(e) => tracing::warn!("{e}; the remembered subnets are kept in memory only"),
        }
    }
}

fn check_regular(st: &FileStat) -> Result<(), String> {
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFREG {
        return Err("is not a regular file".into());
    }
    let euid = crate::sys::effective_uid();
    if st.st_uid != euid {
        return Err(format!(
            "belongs to uid {}, not to the broker's user (uid {euid}); it was not written by the broker",
            st.st_uid
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::Ipv4Addr;
    use std::os::unix::fs::PermissionsExt;

    use vmnet_broker_core::config::{Ipv4Subnet, Ipv6Prefix};
    use vmnet_broker_core::proto::NetworkName;
    use vmnet_broker_core::state::Remembered;

    use super::*;

    fn sample() -> RememberedSubnets {
        let mut s = RememberedSubnets::new();
        s.insert(
            NetworkName::new("shared").unwrap(),
            Remembered {
                ipv4: Ipv4Subnet::new(Ipv4Addr::new(192, 168, 64, 0), 24),
                ipv6: Ipv6Prefix::new("fd00:1::".parse().unwrap(), 64),
            },
        );
        s
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn saves_and_loads_and_leaves_no_temporary_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/state");
        let store = StateStore::open(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let (empty, warnings) = store.load();
        assert!(empty.is_empty());
        assert!(warnings[0].contains("no state file yet"), "{warnings:?}");
        store.save(&sample()).unwrap();
        store.save(&sample()).unwrap();
        assert_eq!(names(&dir), vec![STATE_FILE]);
        let again = StateStore::open(&dir).unwrap();
        assert_eq!(again.load(), (sample(), vec![]));
    }

    #[test]
    fn damaged_files_are_warnings() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let good = sample().encode();
        for bad in [&good[..good.len() - 5], b"garbage\x00\xff", b""] {
            std::fs::write(store.file_path(), bad).unwrap();
            let (s, w) = store.load();
            assert!(s.is_empty());
            assert_eq!(w.len(), 1, "{w:?}");
            assert!(w[0].starts_with(&store.file_path().display().to_string()));
        }
        // A damaged file is simply replaced by the next save.
        store.save(&sample()).unwrap();
        assert_eq!(store.load().0, sample());
    }

    #[test]
    fn a_leftover_temporary_file_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(tmp.path()).unwrap();
        let stale = tmp
            .path()
            .join(format!(".{STATE_FILE}.{}.tmp", std::process::id()));
        std::fs::write(&stale, b"half written").unwrap();
        store.save(&sample()).unwrap();
        assert_eq!(names(tmp.path()), vec![STATE_FILE]);
    }

    #[test]
    fn symlinks_and_fifos_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StateStore::open(&tmp.path().join("s")).unwrap();
        let target = tmp.path().join("elsewhere.json");
        std::fs::write(&target, sample().encode()).unwrap();
        std::os::unix::fs::symlink(&target, store.file_path()).unwrap();
        let (s, w) = store.load();
        assert!(s.is_empty());
        assert!(w[0].contains("symbolic link"), "{w:?}");
        // Saving replaces the link itself, never writes through it.
        store.save(&RememberedSubnets::new()).unwrap();
        assert_eq!(
            std::fs::read(&target).unwrap(),
            sample().encode(),
            "the link's target was written"
        );
        std::fs::remove_file(store.file_path()).unwrap();
        nix::unistd::mkfifo(&store.file_path(), Mode::from_bits_truncate(0o600)).unwrap();
        let (s, w) = store.load();
        assert!(s.is_empty());
        assert!(w[0].contains("not a regular file"), "{w:?}");
    }

    #[test]
    fn unsafe_directories_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = StateStore::open(&link).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = StateStore::open(&real).unwrap_err();
        assert!(e.contains("chmod go-w"), "{e}");
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(StateStore::open(&file).is_err());
    }

    #[test]
    fn default_directories() {
        let sock = || PathBuf::from("/run/user/501/vmnet-broker.sock");
        let home = Some(OsString::from("/Users/ann"));
        assert_eq!(
            state_dir_from(true, 0, None, None, home.clone(), sock),
            PathBuf::from("/var/db/vmnet-broker")
        );
        assert_eq!(
            state_dir_from(true, 250, None, None, home.clone(), sock),
            PathBuf::from("/var/db/vmnet-broker")
        );
        assert_eq!(
            state_dir_from(true, 501, None, None, home.clone(), sock),
            PathBuf::from("/Users/ann/Library/Application Support/vmnet-broker")
        );
        let explicit = Path::new("/tmp/t/broker.sock");
        assert_eq!(
            state_dir_from(
                false,
                501,
                Some(explicit),
                Some("/x".into()),
                home.clone(),
                sock
            ),
            PathBuf::from("/tmp/t/broker.state")
        );
        assert_eq!(
            state_dir_from(
                false,
                501,
                Some(Path::new("/tmp/s.state")),
                None,
                None,
                sock
            ),
            PathBuf::from("/tmp/s.state.d")
        );
        assert_eq!(
            state_dir_from(
                false,
                501,
                None,
                Some("/home/ann/.local/state".into()),
                None,
                sock
            ),
            PathBuf::from("/home/ann/.local/state/vmnet-broker")
        );
        // A relative XDG_STATE_HOME is ignored, as the specification says.
        assert_eq!(
            state_dir_from(false, 501, None, Some("rel".into()), None, sock),
            PathBuf::from("/run/user/501/vmnet-broker.state")
        );
    }
}
