//! Who may write the broker's configuration.
//!
//! A broker must not be able to change its own configuration: if it were
//! compromised, it could otherwise give itself new networks, open port
//! forwards or widen access lists for its next start. So when the broker
//! runs as root or as a system account (the `_vmnetbroker` service account
//! of the macOS LaunchDaemon), only files owned by root are accepted, not
//! files owned by the broker's own account. A broker run by an ordinary
//! user (development, a per-user LaunchAgent) accepts that user's files as
//! well as root's.

use std::fmt;

/// macOS gives people uids from 501 and services lower ones.
pub(crate) const MACOS_FIRST_PERSON_UID: u32 = 500;

/// Below this uid an account is a system account: see
/// [`MACOS_FIRST_PERSON_UID`]; Linux distributions give people uids from
/// 1000 (`UID_MIN` in `login.defs`).
pub(crate) const FIRST_PERSON_UID: u32 = if cfg!(target_os = "macos") {
    MACOS_FIRST_PERSON_UID
} else {
    1000
};

/// The ownership rule in force for configuration files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerRule {
    /// Only root's files: the broker runs as root or as a system account.
    RootOnly {
        /// The broker's uid.
        euid: u32,
    },
    /// Root's files and those of the ordinary user the broker runs as.
    RootAndSelf {
        /// The broker's uid.
        euid: u32,
    },
}

impl OwnerRule {
    /// The rule for a broker running as `euid`.
    pub(crate) fn for_uid(euid: u32) -> Self {
        if euid < FIRST_PERSON_UID {
            Self::RootOnly { euid }
        } else {
            Self::RootAndSelf { euid }
        }
    }

    /// The owners accepted (root first).
    pub(crate) fn trusted_owners(&self) -> Vec<u32> {
        match *self {
            Self::RootOnly { .. } => vec![0],
            Self::RootAndSelf { euid } => vec![0, euid],
        }
    }
}

impl fmt::Display for OwnerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RootOnly { euid: 0 } => {
                f.write_str("the broker runs as root: only files owned by root are accepted")
            }
            Self::RootOnly { euid } => write!(
                f,
                "the broker runs as the system account uid {euid}: only files owned by root are \
                 accepted, not files of the broker's own account"
            ),
            Self::RootAndSelf { euid } => write!(
                f,
                "the broker runs as the ordinary user uid {euid}: files owned by root or by \
                 uid {euid} are accepted"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_system_accounts_trust_only_root() {
        assert_eq!(OwnerRule::for_uid(0).trusted_owners(), vec![0]);
        let service = OwnerRule::for_uid(250);
        assert_eq!(service.trusted_owners(), vec![0]);
        assert!(service.to_string().contains("system account uid 250"));
        assert!(OwnerRule::for_uid(0).to_string().contains("runs as root"));
    }

    #[test]
    fn ordinary_users_trust_themselves_and_root() {
        let rule = OwnerRule::for_uid(FIRST_PERSON_UID + 1);
        assert_eq!(rule.trusted_owners(), vec![0, FIRST_PERSON_UID + 1]);
        assert!(rule.to_string().contains("ordinary user"));
    }
}
