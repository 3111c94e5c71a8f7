//! Network handles: `vmnet_broker_network` and its accessors.

use std::ffi::{CString, c_char, c_int};
use std::ptr;

use ::vmnet_broker_client::{Client, Network};
use vmnet_broker_proto::Status;

use crate::message::failed;
use crate::panic::{finish_ptr, guard, guard_or, str_arg};
use crate::status::{to_c, vmnet_broker_return_t};

/// A held network (opaque in C).
///
/// Made by `vmnet_broker_acquire` or `vmnet_broker_client_acquire`, freed
/// by `vmnet_broker_release`. The strings its accessors return are stored
/// here, so they stay valid exactly as long as the handle.
#[derive(Debug)]
pub struct vmnet_broker_network {
    pub(crate) network: Network,
    name: CString,
    mode: Option<CString>,
    subnet: Option<CString>,
    mask: Option<CString>,
    ipv6_prefix: Option<CString>,
    ipv6_prefix_length: c_int,
    serialization_json: Option<CString>,
}

/// A string without NUL bytes as a C string; `None` otherwise (none of the
/// strings stored here can hold NUL: they are addresses, modes, JSON text
/// and names that came from a C string).
fn c_string(s: impl Into<Vec<u8>>) -> Option<CString> {
    CString::new(s).ok()
}

impl vmnet_broker_network {
    fn new(network: Network) -> Result<Self, Status> {
        let name = c_string(network.name()).ok_or(Status::INVALID_REQUEST)?;
        let info = network.info();
        let json = network
            .serialization_json()
            .map(serde_json::Value::to_string)
            .and_then(c_string);
        Ok(Self {
            name,
            mode: info.and_then(|i| c_string(i.mode.as_str())),
            subnet: info.and_then(|i| c_string(i.subnet.to_string())),
            mask: info.and_then(|i| c_string(i.mask.to_string())),
            ipv6_prefix: info.and_then(|i| c_string(i.ipv6_prefix.to_string())),
            ipv6_prefix_length: info.map_or(-1, |i| c_int::from(i.ipv6_prefix_length)),
            serialization_json: json,
            network,
        })
    }
}

/// Acquires `network_name` through `client` and boxes the handle.
pub(crate) fn acquire_boxed(
    client: &Client,
    network_name: &str,
) -> Result<*mut vmnet_broker_network, Status> {
    let network = client.acquire(network_name).map_err(failed)?;
    let handle = vmnet_broker_network::new(network)?;
    Ok(Box::into_raw(Box::new(handle)))
}

/// Acquires `network_name` through the process-wide client.
///
/// The process-wide client is connected on first use (on macOS to the XPC
/// service unless `VMNET_BROKER_SOCKET` is set, elsewhere to the development
/// socket) and never closed; a failed connection is retried on the next
/// call.
///
/// Returns a new handle, or NULL on failure. `status`, if not NULL,
/// receives the status either way. Free the handle with
/// `vmnet_broker_release`, which also drops the hold.
///
/// # Safety
///
/// `network_name` is NULL or a NUL-terminated string; `status` is NULL or
/// valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_acquire(
    network_name: *const c_char,
    status: *mut vmnet_broker_return_t,
) -> *mut vmnet_broker_network {
    let result = guard(|| {
        // SAFETY: the caller passes NULL or a valid C string.
        let name = unsafe { str_arg(network_name) }?;
        let client = ::vmnet_broker_client::default_client().map_err(failed)?;
        acquire_boxed(&client, name)
    });
    // SAFETY: the caller passes NULL or a writable status pointer.
    unsafe { finish_ptr(result, status) }
}

