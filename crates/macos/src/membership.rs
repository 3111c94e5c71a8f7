//! Group membership as macOS decides it: the membership API of
//! `<membership.h>` (libSystem), which counts nested groups and groups from
//! directory services (Open Directory, Active Directory), not only the
//! primary group and the `/etc/group`-style member list.
//!
//! Declared from Apple's SDK header `membership.h` and its manual pages
//! mbr_uid_to_uuid(3) and mbr_check_membership(3):
//!
//! ```c
//! typedef unsigned char uuid_t[16];                               // <uuid/uuid.h>
//! int mbr_uid_to_uuid(uid_t uid, uuid_t uu);
//! int mbr_gid_to_uuid(gid_t gid, uuid_t uu);
//! int mbr_check_membership(const uuid_t user, const uuid_t group, int *ismember);
//! ```
//!
//! Each returns 0 on success and an errno value otherwise (for example
//! `ENOENT` when the id has no identity); `*ismember` is set to non-zero
//! when the user is a member. Type-checked on Linux only; not run by us.

use std::ffi::c_int;

type Uuid = [u8; 16];

// SAFETY: the declarations match <membership.h>: `uuid_t` is an array of 16
// unsigned chars, passed as a pointer to its first element; uid_t and gid_t
// are 32-bit unsigned on macOS. The functions are in libSystem, which every
// program links.
unsafe extern "C" {
    fn mbr_uid_to_uuid(uid: libc::uid_t, uu: *mut u8) -> c_int;
    fn mbr_gid_to_uuid(gid: libc::gid_t, uu: *mut u8) -> c_int;
    fn mbr_check_membership(user: *const u8, group: *const u8, ismember: *mut c_int) -> c_int;
}

/// Whether the user `uid` is a member of the group `gid`, directly,
/// through a nested group, or through directory services.
///
/// # Errors
///
/// The errno value a membership call returned (an unknown uid or gid gives
/// `ENOENT`, among others).
pub fn is_member(uid: u32, gid: u32) -> Result<bool, i32> {
    let mut user: Uuid = [0; 16];
    let mut group: Uuid = [0; 16];
    // SAFETY: `user` is a writable 16-byte buffer, as uuid_t is.
    let rc = unsafe { mbr_uid_to_uuid(uid, user.as_mut_ptr()) };
    if rc != 0 {
        return Err(rc);
    }
    // SAFETY: `group` is a writable 16-byte buffer, as uuid_t is.
    let rc = unsafe { mbr_gid_to_uuid(gid, group.as_mut_ptr()) };
    if rc != 0 {
        return Err(rc);
    }
    let mut member: c_int = 0;
    // SAFETY: both UUIDs were filled above and outlive the call; `member`
    // is a valid int to write.
    let rc = unsafe { mbr_check_membership(user.as_ptr(), group.as_ptr(), &mut member) };
    if rc != 0 {
        return Err(rc);
    }
    Ok(member != 0)
}
