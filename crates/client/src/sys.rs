//! The few C library calls the client makes directly (the FFI module of
//! this crate).

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, cannot fail and has no
    // preconditions.
    unsafe { libc::geteuid() }
}

/// Flags for `send(2)` on the development socket: `MSG_NOSIGNAL` turns a
/// write to a closed connection into `EPIPE` instead of a SIGPIPE that
/// would kill a C host program.
#[cfg(not(target_vendor = "apple"))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;

/// Apple systems have no `MSG_NOSIGNAL`; socket2 sets `SO_NOSIGPIPE` on
/// every socket it creates there, which has the same effect.
#[cfg(target_vendor = "apple")]
pub(crate) const SEND_FLAGS: libc::c_int = 0;
