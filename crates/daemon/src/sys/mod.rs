//! Operating-system services the daemon needs: peer credentials of a Unix
//! socket, the account database for access lists, process limits, and
//! returning freed memory to the system.

mod accounts;
mod memory;
mod peer;

pub(crate) use accounts::SystemAccounts;
pub(crate) use memory::release_free_memory;
pub(crate) use peer::peer_credentials;

pub(crate) use vmnet_broker_client::effective_uid;

/// Raises the soft limit on open files to the hard limit, so that the broker
/// can serve many clients. Returns the limit now in force.
pub(crate) fn raise_fd_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    // macOS refuses values above OPEN_MAX for the soft limit.
    let target = if cfg!(target_os = "macos") {
        hard.min(10240)
    } else {
        hard
    };
    if target > soft && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
        return Some(target);
    }
    Some(soft)
}
