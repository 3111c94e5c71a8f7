//! The one libc call the portable launchd code needs.

/// The effective user id of this process.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, cannot fail and touches no
    // memory of ours (POSIX; `libc::geteuid` is declared by the libc crate).
    unsafe { libc::geteuid() }
}
