//! What the client asks of the operating system directly (through nix and
//! libc constants; no `unsafe`).

/// The effective user id of this process: the uid in the default socket
/// path, and the owner the daemon trusts (the daemon asks through this
/// function too; the launchd planner, which cannot depend on the client,
/// calls nix the same way).
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

/// The effective user id of the process at the other end of the connected
/// Unix socket `fd` (`SO_PEERCRED` on Linux), as the kernel recorded it
/// when the connection was made.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn peer_uid(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    Ok(getsockopt(&fd, PeerCredentials)?.uid())
}

/// The effective user id of the process at the other end of the connected
/// Unix socket `fd` (getpeereid(3)).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn peer_uid(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u32> {
    Ok(nix::unistd::getpeereid(fd)?.0.as_raw())
}

/// Waits until `fd` is readable or hung up (poll(2) without a timeout);
/// retries on EINTR.
pub(crate) fn wait_readable(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
