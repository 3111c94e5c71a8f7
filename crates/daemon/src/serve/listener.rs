//! Binding the development socket safely.
//!
//! The socket usually lives in a directory other users share (`/tmp`), so
//! every step assumes a local attacker who can create names there:
//!
//! - the directory must not be writable by another user, unless it is
//!   sticky (others cannot remove or rename our files) and owned by root or
//!   by the broker's user;
//! - the lock file `PATH.lock` is opened without following symlinks, must
//!   be a regular file with one link, owned by the broker's user and
//!   readable by nobody else, and is removed on a clean exit;
//! - the socket gets its mode from the umask at `bind` time, never from a
//!   `chmod` by path that a swapped symlink could redirect;
//! - nothing that is not a socket is ever removed, and a socket file is only
//!   replaced when nobody answers on it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::{Mode, umask};
use tracing::{info, warn};
use vmnet_broker_proto::text::escape_path;

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub(super) enum BindError {
    /// Another broker answers on the path.
    #[error(
        "another broker ({holder}) is already serving on {}; stop it first, or choose another path with --socket",
        escape_path(.path)
    )]
    AlreadyServing {
        /// The socket path.
        path: PathBuf,
        /// Who holds it: `pid N, uid U` as far as known.
        holder: String,
    },
    /// The path exists and is not a socket.
    #[error(
        "{} exists and is not a socket; refusing to replace it (choose another --socket path)",
        escape_path(.0)
    )]
    NotASocket(PathBuf),
    /// The path does not fit in a socket address.
    #[error(
        "{} is too long for a Unix socket address ({len} bytes; the limit is {max}); choose a shorter --socket path",
        escape_path(.path)
    )]
    TooLong {
        /// The socket path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The longest path the platform accepts.
        max: usize,
    },
    /// The directory, lock file or socket may be tampered with by another
    /// user.
    #[error("refusing to serve on {}: {reason}", escape_path(.path))]
    Unsafe {
        /// The file or directory concerned.
        path: PathBuf,
        /// What is wrong with it and how to fix it.
        reason: String,
    },
    /// Another operation failed.
    #[error("cannot listen on {}: {source}", escape_path(.path))]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

/// A bound listener plus the lock that makes it ours. Dropping it removes
/// the socket file and then the lock file (each only if it is still the one
/// this broker made), so the driver only has to drop it on exit.
#[derive(Debug)]
pub(super) struct Listener {
    pub listener: mio::net::UnixListener,
    pub path: PathBuf,
    /// Device and inode of the socket file this broker bound.
    socket_id: Option<(u64, u64)>,
    /// Declared after the socket so that it is dropped after it: the lock
    /// covers the removal of the socket file.
    _lock: LockGuard,
}

impl Drop for Listener {
    fn drop(&mut self) {
        remove_if_same(&self.path, self.socket_id);
    }
}

/// The held lock on `PATH.lock`; removes the file when dropped, while the
/// lock is still held.
#[derive(Debug)]
pub(super) struct LockGuard {
    path: PathBuf,
    id: (u64, u64),
    _lock: Flock<File>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        remove_if_same(&self.path, Some(self.id));
    }
}

/// Removes `path` if it is still the file `id` (device, inode), so that a
/// file another broker made since is left alone.
fn remove_if_same(path: &Path, id: Option<(u64, u64)>) {
    let Some(id) = id else { return };
    if let Ok(meta) = fs::symlink_metadata(path)
        && (meta.dev(), meta.ino()) == id
    {
        let _ = fs::remove_file(path);
    }
}

