//! Credentials of the process at the other end of a Unix socket.

use std::os::fd::AsFd;

use vmnet_broker_core::broker::ClientCredentials;

/// pid, effective uid and gid of the peer (SO_PEERCRED on Linux).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn peer_credentials(fd: &impl AsFd) -> std::io::Result<ClientCredentials> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials as Opt};
    let c = getsockopt(fd, Opt).map_err(std::io::Error::from)?;
    Ok(ClientCredentials {
        pid: c.pid(),
        uid: c.uid(),
        gid: c.gid(),
    })
}

/// Effective uid and gid of the peer (getpeereid), and its pid
/// (LOCAL_PEERPID) on Apple systems.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn peer_credentials(fd: &impl AsFd) -> std::io::Result<ClientCredentials> {
    let (uid, gid) = nix::unistd::getpeereid(fd).map_err(std::io::Error::from)?;
    #[cfg(target_vendor = "apple")]
    let pid =
        nix::sys::socket::getsockopt(fd, nix::sys::socket::sockopt::LocalPeerPid).unwrap_or(-1);
    #[cfg(not(target_vendor = "apple"))]
    let pid = -1;
    Ok(ClientCredentials {
        pid,
        uid: uid.as_raw(),
        gid: gid.as_raw(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_pair_reports_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let c = peer_credentials(&a).unwrap();
        assert_eq!(c.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(c.gid, nix::unistd::getegid().as_raw());
        #[cfg(target_os = "linux")]
        assert_eq!(c.pid, i32::try_from(std::process::id()).unwrap());
    }
}