/// Drops the hold of `network` and frees the handle.
///
/// The handle is freed whatever the result; do not use it again. Returns
/// `VMNET_BROKER_SUCCESS`, or why the broker could not release the hold
/// (for example `VMNET_BROKER_XPC_FAILURE` when the connection is gone, in
/// which case the broker has dropped the hold already). NULL is a no-op
/// returning `VMNET_BROKER_SUCCESS`.
///
/// # Safety
///
/// `network` is NULL or a handle from `vmnet_broker_acquire` or
/// `vmnet_broker_client_acquire` that has not been released yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_release(
    network: *mut vmnet_broker_network,
) -> vmnet_broker_return_t {
    if network.is_null() {
        return to_c(Status::SUCCESS);
    }
    // SAFETY: not NULL, and the caller passes a live handle made by
    // `Box::into_raw` in this library, which we now own.
    let handle = unsafe { Box::from_raw(network) };
    let result = guard(|| handle.network.release().map_err(failed));
    to_c(result.err().unwrap_or(Status::SUCCESS))
}

/// Reads one field of a handle.
///
/// # Safety
///
/// `network` is NULL or a live handle.
unsafe fn field<T>(
    network: *const vmnet_broker_network,
    default: T,
    f: impl FnOnce(&vmnet_broker_network) -> T,
) -> T {
    // SAFETY: the caller passes NULL or a live handle; `as_ref` maps NULL
    // to `None`.
    match unsafe { network.as_ref() } {
        Some(handle) => guard_or(default, || f(handle)),
        None => default,
    }
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |s| s.as_ptr())
}

/// The network's name. Valid until the handle is released; NULL if
/// `network` is NULL.
///
/// # Safety
///
/// `network` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_network_name(
    network: *const vmnet_broker_network,
) -> *const c_char {
    // SAFETY: forwarded from the caller.
    unsafe { field(network, ptr::null(), |h| h.name.as_ptr()) }
}

/// The network's mode, `"shared"` or `"host"`. NULL if `network` is NULL or
/// the broker sent no addresses (the original C broker does not). Valid
/// until the handle is released.
///
/// # Safety
///
/// `network` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_network_mode(
    network: *const vmnet_broker_network,
) -> *const c_char {
    // SAFETY: forwarded from the caller.
    unsafe { field(network, ptr::null(), |h| opt_ptr(&h.mode)) }
}

/// The IPv4 network address, dotted (`"192.168.64.0"`). NULL as for
/// `vmnet_broker_network_mode`. Valid until the handle is released.
///
/// # Safety
///
/// `network` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_network_subnet(
    network: *const vmnet_broker_network,
) -> *const c_char {
    // SAFETY: forwarded from the caller.
    unsafe { field(network, ptr::null(), |h| opt_ptr(&h.subnet)) }
}

/// The IPv4 netmask, dotted (`"255.255.255.0"`). NULL as for
/// `vmnet_broker_network_mode`. Valid until the handle is released.
///
/// # Safety
///
/// `network` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_network_mask(
    network: *const vmnet_broker_network,
) -> *const c_char {
    // SAFETY: forwarded from the caller.
    unsafe { field(network, ptr::null(), |h| opt_ptr(&h.mask)) }
}

/// The IPv6 prefix (`"fd9c:1a2b:3c4d:1::"`). NULL as for
/// `vmnet_broker_network_mode`. Valid until the handle is released.
///
/// # Safety
///
/// `network` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_network_ipv6_prefix(
    network: *const vmnet_broker_network,
) -> *const c_char {
    // SAFETY: forwarded from the caller.
    unsafe { field(network, ptr::null(), |h| opt_ptr(&h.ipv6_prefix)) }
}

/// The IPv6 prefix length in bits, or -1 when unknown (NULL handle, or no
/// addresses in the reply).
///
/// # Safety
///
/// `network` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_network_ipv6_prefix_length(
    network: *const vmnet_broker_network,
) -> c_int {
    // SAFETY: forwarded from the caller.
    unsafe { field(network, -1, |h| h.ipv6_prefix_length) }
}

/// The network's serialization as JSON text, when it came over the
/// development socket; NULL over XPC or for a NULL handle. Valid until the
/// handle is released.
///
/// # Safety
///
/// `network` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_network_serialization_json(
    network: *const vmnet_broker_network,
) -> *const c_char {
    // SAFETY: forwarded from the caller.
    unsafe { field(network, ptr::null(), |h| opt_ptr(&h.serialization_json)) }
}
