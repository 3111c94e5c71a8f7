//! The routing table on macOS: the `NET_RT_DUMP` routing sysctl
//! (`sysctl(3)`, `<net/route.h>`), decoded by [`super::route_dump`].

use vmnet_broker_core::hostnet::{HostNetwork, HostNetworksError};

use super::route_dump::{self, RT_MSGHDR_LEN};

// The decoder's layout constants must match the SDK's.
const _: () = assert!(std::mem::size_of::<libc::rt_msghdr>() == RT_MSGHDR_LEN);
#[allow(
    clippy::cast_possible_truncation,
    reason = "compile-time check of a small constant"
)]
const _: () = assert!(libc::RTM_VERSION as u8 == route_dump::RTM_VERSION);
#[allow(
    clippy::cast_possible_truncation,
    reason = "compile-time check of a small constant"
)]
const _: () = assert!(libc::AF_INET6 as u8 == route_dump::AF_INET6);
const _: () = assert!(libc::RTF_LLINFO as u32 == route_dump::RTF_LLINFO);
const _: () = assert!(libc::RTF_WASCLONED as u32 == route_dump::RTF_WASCLONED);

/// Every IPv4 and IPv6 route, with its interface.
pub(super) fn routes() -> Result<Vec<HostNetwork>, HostNetworksError> {
    let buf = dump()?;
    let names = super::interface_names();
    Ok(route_dump::parse(&buf)
        .into_iter()
        .map(|r| {
            let ifname = names.get(&u32::from(r.if_index)).map(String::as_str);
            HostNetwork::route(ifname, r.dest, r.prefix_len)
        })
        .collect())
}

/// The raw dump. The table may grow between the size query and the read;
/// then the read fails with ENOMEM and is tried again with more room.
fn dump() -> Result<Vec<u8>, HostNetworksError> {
    // The six-entry name of the routing table dump.
    const MIB_LEN: libc::c_uint = 6;
    let mut mib: [libc::c_int; MIB_LEN as usize] = [
        libc::CTL_NET,
        libc::PF_ROUTE,
        0,
        0, // every address family
        libc::NET_RT_DUMP,
        0,
    ];
    for _ in 0..5 {
        let mut len: libc::size_t = 0;
        // SAFETY: `mib` is a valid array of `mib.len()` ints; a null old
        // pointer asks only for the size, written to `len`, which lives
        // across the call; no new value is passed.
        let rc = unsafe {
            libc::sysctl(
                mib.as_mut_ptr(),
                MIB_LEN,
                std::ptr::null_mut(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return Err(sysctl_error());
        }
        let mut buf = vec![0u8; len + len / 4 + 4096];
        let mut len = buf.len();
        // SAFETY: `buf` is writable for `len` bytes and outlives the call;
        // the kernel writes at most `len` bytes and stores the count written
        // in `len`.
        let rc = unsafe {
            libc::sysctl(
                mib.as_mut_ptr(),
                MIB_LEN,
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc == 0 {
            buf.truncate(len);
            return Ok(buf);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOMEM) {
            return Err(sysctl_error());
        }
    }
    Err(HostNetworksError(
        "the routing table kept growing while it was read".into(),
    ))
}

fn sysctl_error() -> HostNetworksError {
    HostNetworksError(format!(
        "sysctl NET_RT_DUMP failed: {}",
        std::io::Error::last_os_error()
    ))
}
