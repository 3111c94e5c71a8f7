//! The original C client's entry point and XPC access to handles (Apple
//! systems only).

use std::ffi::{CStr, c_char, c_void};
use std::ptr;
use std::sync::{Mutex, PoisonError};

use ::vmnet_broker_client::Client;
use vmnet_broker_proto::Status;

use crate::message::failed;
use crate::network::vmnet_broker_network;
use crate::panic::{finish_ptr, guard, guard_or};
use crate::status::vmnet_broker_return_t;

/// `xpc_object_t` of `<xpc/xpc.h>`.
pub(crate) type xpc_object_t = *mut c_void;

/// The connection `vmnet_broker_acquire_network` uses: always the XPC
/// service, made on first successful use and never closed, as in the
/// original client.
static UPSTREAM_CLIENT: Mutex<Option<Client>> = Mutex::new(None);

fn upstream_client() -> Result<Client, Status> {
    let mut slot = UPSTREAM_CLIENT
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(client) = &*slot {
        return Ok(client.clone());
    }
    let client = Client::connect_xpc().map_err(failed)?;
    *slot = Some(client.clone());
    Ok(client)
}

/// Acquires `network_name` from the broker's XPC service, exactly as the
/// original C client does: one process-wide connection, made on first use
/// and never closed; the hold lasts until the process exits.
///
/// Returns the network's serialization, retained (release it with
/// `xpc_release`), or NULL on failure. `status`, if not NULL, receives the
/// status either way. `VMNET_BROKER_SOCKET` is ignored here: this function
/// always talks XPC.
///
/// # Safety
///
/// `network_name` is NULL or a NUL-terminated string; `status` is NULL or
/// valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_acquire_network(
    network_name: *const c_char,
    status: *mut vmnet_broker_return_t,
) -> xpc_object_t {
    let result = guard(|| {
        if network_name.is_null() {
            return Err(Status::INVALID_REQUEST);
        }
        // The original sends whatever bytes it is given, and the broker
        // answers "not found" for a name it does not know. A name that is
        // not UTF-8 is sent with its bad bytes replaced (so that it can name
        // no configured network), which gives the same answer.
        // SAFETY: not NULL, and the caller passes a valid C string.
        let name = String::from_utf8_lossy(unsafe { CStr::from_ptr(network_name) }.to_bytes());
        let network = upstream_client()?.acquire(&name).map_err(failed)?;
        let object = network
            .xpc_serialization()
            .ok_or(Status::INVALID_REPLY)?
            .retained_ptr();
        network.detach();
        Ok(object)
    });
    // SAFETY: the caller passes NULL or a writable status pointer.
    unsafe { finish_ptr(result, status) }
}

/// The network's XPC serialization, for
/// `vmnet_network_create_with_serialization`. Borrowed: it belongs to the
/// handle and lives until `vmnet_broker_release`; `xpc_retain` it to keep it
/// longer. NULL for a NULL handle or a network that came over the
/// development socket.
///
/// # Safety
///
/// `network` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_network_serialization(
    network: *const vmnet_broker_network,
) -> xpc_object_t {
    // SAFETY: the caller passes NULL or a live handle.
    match unsafe { network.as_ref() } {
        Some(handle) => guard_or(ptr::null_mut(), || {
            handle
                .network
                .xpc_serialization()
                .map_or(ptr::null_mut(), |o| o.as_ptr())
        }),
        None => ptr::null_mut(),
    }
}
