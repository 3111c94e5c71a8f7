//! `vmnet_broker_return_t` and `vmnet_broker_strerror`.

use std::ffi::{c_char, c_int};

use vmnet_broker_proto::Status;

use crate::panic::guard_or;

/// A status code: `VMNET_BROKER_SUCCESS` (0) to
/// `VMNET_BROKER_INTERNAL_ERROR` (7), or a code from a newer broker that
/// this library does not know, passed on unchanged.
///
/// In C this is an enum; its values all fit an `int`, which is how it is
/// passed.
pub type vmnet_broker_return_t = c_int;

/// The C value of `status`. A code that does not fit a C `int` cannot come
/// from a sane broker and is reported as `VMNET_BROKER_INVALID_REPLY`.
pub(crate) fn to_c(status: Status) -> vmnet_broker_return_t {
    #[allow(clippy::cast_possible_truncation, reason = "INVALID_REPLY is 2")]
    let invalid_reply = Status::INVALID_REPLY.code() as c_int;
    c_int::try_from(status.code()).unwrap_or(invalid_reply)
}

/// Writes `status` to `out` unless `out` is NULL.
///
/// # Safety
///
/// `out` is NULL or valid for writing one `vmnet_broker_return_t`.
pub(crate) unsafe fn write_status(out: *mut vmnet_broker_return_t, status: Status) {
    if !out.is_null() {
        // SAFETY: not NULL, and the caller guarantees it is writable.
        unsafe { out.write(to_c(status)) };
    }
}

/// Describes a status code with the original C client's exact text
/// ("Network name not found", ...).
///
/// Returns a static NUL-terminated string, never NULL; the caller must not
/// free it. Codes this library does not know give `"(unknown status)"`, as
/// the original does.
#[unsafe(no_mangle)]
pub extern "C" fn vmnet_broker_strerror(status: vmnet_broker_return_t) -> *const c_char {
    guard_or(c"(unknown status)".as_ptr(), || {
        Status(i64::from(status)).upstream_text_cstr().as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn text(code: c_int) -> String {
        // SAFETY: vmnet_broker_strerror returns a static C string.
        unsafe { CStr::from_ptr(vmnet_broker_strerror(code)) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn every_status_has_the_original_text() {
        let expect = [
            "Broker session started",
            "Failed to send XPC message to broker",
            "Broker returned invalid reply",
            "You are not allowed to create a network",
            "Invalid broker request",
            "Network name not found",
            "Failed to create network",
            "Internal or unknown error",
        ];
        for (code, want) in (0..).zip(expect) {
            assert_eq!(text(code), want);
        }
        assert_eq!(text(8), "(unknown status)");
        assert_eq!(text(999), "(unknown status)");
        assert_eq!(text(-1), "(unknown status)");
    }

    #[test]
    fn codes_that_do_not_fit_an_int_are_invalid_replies() {
        assert_eq!(to_c(Status(5)), 5);
        assert_eq!(to_c(Status(999)), 999);
        assert_eq!(to_c(Status(1 << 40)), 2);
    }
}
