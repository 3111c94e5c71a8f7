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

/// The effective user id of the process at the other end of the connected
/// Unix socket `fd` (`SO_PEERCRED` on Linux), as the kernel recorded it
/// when the connection was made.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn peer_uid(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes and `len` holds the
    // size of `cred`, as getsockopt(2) requires for SO_PEERCRED; the
    // descriptor is borrowed, so it stays open during the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// The effective user id of the process at the other end of the connected
/// Unix socket `fd` (getpeereid(3)).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn peer_uid(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: both out-pointers are valid for writes; the descriptor is
    // borrowed, so it stays open during the call.
    let rc = unsafe { libc::getpeereid(fd.as_raw_fd(), &mut uid, &mut gid) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(uid)
}

/// Waits until `fd` is readable or hung up (poll(2) without a timeout);
/// retries on EINTR.
pub(crate) fn wait_readable(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one valid pollfd and the count says one; the
        // descriptor is borrowed, so it stays open during the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
        if rc >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
