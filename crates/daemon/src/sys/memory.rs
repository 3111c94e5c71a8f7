//! Giving memory the broker no longer uses back to the system.
//!
//! After a flood (thousands of connections closing, megabytes of queued
//! replies taken), the freed memory sits in the C allocator's free lists:
//! glibc returns it to the kernel only when the top of the heap is free,
//! which a fragmented heap rarely has. The socket loop calls
//! [`release_free_memory`] a moment after a large release, which brings
//! the resident size back near its idle level (measured in
//! docs/reliability.md, "Memory after a flood").

/// Returns free heap pages to the kernel where the C library allows it.
/// Returns whether anything was done: `malloc_trim` exists only in glibc;
/// elsewhere (macOS, musl) this does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code, reason = "one call into glibc's allocator")]
pub(crate) fn release_free_memory() -> bool {
    // SAFETY: malloc_trim(3) takes a pad size and only walks the
    // allocator's own free lists under its lock; it reads no memory of
    // ours and may be called at any time from any thread.
    unsafe { libc::malloc_trim(0) };
    true
}

/// See the glibc version above: nothing to do here.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn releasing_after_freeing_is_harmless() {
        let blocks: Vec<Vec<u8>> = (0u8..64).map(|i| vec![i; 64 * 1024]).collect();
        drop(blocks);
        let done = super::release_free_memory();
        assert_eq!(done, cfg!(all(target_os = "linux", target_env = "gnu")));
        // The allocator still works after it.
        assert_eq!(
            vec![7u8; 1 << 20]
                .iter()
                .map(|&b| u64::from(b))
                .sum::<u64>(),
            7 << 20
        );
    }
}
