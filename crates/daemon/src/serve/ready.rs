//! `serve --ready-fd N`: one byte on an inherited descriptor when the
//! broker serves, then the descriptor is closed.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// The descriptor to notify, taken over before the broker opens anything
/// of its own (so the number cannot name the broker's own socket).
#[derive(Debug)]
pub(super) struct ReadyFd(File);

impl ReadyFd {
    /// Takes ownership of the inherited descriptor `fd`.
    ///
    /// # Errors
    ///
    /// A message when `fd` is a standard stream or not an open descriptor.
    pub(super) fn inherit(fd: i32) -> Result<Self, String> {
        if fd <= 2 {
            return Err(format!(
                "--ready-fd {fd}: standard input, output and error cannot be used"
            ));
        }
        // Only an open descriptor may be owned; the fd directory lists
        // exactly the open ones of this process.
        let listed = Path::new("/dev/fd").join(fd.to_string());
        if std::fs::symlink_metadata(&listed).is_err() {
            return Err(format!("--ready-fd {fd}: no such open file descriptor"));
        }
        // SAFETY: `fd` is open (checked above), was inherited from the
        // process that started us for this purpose, and nothing else in
        // this process owns it: this runs before the broker opens any file
        // or socket, and the number is taken over only once.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self(File::from(owned)))
    }

    /// Writes one byte and closes the descriptor. A reader that has gone
    /// away is not an error of the broker's: it is logged only.
    pub(super) fn notify(mut self) {
        if let Err(e) = self.0.write_all(b"\n") {
            tracing::warn!("cannot write to the --ready-fd descriptor: {e}");
        }
    }
}
