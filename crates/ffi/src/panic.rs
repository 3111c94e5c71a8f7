//! The panic boundary and the helpers shared by the exports.

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use vmnet_broker_proto::Status;

use crate::status::{vmnet_broker_return_t, write_status};

/// Runs `f`, turning a panic into [`Status::INTERNAL_ERROR`].
///
/// Every export runs its body through this (or [`guard_or`]), so that no
/// panic unwinds into C. The closures only touch data owned by the call or
/// by a handle the caller passed; a panic half-way leaves nothing that a
/// later call would trust, hence `AssertUnwindSafe`.
///
/// It also keeps `vmnet_broker_last_error` in step: cleared as the call
/// starts, and on failure it holds the error's message (or the status's
/// text when the failure recorded none).
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T, Status>) -> Result<T, Status> {
    crate::message::clear();
    let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or(Err(Status::INTERNAL_ERROR));
    if let Err(status) = &result {
        crate::message::fill_in(*status);
    }
    result
}

/// Runs `f`, returning `default` if it panics.
pub(crate) fn guard_or<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// Finishes a call that returns a pointer: writes the status (when
/// `status_out` is not NULL) and returns the pointer, or NULL on failure.
///
/// # Safety
///
/// `status_out` is NULL or valid for writing one `vmnet_broker_return_t`.
pub(crate) unsafe fn finish_ptr<T>(
    result: Result<*mut T, Status>,
    status_out: *mut vmnet_broker_return_t,
) -> *mut T {
    let (ptr, status) = match result {
        Ok(ptr) => (ptr, Status::SUCCESS),
        Err(status) => (std::ptr::null_mut(), status),
    };
    // SAFETY: the caller guarantees `status_out` is NULL or writable.
    unsafe { write_status(status_out, status) };
    ptr
}

/// Reads a C string argument as UTF-8.
///
/// NULL and invalid UTF-8 are [`Status::INVALID_REQUEST`].
///
/// # Safety
///
/// `s` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for `'a`.
pub(crate) unsafe fn str_arg<'a>(s: *const c_char) -> Result<&'a str, Status> {
    if s.is_null() {
        return Err(Status::INVALID_REQUEST);
    }
    // SAFETY: not NULL, and the caller guarantees a valid C string.
    let s = unsafe { CStr::from_ptr(s) };
    s.to_str().map_err(|_| Status::INVALID_REQUEST)
}
