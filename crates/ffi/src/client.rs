//! Explicit clients: `vmnet_broker_client` and the status report.

use std::ffi::{CString, c_char};

use ::vmnet_broker_client::Client;
use vmnet_broker_proto::Status;

use crate::message::failed;
use crate::network::{acquire_boxed, vmnet_broker_network};
use crate::panic::{finish_ptr, guard, guard_or, str_arg};
use crate::status::{to_c, vmnet_broker_return_t};

/// One connection to the broker (opaque in C).
///
/// The broker ties holds to connections: the connection closes, and the
/// broker drops its holds, once the client has been freed and every network
/// acquired through it has been released.
#[derive(Debug)]
pub struct vmnet_broker_client {
    client: Client,
}

fn boxed(
    client: Result<Client, ::vmnet_broker_client::Error>,
) -> Result<*mut vmnet_broker_client, Status> {
    let client = client.map_err(failed)?;
    Ok(Box::into_raw(Box::new(vmnet_broker_client { client })))
}

/// Connects a new client the usual way for this system: on macOS to the XPC
/// service `com.github.nirs.vmnet-broker` unless `VMNET_BROKER_SOCKET` is
/// set, elsewhere to the development socket (`$VMNET_BROKER_SOCKET`,
/// `$XDG_RUNTIME_DIR/vmnet-broker.sock`, `/tmp/vmnet-broker-$UID.sock`).
///
/// Returns a new client, or NULL on failure (`VMNET_BROKER_XPC_FAILURE`
/// when the socket cannot be reached). Free it with
/// `vmnet_broker_client_free`.
///
/// # Safety
///
/// `status` is NULL or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_client_connect(
    status: *mut vmnet_broker_return_t,
) -> *mut vmnet_broker_client {
    let result = guard(|| boxed(Client::connect()));
    // SAFETY: the caller passes NULL or a writable status pointer.
    unsafe { finish_ptr(result, status) }
}

/// Connects a new client to the development socket at `path`.
///
/// Returns a new client, or NULL on failure (`VMNET_BROKER_INVALID_REQUEST`
/// for a NULL path, `VMNET_BROKER_XPC_FAILURE` when the socket cannot be
/// reached). Free it with `vmnet_broker_client_free`.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string; `status` is NULL or valid for
/// writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_client_connect_socket(
    path: *const c_char,
    status: *mut vmnet_broker_return_t,
) -> *mut vmnet_broker_client {
    let result = guard(|| {
        // SAFETY: the caller passes NULL or a valid C string.
        let path = unsafe { str_arg(path) }?;
        boxed(Client::connect_socket(path))
    });
    // SAFETY: the caller passes NULL or a writable status pointer.
    unsafe { finish_ptr(result, status) }
}

/// Sets how long `client` waits to connect again (development socket) and
/// for each reply (socket and XPC). The default is `$VMNET_BROKER_TIMEOUT`
/// seconds when the client was connected, else 30 seconds. A broker that does not answer in time fails the request with
/// `VMNET_BROKER_XPC_FAILURE`.
///
/// Returns `VMNET_BROKER_SUCCESS`, or `VMNET_BROKER_INVALID_REQUEST` for a
/// NULL client or a timeout that is not a positive number of seconds (at
/// most a day).
///
/// # Safety
///
/// `client` is NULL or a live client.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_client_set_timeout(
    client: *const vmnet_broker_client,
    seconds: f64,
) -> vmnet_broker_return_t {
    let result = guard(|| {
        // SAFETY: the caller passes NULL or a live client.
        let client = unsafe { client.as_ref() }.ok_or(Status::INVALID_REQUEST)?;
        let timeout = ::vmnet_broker_client::timeout_from_secs(seconds).ok_or_else(|| {
            crate::message::record(format!(
                "{seconds} is not a valid timeout: give seconds from {} to {}",
                ::vmnet_broker_client::MIN_TIMEOUT.as_secs_f64(),
                ::vmnet_broker_client::MAX_TIMEOUT.as_secs()
            ));
            Status::INVALID_REQUEST
        })?;
        client.client.set_timeout(timeout);
        Ok(())
    });
    to_c(result.err().unwrap_or(Status::SUCCESS))
}

/// Frees a client. Networks acquired through it stay valid and keep the
/// connection open until they are released. NULL is a no-op.
///
/// # Safety
///
/// `client` is NULL or a client from `vmnet_broker_client_connect*` that
/// has not been freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_client_free(client: *mut vmnet_broker_client) {
    if client.is_null() {
        return;
    }
    // SAFETY: not NULL, and the caller passes a live client made by
    // `Box::into_raw` in this library, which we now own.
    let client = unsafe { Box::from_raw(client) };
    guard_or((), || drop(client));
}

/// Acquires `network_name` through `client`.
///
/// Returns a new handle, or NULL on failure; `status`, if not NULL,
/// receives the status either way. Free the handle with
/// `vmnet_broker_release`. Acquiring a name the client already holds gives
/// a second handle; the broker's hold ends when the last one is released.
///
/// # Safety
///
/// `client` is NULL or a live client; `network_name` is NULL or a
/// NUL-terminated string; `status` is NULL or valid for writing. The
/// client may be used from several threads at once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_client_acquire(
    client: *const vmnet_broker_client,
    network_name: *const c_char,
    status: *mut vmnet_broker_return_t,
) -> *mut vmnet_broker_network {
    let result = guard(|| {
        // SAFETY: the caller passes NULL or a live client.
        let client = unsafe { client.as_ref() }.ok_or(Status::INVALID_REQUEST)?;
        // SAFETY: the caller passes NULL or a valid C string.
        let name = unsafe { str_arg(network_name) }?;
        acquire_boxed(&client.client, name)
    });
    // SAFETY: the caller passes NULL or a writable status pointer.
    unsafe { finish_ptr(result, status) }
}

/// Asks the broker for its status report, as JSON text (the `status`
/// object of docs/protocol.md).
///
/// On success stores a new string in `*json_out`, to be freed with
/// `vmnet_broker_string_free`, and returns `VMNET_BROKER_SUCCESS`. On
/// failure returns the status and leaves `*json_out` unchanged. A NULL
/// `client` or `json_out` is `VMNET_BROKER_INVALID_REQUEST`.
///
/// # Safety
///
/// `client` is NULL or a live client; `json_out` is NULL or valid for
/// writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_client_status_json(
    client: *const vmnet_broker_client,
    json_out: *mut *mut c_char,
) -> vmnet_broker_return_t {
    let result = guard(|| {
        // SAFETY: the caller passes NULL or a live client.
        let client = unsafe { client.as_ref() }.ok_or(Status::INVALID_REQUEST)?;
        if json_out.is_null() {
            return Err(Status::INVALID_REQUEST);
        }
        let report = client.client.status().map_err(failed)?;
        let text = serde_json::to_string(&report).map_err(|_| Status::INTERNAL_ERROR)?;
        let text = CString::new(text).map_err(|_| Status::INTERNAL_ERROR)?;
        // SAFETY: not NULL, and the caller guarantees it is writable.
        unsafe { json_out.write(text.into_raw()) };
        Ok(())
    });
    to_c(result.err().unwrap_or(Status::SUCCESS))
}

/// Frees a string returned through a `char **` output of this library.
/// NULL is a no-op.
///
/// # Safety
///
/// `s` is NULL or a string from this library's `char **` outputs that has
/// not been freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmnet_broker_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    // SAFETY: not NULL, and the caller passes a string made by
    // `CString::into_raw` in this library, which we now own.
    let s = unsafe { CString::from_raw(s) };
    guard_or((), || drop(s));
}
