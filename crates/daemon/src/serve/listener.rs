//! Binding the development socket safely: refuse when another broker
//! answers on the path, replace a stale socket file, never delete anything
//! that is not a socket.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use tracing::{info, warn};

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another broker answers on the path.
    #[error(
        "another broker is already serving on {0}; stop it first, or choose another path with --socket"
    )]
    AlreadyServing(PathBuf),
    /// The path exists and is not a socket.
    #[error(
        "{0} exists and is not a socket; refusing to replace it (choose another --socket path)"
    )]
    NotASocket(PathBuf),
    /// Another operation failed.
    #[error("cannot listen on {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

/// A bound listener plus the lock that makes it ours; removes the socket
/// file when dropped.
#[derive(Debug)]
pub struct Listener {
    pub listener: mio::net::UnixListener,
    pub path: PathBuf,
    _lock: Flock<File>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Binds `path`, replacing a stale socket file.
pub fn bind(path: &Path) -> Result<Listener, BindError> {
    let io_err = |source| BindError::Io {
        path: path.to_owned(),
        source,
    };
    // The lock file serialises brokers starting at the same time.
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err)?;
    let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| BindError::AlreadyServing(path.to_owned()))?;

    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(BindError::NotASocket(path.to_owned()));
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(BindError::AlreadyServing(path.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                warn!(path = %path.display(), "replacing a stale socket file");
                fs::remove_file(path).map_err(io_err)?;
            }
            Err(e) => return Err(io_err(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let listener = mio::net::UnixListener::bind(path).map_err(io_err)?;
    // Any local user may connect; access is decided per network from the
    // peer's credentials, as with the Mach service.
    fs::set_permissions(path, fs::Permissions::from_mode(0o666)).map_err(io_err)?;
    info!(path = %path.display(), "listening on the development socket");
    Ok(Listener {
        listener,
        path: path.to_owned(),
        _lock: lock,
    })
}
