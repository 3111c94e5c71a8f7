//! `vmnet_broker_last_error`: the words behind the last failed call's
//! status, per thread (a status number alone cannot say which socket was
//! missing or which uid served it).

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use vmnet_broker_proto::Status;

thread_local! {
    /// The message of the last failed call on this thread, if any.
    static LAST: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Records `text` as this thread's last error.
pub(crate) fn record(text: String) {
    // A message with a NUL byte (from a path, say) is cut there.
    let mut bytes = text.into_bytes();
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(nul);
    }
    let text = CString::new(bytes).ok();
    LAST.with(|last| *last.borrow_mut() = text);
}

/// The status of a client error, recording its message.
pub(crate) fn failed(error: ::vmnet_broker_client::Error) -> Status {
    record(error.to_string());
    error.status()
}

/// Forgets the last message: each call that returns a status starts with
/// none.
pub(crate) fn clear() {
    LAST.with(|last| last.borrow_mut().take());
}

/// After a failure that recorded no message of its own (a NULL argument,
/// a panic), the status's own text.
pub(crate) fn fill_in(status: Status) {
    if LAST.with(|last| last.borrow().is_none()) {
        record(status.upstream_text_cstr().to_string_lossy().into_owned());
    }
}

/// Describes why the last call of this library on the calling thread that
/// reported a status failed, in words a user can act on (which socket,
/// which timeout, which uid). Returns NULL if that call succeeded or no
/// call was made yet.
///
/// The string belongs to the library: it stays valid until the next call
/// of this library on the same thread other than this one and the
/// accessors; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn vmnet_broker_last_error() -> *const c_char {
    crate::panic::guard_or(std::ptr::null(), || {
        LAST.with(|last| {
            last.borrow()
                .as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr())
        })
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn last() -> Option<String> {
        let p = vmnet_broker_last_error();
        // SAFETY: a non-NULL result is a C string owned by this thread's
        // slot, which nothing changes until the next call.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    #[test]
    fn the_last_failure_is_described_until_the_next_call() {
        clear();
        assert_eq!(last(), None);
        let status = failed(::vmnet_broker_client::Error::Closed);
        assert_eq!(status, Status::XPC_FAILURE);
        assert_eq!(last().as_deref(), Some("the broker closed the connection"));
        fill_in(Status::INVALID_REQUEST);
        assert_eq!(last().as_deref(), Some("the broker closed the connection"));
        clear();
        fill_in(Status::INVALID_REQUEST);
        assert_eq!(last().as_deref(), Some("Invalid broker request"));
        record("a\0b".into());
        assert_eq!(last().as_deref(), Some("a"));
    }
}
