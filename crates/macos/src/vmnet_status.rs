//! vmnet status codes and modes, and the error built from them.
//!
//! This module is portable on purpose: the numbers and the messages users
//! read are tested on every OS, while the calls that produce them live in the
//! macOS-only `vmnet` module.
//!
//! The numeric values are not printed in Apple's documentation, which lists
//! only the names (`vmnet_return_t`, `operating_modes_t`); every public
//! binding agrees on them (crate `vmnet` 0.10.0, `src/ffi/vmnet.rs`, and
//! other public bindings; see `docs/macos-sources.md`, "vmnet").

use std::fmt;

use vmnet_broker_proto::Mode;

/// A `vmnet_return_t` value (`uint32_t` in C).
///
/// Kept open: a value this version does not know is carried as is and shown
/// as unknown, never mapped to another status.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VmnetStatus(pub u32);

macro_rules! vmnet_statuses {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        impl VmnetStatus {
            $($(#[$doc])* pub const $name: VmnetStatus = VmnetStatus($value);)*

            /// The C name of the status (`VMNET_MEM_FAILURE`), if known.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

vmnet_statuses! {
    /// `VMNET_SUCCESS`: the call worked.
    VMNET_SUCCESS = 1000,
    /// `VMNET_FAILURE`: generic failure.
    VMNET_FAILURE = 1001,
    /// `VMNET_MEM_FAILURE`: out of memory, and also what the network API
    /// reports when the process lacks the virtualization entitlement
    /// (third-party observation, see [`VmnetError`]).
    VMNET_MEM_FAILURE = 1002,
    /// `VMNET_INVALID_ARGUMENT`: a parameter was rejected.
    VMNET_INVALID_ARGUMENT = 1003,
    /// `VMNET_SETUP_INCOMPLETE`: the interface is not set up yet.
    VMNET_SETUP_INCOMPLETE = 1004,
    /// `VMNET_INVALID_ACCESS`: permission denied.
    VMNET_INVALID_ACCESS = 1005,
    /// `VMNET_PACKET_TOO_BIG`: a packet exceeds the MTU.
    VMNET_PACKET_TOO_BIG = 1006,
    /// `VMNET_BUFFER_EXHAUSTED`: kernel buffers are exhausted.
    VMNET_BUFFER_EXHAUSTED = 1007,
    /// `VMNET_TOO_MANY_PACKETS`: too many packets in one call.
    VMNET_TOO_MANY_PACKETS = 1008,
    /// `VMNET_SHARING_SERVICE_BUSY`: the internet sharing service is busy.
    VMNET_SHARING_SERVICE_BUSY = 1009,
    /// `VMNET_NOT_AUTHORIZED`: the process is not allowed to use vmnet.
    VMNET_NOT_AUTHORIZED = 1010,
}

impl VmnetStatus {
    /// Whether this is `VMNET_SUCCESS`.
    pub fn is_success(self) -> bool {
        self == Self::VMNET_SUCCESS
    }
}

impl fmt::Display for VmnetStatus {
    /// `VMNET_MEM_FAILURE (1002)`, or `unknown vmnet status (4242)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "unknown vmnet status ({})", self.0),
        }
    }
}

impl fmt::Debug for VmnetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A vmnet operating mode (`operating_modes_t`, `uint32_t` in C).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VmnetMode(pub u32);

impl VmnetMode {
    /// `VMNET_HOST_MODE`: host-only network.
    pub const HOST: Self = Self(1000);
    /// `VMNET_SHARED_MODE`: NAT through the host.
    pub const SHARED: Self = Self(1001);
    /// `VMNET_BRIDGED_MODE`: bridged to a host interface. The macOS 26
    /// network API does not accept it (its documentation names shared and
    /// host-only mode only), so the broker never uses it.
    pub const BRIDGED: Self = Self(1002);
}

impl From<Mode> for VmnetMode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Shared => Self::SHARED,
            Mode::Host => Self::HOST,
        }
    }
}

/// A vmnet call failed.
///
/// The message names the call and the status with its number, for example
/// `vmnet_network_create failed: VMNET_MEM_FAILURE (1002)`, followed by a
/// hint when the status has a likely cause we know of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {status}{}", hint(*.status))]
pub struct VmnetError {
    /// The C function that failed, e.g. `vmnet_network_create`.
    pub operation: &'static str,
    /// What it reported.
    pub status: VmnetStatus,
}

impl VmnetError {
    /// An error for `operation` with `status`.
    pub fn new(operation: &'static str, status: VmnetStatus) -> Self {
        Self { operation, status }
    }
}

fn hint(status: VmnetStatus) -> &'static str {
    match status {
        VmnetStatus::VMNET_MEM_FAILURE => {
            "; this usually means the binary is not signed with the \
             com.apple.security.virtualization entitlement: sign it with \
             scripts/macos-sign (see docs/macos.md)"
        }
        VmnetStatus::VMNET_NOT_AUTHORIZED | VmnetStatus::VMNET_INVALID_ACCESS => {
            "; the process is not allowed to use vmnet: check the binary's \
             entitlements with `codesign -d --entitlements - <binary>`"
        }
        VmnetStatus::VMNET_INVALID_ARGUMENT => {
            "; vmnet rejected the configuration: check the network's settings \
             with `vmnet-broker check`"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_display_names_the_status_and_its_number() {
        assert_eq!(
            VmnetStatus::VMNET_MEM_FAILURE.to_string(),
            "VMNET_MEM_FAILURE (1002)"
        );
        assert_eq!(VmnetStatus(1010).to_string(), "VMNET_NOT_AUTHORIZED (1010)");
        assert_eq!(VmnetStatus(4242).to_string(), "unknown vmnet status (4242)");
        assert_eq!(VmnetStatus(4242).name(), None);
    }

    #[test]
    fn all_known_statuses_are_contiguous_from_1000() {
        for code in 1000..=1010 {
            assert!(VmnetStatus(code).name().is_some(), "{code} has no name");
        }
        assert!(VmnetStatus(999).name().is_none());
        assert!(VmnetStatus(1011).name().is_none());
        assert!(VmnetStatus(1000).is_success());
        assert!(!VmnetStatus(1001).is_success());
    }

    #[test]
    fn mem_failure_hints_at_the_missing_entitlement() {
        let message =
            VmnetError::new("vmnet_network_create", VmnetStatus::VMNET_MEM_FAILURE).to_string();
        assert!(
            message.starts_with("vmnet_network_create failed: VMNET_MEM_FAILURE (1002); "),
            "{message}"
        );
        assert!(
            message.contains("com.apple.security.virtualization"),
            "{message}"
        );
    }

    #[test]
    fn statuses_without_a_known_cause_have_no_hint() {
        let message = VmnetError::new("vmnet_network_create", VmnetStatus(1009)).to_string();
        assert_eq!(
            message,
            "vmnet_network_create failed: VMNET_SHARING_SERVICE_BUSY (1009)"
        );
    }

    #[test]
    fn modes_match_the_vmnet_numbers() {
        assert_eq!(VmnetMode::from(Mode::Host), VmnetMode(1000));
        assert_eq!(VmnetMode::from(Mode::Shared), VmnetMode(1001));
    }
}
