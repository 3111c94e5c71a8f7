//! What the client asks of the operating system directly (through nix and
//! libc constants; no `unsafe`).

/// The effective user id of this process: the uid in the default socket
/// path, and the owner the daemon trusts. The one place in the workspace
/// that asks for it, apart from the launchd planner (which cannot depend
/// on the client; it calls nix the same way).
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
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
