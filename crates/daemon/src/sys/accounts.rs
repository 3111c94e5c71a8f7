//! The system account database, for `allowed_users` and `allowed_groups`.

use nix::unistd::Group;
#[cfg(target_os = "macos")]
use nix::unistd::User;
#[cfg(not(target_os = "macos"))]
use nix::unistd::{Gid, Uid, User};
use vmnet_broker_core::broker::Accounts;

/// Looks names up with getpwnam_r / getgrnam_r. Consulted only when a
/// network restricts access.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
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
        member_of(uid, group)
    }
}

/// macOS decides membership with its membership API, so that nested groups
/// and directory-service groups count (see `vmnet_broker_macos::membership`).
#[cfg(target_os = "macos")]
fn member_of(uid: u32, group: u32) -> bool {
    match vmnet_broker_macos::membership::is_member(uid, group) {
        Ok(member) => member,
        Err(errno) => {
            tracing::warn!(
                uid,
                gid = group,
                errno,
                "cannot check group membership; counting the user as not a member"
            );
            false
        }
    }
}

/// Elsewhere, the user's whole group list as the system builds it at login
/// (getgrouplist(3): the primary group plus every group from NSS, not only
/// the member lists of /etc/group).
#[cfg(not(target_os = "macos"))]
fn member_of(uid: u32, group: u32) -> bool {
    let Some(user) = User::from_uid(Uid::from_raw(uid)).ok().flatten() else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name.as_bytes()) else {
        return false;
    };
    match nix::unistd::getgrouplist(&name, user.gid) {
        Ok(groups) => groups.contains(&Gid::from_raw(group)),
        Err(e) => {
            tracing::warn!(
                uid,
                gid = group,
                "cannot list the user's groups ({e}); counting the user as not a member"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every supplementary membership the group database lists is seen,
    /// and a group the user is not in is not.
    #[test]
    #[cfg(not(target_os = "macos"))]
    fn supplementary_groups_count() {
        let a = SystemAccounts;
        let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
        for line in groups.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            let [_, _, gid, members] = fields[..] else {
                continue;
            };
            let Ok(gid) = gid.parse::<u32>() else {
                continue;
            };
            for member in members.split(',').filter(|m| !m.is_empty()) {
                let Some(user) = User::from_name(member).ok().flatten() else {
                    continue;
                };
                assert!(
                    a.is_member(user.uid.as_raw(), user.gid.as_raw(), gid),
                    "{member} is listed in group {gid}"
                );
            }
        }
        // root is in group 0 and not in a group id nobody has.
        assert!(a.is_member(0, 12345, 0));
        assert!(!a.is_member(0, 0, 4_000_000_000));
    }

    #[test]
    fn root_resolves() {
        let a = SystemAccounts;
        assert_eq!(a.user_id("root"), Some(0));
        assert!(a.is_member(0, 0, 0));
        assert_eq!(a.user_id("no-such-user-vmnet-broker"), None);
    }
}