/// Binds `path`, replacing a stale socket file.
pub(super) fn bind(path: &Path) -> Result<Listener, BindError> {
    let io_err = |source| BindError::Io {
        path: path.to_owned(),
        source,
    };
    // Before anything is created: a path that cannot be bound must leave
    // no lock file behind.
    check_length(path)?;
    let euid = crate::sys::effective_uid();
    check_directory(path, euid)?;

    // The lock file serialises brokers starting at the same time.
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = lock(Path::new(&lock_path), path, euid)?;

    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(BindError::NotASocket(path.to_owned()));
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(stream) => {
                let holder = crate::sys::peer_credentials(&stream)
                    .map(|c| format!("pid {}, uid {}", c.pid, c.uid))
                    .unwrap_or_else(|_| "unknown process".to_owned());
                return Err(BindError::AlreadyServing {
                    path: path.to_owned(),
                    holder,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                warn!(path = %escape_path(path), "replacing a stale socket file");
                fs::remove_file(path).map_err(io_err)?;
            }
            Err(e) => return Err(io_err(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    // Any local user may connect; access is decided per network from the
    // peer's credentials, as with the Mach service. The mode comes from the
    // umask in force at bind(2), so no chmod by path follows (a path that
    // another user could swap for a symlink in between).
    let old = umask(Mode::from_bits_truncate(0o111));
    let bound = mio::net::UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(io_err)?;
    let socket_id = fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_socket())
        .map(|m| (m.dev(), m.ino()));
    info!(path = %escape_path(path), "listening on the development socket");
    Ok(Listener {
        listener,
        path: path.to_owned(),
        socket_id,
        _lock: lock,
    })
}

/// Fails if `path` does not fit in `sun_path`.
fn check_length(path: &Path) -> Result<(), BindError> {
    if std::os::unix::net::SocketAddr::from_pathname(path).is_ok() {
        return Ok(());
    }
    let max = if cfg!(target_vendor = "apple") {
        103
    } else {
        107
    };
    Err(BindError::TooLong {
        path: path.to_owned(),
        len: path.as_os_str().len(),
        max,
    })
}

/// The directory of the socket must not let another user replace our files:
/// owned by root or by us, and either writable by nobody else or sticky.
fn check_directory(path: &Path, euid: u32) -> Result<(), BindError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let meta = fs::metadata(&dir).map_err(|source| BindError::Io {
        path: path.to_owned(),
        source,
    })?;
    directory_problem(meta.uid(), meta.mode(), euid).map_or(Ok(()), |reason| {
        Err(BindError::Unsafe { path: dir, reason })
    })
}

/// Why a directory with this owner and mode is unsafe for the socket of a
/// broker running as `euid`, or `None`.
fn directory_problem(owner: u32, mode: u32, euid: u32) -> Option<String> {
    if owner != 0 && owner != euid {
        return Some(format!(
            "the directory is owned by uid {owner}, who could replace the socket or its lock file; use a directory owned by root or by uid {euid}"
        ));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Some(format!(
            "the directory is writable by other users (mode {:o}) and not sticky, so they could replace the socket or its lock file; use a private directory, or set the sticky bit (chmod +t)",
            mode & 0o7777
        ));
    }
    None
}

/// When the lock file belongs to another user whose broker answers on the
/// socket: that broker is serving (its lock is not ours to remove).
fn served_by_another_user(lock_path: &Path, socket: &Path, euid: u32) -> Option<BindError> {
    let meta = std::fs::symlink_metadata(lock_path).ok()?;
    if !meta.file_type().is_file() || meta.uid() == euid {
        return None;
    }
    // Connecting sends nothing; a listening broker accepts and sees the
    // connection close.
    std::os::unix::net::UnixStream::connect(socket).ok()?;
    Some(BindError::AlreadyServing {
        path: socket.to_owned(),
        holder: format!("uid {}", meta.uid()),
    })
}

/// Why the lock file could not be opened, when what is at its path is the
/// reason: a symlink (ELOOP, or EACCES where the kernel protects symlinks
/// in sticky directories), a directory, another kind of file, or a file of
/// another user. The path is only looked at for the message.
fn refusal_of(lock_path: &Path, euid: u32, error: &std::io::Error) -> Option<String> {
    let meta = match std::fs::symlink_metadata(lock_path) {
        Ok(meta) => meta,
        Err(_) if error.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Some("it is a symbolic link; remove it".to_owned());
        }
        Err(_) => return None,
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        Some("it is a symbolic link; remove it".to_owned())
    } else if kind.is_dir() {
        Some("it is a directory, not a regular file; remove it".to_owned())
    } else if !kind.is_file() {
        Some("it is not a regular file; remove it".to_owned())
    } else if meta.uid() != euid {
        Some(format!(
            "it is owned by uid {}, not by this broker's user (uid {euid}); remove it",
            meta.uid()
        ))
    } else {
        None
    }
}

/// Opens, checks and locks the lock file.
fn lock(lock_path: &Path, socket: &Path, euid: u32) -> Result<LockGuard, BindError> {
    let unsafe_lock = |reason: String| BindError::Unsafe {
        path: lock_path.to_owned(),
        reason,
    };
    let io_err = |source| BindError::Io {
        path: lock_path.to_owned(),
        source,
    };
    // A lock file removed by a broker that was exiting just as we opened it
    // is retried a few times: the lock must be on the file the path names.
    for _ in 0..5 {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // Never follow a symlink; never block on a FIFO.
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
            .open(lock_path)
            .map_err(|e| {
                if let Some(busy) = served_by_another_user(lock_path, socket, euid) {
                    return busy;
                }
                match refusal_of(lock_path, euid, &e) {
                    Some(reason) => unsafe_lock(reason),
                    None => io_err(e),
                }
            })?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.file_type().is_file() {
            return Err(unsafe_lock(
                "it is not a regular file; remove it".to_owned(),
            ));
        }
        if meta.uid() != euid {
            if let Some(busy) = served_by_another_user(lock_path, socket, euid) {
                return Err(busy);
            }
            return Err(unsafe_lock(format!(
                "it is owned by uid {}, not by this broker's user (uid {euid}); remove it",
                meta.uid()
            )));
        }
        if meta.nlink() != 1 {
            return Err(unsafe_lock(format!(
                "it has {} hard links; remove it",
                meta.nlink()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            // A lock file of an older version: ours, so make it private.
            nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(0o600))
                .map_err(|e| io_err(e.into()))?;
        }
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}, uid {}", meta.uid()),
                    Err(_) => format!("uid {}", meta.uid()),
                };
                return Err(BindError::AlreadyServing {
                    path: socket.to_owned(),
                    holder,
                });
            }
            Err((_, errno)) => return Err(io_err(errno.into())),
        };
        let id = (meta.dev(), meta.ino());
        match fs::symlink_metadata(lock_path) {
            Ok(now) if (now.dev(), now.ino()) == id => {}
            // Removed or replaced since we opened it: try again.
            _ => continue,
        }
        // Name the holder for the next broker that tries.
        let _ = lock.set_len(0);
        let _ = lock.rewind();
        let _ = writeln!(lock, "{}", std::process::id());
        return Ok(LockGuard {
            path: lock_path.to_owned(),
            id,
            _lock: lock,
        });
    }
    Err(unsafe_lock(
        "it keeps being replaced while this broker starts; is something removing it?".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_rules() {
        // Private, owned by us or root.
        assert_eq!(directory_problem(501, 0o40700, 501), None);
        assert_eq!(directory_problem(0, 0o40755, 501), None);
        // /tmp: world-writable but sticky and root's.
        assert_eq!(directory_problem(0, 0o41777, 501), None);
        // Another user's directory.
        assert!(directory_problem(502, 0o40700, 501).is_some());
        // Writable by others without the sticky bit.
        let why = directory_problem(0, 0o40777, 501).unwrap_or_default();
        assert!(why.contains("not sticky"), "{why}");
        assert!(directory_problem(501, 0o40770, 501).is_some());
    }
}
