//! Where the development socket lives (docs/protocol.md, section 3).

use std::ffi::OsString;
use std::path::PathBuf;

/// Environment variable naming the development socket.
pub const SOCKET_ENV: &str = "VMNET_BROKER_SOCKET";

/// File name of the socket inside `$XDG_RUNTIME_DIR`.
const SOCKET_FILE: &str = "vmnet-broker.sock";

/// The development socket path from the environment, first that applies:
/// `$VMNET_BROKER_SOCKET`, `$XDG_RUNTIME_DIR/vmnet-broker.sock`,
/// `/tmp/vmnet-broker-$UID.sock` (`$UID` being the effective user id).
///
/// Empty variables count as unset. An explicit path, when a caller has one,
/// comes before all of these; [`crate::Client::connect_socket`] takes it.
///
/// ```
/// let path = vmnet_broker_client::default_socket_path();
/// assert!(path.is_absolute() || std::env::var_os("VMNET_BROKER_SOCKET").is_some());
/// ```
pub fn default_socket_path() -> PathBuf {
    socket_path_from(
        std::env::var_os(SOCKET_ENV),
        std::env::var_os("XDG_RUNTIME_DIR"),
        crate::sys::effective_uid(),
    )
}

/// The rule itself, with its inputs passed in (testable without touching
/// the process environment).
pub(crate) fn socket_path_from(
    socket_env: Option<OsString>,
    runtime_dir: Option<OsString>,
    euid: u32,
) -> PathBuf {
    if let Some(path) = socket_env.filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(dir) = runtime_dir.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join(SOCKET_FILE);
    }
    PathBuf::from(format!("/tmp/vmnet-broker-{euid}.sock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_rule_that_applies_wins() {
        assert_eq!(
            socket_path_from(Some("/a.sock".into()), Some("/run/user/1".into()), 7),
            PathBuf::from("/a.sock")
        );
        assert_eq!(
            socket_path_from(None, Some("/run/user/1".into()), 7),
            PathBuf::from("/run/user/1/vmnet-broker.sock")
        );
        assert_eq!(
            socket_path_from(None, None, 501),
            PathBuf::from("/tmp/vmnet-broker-501.sock")
        );
    }

    #[test]
    fn empty_variables_count_as_unset() {
        assert_eq!(
            socket_path_from(Some("".into()), Some("".into()), 0),
            PathBuf::from("/tmp/vmnet-broker-0.sock")
        );
    }
}
