//! The system account database, for `allowed_users` and `allowed_groups`.

use nix::unistd::{Gid, Group, Uid, User};
use vmnet_broker_core::broker::AccountLookup;

/// Looks names up with getpwnam_r / getgrnam_r. Consulted only when a
/// network restricts access.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemAccounts;

impl AccountLookup for SystemAccounts {
    fn user_id(&self, name: &str) -> Option<u32> {
        User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
    }

    fn group_id(&self, name: &str) -> Option<u32> {
        Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    }

    fn is_member(&self, uid: u32, gid: u32, group: u32) -> bool {
        if gid == group {
            return true;
        }
        let Some(user) = User::from_uid(Uid::from_raw(uid)).ok().flatten() else {
            return false;
        };
        if user.gid.as_raw() == group {
            return true;
        }
        Group::from_gid(Gid::from_raw(group))
            .ok()
            .flatten()
            .is_some_and(|g| g.mem.contains(&user.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves() {
        let a = SystemAccounts;
        assert_eq!(a.user_id("root"), Some(0));
        assert!(a.is_member(0, 0, 0));
        assert_eq!(a.user_id("no-such-user-vmnet-broker"), None);
    }
}
