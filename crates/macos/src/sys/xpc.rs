//! libxpc declarations (part of libSystem, so no `#[link]` attribute).
//!
//! Types follow the C view of the headers (`OS_OBJECT_USE_OBJC=0`), where
//! `xpc_object_t` is `void *` (SDK `xpc/xpc.h`: "typedef void *
//! xpc_object_t;"). `xpc_connection_t` is `struct _xpc_connection_s *` there;
//! it is passed as the same pointer, so we use `xpc_object_t` for both.
//!
//! Unless noted, every function is available from macOS 10.7
//! (`__OSX_AVAILABLE_STARTING(__MAC_10_7, ...)` in the SDK headers); this
//! crate targets macOS 26.
//!
//! Ownership rules from the headers, which the wrappers in [`crate::xpc`]
//! encode: `*_create*` and `xpc_connection_send_message_with_reply_sync`
//! return a +1 reference (`XPC_RETURNS_RETAINED`); `*_get_value` and the
//! event objects given to handlers are borrowed.

use std::ffi::{c_char, c_void};
use std::marker::{PhantomData, PhantomPinned};

use block2::Block;
use dispatch2::DispatchQueue;

/// Any XPC object. SDK `xpc/xpc.h`: `typedef void * xpc_object_t;`.
pub type xpc_object_t = *mut c_void;

/// A connection. SDK `xpc/xpc.h`: `XPC_DECL(xpc_connection)`, a pointer to
/// an opaque struct; passed exactly like [`xpc_object_t`].
pub type xpc_connection_t = xpc_object_t;

/// Opaque type descriptor. SDK `xpc/xpc.h`:
/// `typedef const struct _xpc_type_s * xpc_type_t;`.
#[repr(C)]
#[derive(Debug)]
pub struct xpc_type_s {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `xpc_type_t`: compare by address with the `_xpc_type_*` statics.
pub type xpc_type_t = *const xpc_type_s;

/// Opaque well-known objects (the `_xpc_error_*` dictionaries). SDK
/// `xpc/connection.h` declares them as `const struct _xpc_dictionary_s`;
/// only their addresses matter.
#[repr(C)]
#[derive(Debug)]
pub struct xpc_global_s {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// `typedef void (^xpc_handler_t)(xpc_object_t object);` (SDK `xpc/xpc.h`).
pub type xpc_handler_t = Block<dyn Fn(xpc_object_t)>;

/// C99 `bool` (`_Bool`) as a block argument or return value.
///
/// block2 needs objc2's encoding traits for every block signature type, and
/// objc2 deliberately does not implement them for Rust `bool`; its
/// documentation asks for a `#[repr(transparent)]` wrapper around `bool`
/// for C99 `_Bool`, which this is.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct c_bool(pub bool);

// SAFETY: `c_bool` is `repr(transparent)` over Rust `bool`, which has the
// size, alignment and valid values of C99 `_Bool`; `Encoding::Bool` is the
// `"B"` code, "A C++ `bool` / C99 `_Bool`" (objc2-encode 4.1).
unsafe impl objc2::encode::Encode for c_bool {
    const ENCODING: objc2::encode::Encoding = objc2::encode::Encoding::Bool;
}

/// `typedef bool (^xpc_dictionary_applier_t)(const char *key,
/// xpc_object_t value);` (SDK `xpc/xpc.h`). Generic over the closure's
/// lifetime because `xpc_dictionary_apply` does not keep the block
/// (`XPC_NOESCAPE`).
pub type xpc_dictionary_applier_t<'a> = Block<dyn Fn(*const c_char, xpc_object_t) -> c_bool + 'a>;

/// `#define XPC_CONNECTION_MACH_SERVICE_LISTENER (1 << 0)`
/// (SDK `xpc/connection.h`).
pub const XPC_CONNECTION_MACH_SERVICE_LISTENER: u64 = 1 << 0;

/// `#define XPC_CONNECTION_MACH_SERVICE_PRIVILEGED (1 << 1)`
/// (SDK `xpc/connection.h`).
pub const XPC_CONNECTION_MACH_SERVICE_PRIVILEGED: u64 = 1 << 1;

unsafe extern "C" {
    // ----- Type descriptors: `XPC_EXPORT XPC_TYPE(_xpc_type_<name>);`,
    // i.e. `const struct _xpc_type_s _xpc_type_<name>` (SDK xpc/xpc.h).

    /// `XPC_TYPE_CONNECTION` (SDK xpc/xpc.h).
    pub static _xpc_type_connection: xpc_type_s;
    /// `XPC_TYPE_ENDPOINT` (SDK xpc/xpc.h).
    pub static _xpc_type_endpoint: xpc_type_s;
    /// `XPC_TYPE_NULL` (SDK xpc/xpc.h).
    pub static _xpc_type_null: xpc_type_s;
    /// `XPC_TYPE_BOOL` (SDK xpc/xpc.h).
    pub static _xpc_type_bool: xpc_type_s;
    /// `XPC_TYPE_INT64` (SDK xpc/xpc.h).
    pub static _xpc_type_int64: xpc_type_s;
    /// `XPC_TYPE_UINT64` (SDK xpc/xpc.h).
    pub static _xpc_type_uint64: xpc_type_s;
    /// `XPC_TYPE_DOUBLE` (SDK xpc/xpc.h).
    pub static _xpc_type_double: xpc_type_s;
    /// `XPC_TYPE_DATE` (SDK xpc/xpc.h).
    pub static _xpc_type_date: xpc_type_s;
    /// `XPC_TYPE_DATA` (SDK xpc/xpc.h).
    pub static _xpc_type_data: xpc_type_s;
    /// `XPC_TYPE_STRING` (SDK xpc/xpc.h).
    pub static _xpc_type_string: xpc_type_s;
    /// `XPC_TYPE_UUID` (SDK xpc/xpc.h).
    pub static _xpc_type_uuid: xpc_type_s;
    /// `XPC_TYPE_FD` (SDK xpc/xpc.h).
    pub static _xpc_type_fd: xpc_type_s;
    /// `XPC_TYPE_SHMEM` (SDK xpc/xpc.h).
    pub static _xpc_type_shmem: xpc_type_s;
    /// `XPC_TYPE_ARRAY` (SDK xpc/xpc.h).
    pub static _xpc_type_array: xpc_type_s;
    /// `XPC_TYPE_DICTIONARY` (SDK xpc/xpc.h).
    pub static _xpc_type_dictionary: xpc_type_s;
    /// `XPC_TYPE_ERROR` (SDK xpc/xpc.h).
    pub static _xpc_type_error: xpc_type_s;

    // ----- Well-known error objects (SDK xpc/connection.h):
    // `XPC_EXPORT const struct _xpc_dictionary_s _xpc_error_<name>;`

    /// `XPC_ERROR_CONNECTION_INTERRUPTED` (SDK xpc/connection.h).
    pub static _xpc_error_connection_interrupted: xpc_global_s;
    /// `XPC_ERROR_CONNECTION_INVALID` (SDK xpc/connection.h).
    pub static _xpc_error_connection_invalid: xpc_global_s;
    /// `XPC_ERROR_TERMINATION_IMMINENT` (SDK xpc/connection.h).
    pub static _xpc_error_termination_imminent: xpc_global_s;

    /// `XPC_ERROR_KEY_DESCRIPTION`: `const char * const
    /// _xpc_error_key_description;` (SDK xpc/xpc.h). The *value* of this
    /// static is the key string.
    pub static _xpc_error_key_description: *const c_char;

    // ----- Object protocol (SDK xpc/xpc.h).

    /// `xpc_object_t xpc_retain(xpc_object_t object);` (SDK xpc/xpc.h).
    pub fn xpc_retain(object: xpc_object_t) -> xpc_object_t;
    /// `void xpc_release(xpc_object_t object);` (SDK xpc/xpc.h).
    pub fn xpc_release(object: xpc_object_t);
    /// `xpc_type_t xpc_get_type(xpc_object_t object);` (SDK xpc/xpc.h).
    pub fn xpc_get_type(object: xpc_object_t) -> xpc_type_t;
    /// `const char *xpc_type_get_name(xpc_type_t type);` macOS 10.15; the
    /// string must not be freed (SDK xpc/xpc.h).
    pub fn xpc_type_get_name(kind: xpc_type_t) -> *const c_char;
    /// `char *xpc_copy_description(xpc_object_t object);` to be released
    /// with free(3) (SDK xpc/xpc.h).
    pub fn xpc_copy_description(object: xpc_object_t) -> *mut c_char;

    // ----- Scalars (SDK xpc/xpc.h). Getters return 0/false/NAN/NULL when
    // the object has another type.

    /// `xpc_object_t xpc_null_create(void);` (SDK xpc/xpc.h).
    pub fn xpc_null_create() -> xpc_object_t;
    /// `xpc_object_t xpc_bool_create(bool value);` (SDK xpc/xpc.h).
    pub fn xpc_bool_create(value: bool) -> xpc_object_t;
    /// `bool xpc_bool_get_value(xpc_object_t xbool);` (SDK xpc/xpc.h).
    pub fn xpc_bool_get_value(xbool: xpc_object_t) -> bool;
    /// `xpc_object_t xpc_int64_create(int64_t value);` (SDK xpc/xpc.h).
    pub fn xpc_int64_create(value: i64) -> xpc_object_t;
    /// `int64_t xpc_int64_get_value(xpc_object_t xint);` (SDK xpc/xpc.h).
    pub fn xpc_int64_get_value(xint: xpc_object_t) -> i64;
    /// `xpc_object_t xpc_uint64_create(uint64_t value);` (SDK xpc/xpc.h).
    pub fn xpc_uint64_create(value: u64) -> xpc_object_t;
    /// `uint64_t xpc_uint64_get_value(xpc_object_t xuint);` (SDK xpc/xpc.h).
    pub fn xpc_uint64_get_value(xuint: xpc_object_t) -> u64;
    /// `xpc_object_t xpc_double_create(double value);` (SDK xpc/xpc.h).
    pub fn xpc_double_create(value: f64) -> xpc_object_t;
    /// `double xpc_double_get_value(xpc_object_t xdouble);` (SDK xpc/xpc.h).
    pub fn xpc_double_get_value(xdouble: xpc_object_t) -> f64;
    /// `xpc_object_t xpc_string_create(const char *string);` copies the
    /// NUL-terminated string (SDK xpc/xpc.h).
    pub fn xpc_string_create(string: *const c_char) -> xpc_object_t;
    /// `size_t xpc_string_get_length(xpc_object_t xstring);` without the
    /// terminator (SDK xpc/xpc.h).
    pub fn xpc_string_get_length(xstring: xpc_object_t) -> usize;
    /// `const char * _Nullable xpc_string_get_string_ptr(xpc_object_t
    /// xstring);` internal storage, NULL for a non-string (SDK xpc/xpc.h).
    pub fn xpc_string_get_string_ptr(xstring: xpc_object_t) -> *const c_char;

    // ----- Arrays (SDK xpc/xpc.h).

    /// `xpc_object_t xpc_array_create(const xpc_object_t _Nonnull *
    /// _Nullable objects, size_t count);` NULL allowed when count is 0
    /// (SDK xpc/xpc.h).
    pub fn xpc_array_create(objects: *const xpc_object_t, count: usize) -> xpc_object_t;
    /// `void xpc_array_append_value(xpc_object_t xarray, xpc_object_t
    /// value);` the array retains `value` (SDK xpc/xpc.h).
    pub fn xpc_array_append_value(xarray: xpc_object_t, value: xpc_object_t);
    /// `size_t xpc_array_get_count(xpc_object_t xarray);` 0 for a
    /// non-array (SDK xpc/xpc.h).
    pub fn xpc_array_get_count(xarray: xpc_object_t) -> usize;
    /// `xpc_object_t xpc_array_get_value(xpc_object_t xarray, size_t
    /// index);` borrowed; index must be in range (SDK xpc/xpc.h).
    pub fn xpc_array_get_value(xarray: xpc_object_t, index: usize) -> xpc_object_t;

    // ----- Dictionaries (SDK xpc/xpc.h).

    /// `xpc_object_t xpc_dictionary_create(const char * _Nonnull const *
    /// _Nullable keys, const xpc_object_t _Nullable * _Nullable values,
    /// size_t count);` (NULL, NULL, 0) gives an empty dictionary (SDK
    /// xpc/xpc.h).
    pub fn xpc_dictionary_create(
        keys: *const *const c_char,
        values: *const xpc_object_t,
        count: usize,
    ) -> xpc_object_t;
    /// `xpc_object_t _Nullable xpc_dictionary_create_reply(xpc_object_t
    /// original);` NULL without a reply context or on a second call (SDK
    /// xpc/xpc.h).
    pub fn xpc_dictionary_create_reply(original: xpc_object_t) -> xpc_object_t;
    /// `void xpc_dictionary_set_value(xpc_object_t xdict, const char *key,
    /// xpc_object_t _Nullable value);` retains `value`; NULL deletes (SDK
    /// xpc/xpc.h).
    pub fn xpc_dictionary_set_value(xdict: xpc_object_t, key: *const c_char, value: xpc_object_t);
    /// `xpc_object_t _Nullable xpc_dictionary_get_value(xpc_object_t xdict,
    /// const char *key);` borrowed; NULL if absent or not a dictionary (SDK
    /// xpc/xpc.h).
    pub fn xpc_dictionary_get_value(xdict: xpc_object_t, key: *const c_char) -> xpc_object_t;
    /// `size_t xpc_dictionary_get_count(xpc_object_t xdict);` (SDK xpc/xpc.h).
    pub fn xpc_dictionary_get_count(xdict: xpc_object_t) -> usize;
    /// `bool xpc_dictionary_apply(xpc_object_t xdict, XPC_NOESCAPE
    /// xpc_dictionary_applier_t applier);` the block is not kept (SDK
    /// xpc/xpc.h).
    pub fn xpc_dictionary_apply(
        xdict: xpc_object_t,
        applier: &xpc_dictionary_applier_t<'_>,
    ) -> bool;
    /// `xpc_connection_t _Nullable
    /// xpc_dictionary_get_remote_connection(xpc_object_t xdict);` borrowed
    /// (SDK xpc/xpc.h).
    pub fn xpc_dictionary_get_remote_connection(xdict: xpc_object_t) -> xpc_connection_t;
    /// `void xpc_dictionary_set_bool(xpc_object_t xdict, const char *key,
    /// bool value);` (SDK xpc/xpc.h).
    pub fn xpc_dictionary_set_bool(xdict: xpc_object_t, key: *const c_char, value: bool);
    /// `void xpc_dictionary_set_int64(xpc_object_t xdict, const char *key,
    /// int64_t value);` (SDK xpc/xpc.h).
    pub fn xpc_dictionary_set_int64(xdict: xpc_object_t, key: *const c_char, value: i64);
    /// `void xpc_dictionary_set_string(xpc_object_t xdict, const char *key,
    /// const char *string);` (SDK xpc/xpc.h).
    pub fn xpc_dictionary_set_string(
        xdict: xpc_object_t,
        key: *const c_char,
        string: *const c_char,
    );
    /// `const char * _Nullable xpc_dictionary_get_string(xpc_object_t
    /// xdict, const char *key);` NULL if absent or not a string (SDK
    /// xpc/xpc.h).
    pub fn xpc_dictionary_get_string(xdict: xpc_object_t, key: *const c_char) -> *const c_char;
    /// `int64_t xpc_dictionary_get_int64(xpc_object_t xdict, const char
    /// *key);` 0 if absent or not an int64 (SDK xpc/xpc.h).
    pub fn xpc_dictionary_get_int64(xdict: xpc_object_t, key: *const c_char) -> i64;

    // ----- Transactions (SDK xpc/xpc.h; marked XPC_TRANSACTION_DEPRECATED
    // there, still exported; launchd's EnableTransactions relies on them).

    /// `void xpc_transaction_begin(void);` (SDK xpc/xpc.h).
    pub fn xpc_transaction_begin();
    /// `void xpc_transaction_end(void);` (SDK xpc/xpc.h).
    pub fn xpc_transaction_end();

    // ----- Connections (SDK xpc/connection.h).

    /// `xpc_connection_t xpc_connection_create_mach_service(const char
    /// *name, dispatch_queue_t _Nullable targetq, uint64_t flags);`
    /// retained, inactive (SDK xpc/connection.h).
    pub fn xpc_connection_create_mach_service(
        name: *const c_char,
        targetq: Option<&DispatchQueue>,
        flags: u64,
    ) -> xpc_connection_t;
    /// `void xpc_connection_set_target_queue(xpc_connection_t connection,
    /// dispatch_queue_t _Nullable targetq);` (SDK xpc/connection.h).
    pub fn xpc_connection_set_target_queue(
        connection: xpc_connection_t,
        targetq: Option<&DispatchQueue>,
    );
    /// `void xpc_connection_set_event_handler(xpc_connection_t connection,
    /// xpc_handler_t handler);` the block is copied (SDK xpc/connection.h).
    pub fn xpc_connection_set_event_handler(connection: xpc_connection_t, handler: &xpc_handler_t);
    /// `void xpc_connection_activate(xpc_connection_t connection);` macOS
    /// 10.12 (SDK xpc/connection.h).
    pub fn xpc_connection_activate(connection: xpc_connection_t);
    /// `void xpc_connection_resume(xpc_connection_t connection);` (SDK
    /// xpc/connection.h).
    pub fn xpc_connection_resume(connection: xpc_connection_t);
    /// `void xpc_connection_cancel(xpc_connection_t connection);`
    /// asynchronous (SDK xpc/connection.h).
    pub fn xpc_connection_cancel(connection: xpc_connection_t);
    /// `void xpc_connection_send_message(xpc_connection_t connection,
    /// xpc_object_t message);` the dictionary is logically copied (SDK
    /// xpc/connection.h).
    pub fn xpc_connection_send_message(connection: xpc_connection_t, message: xpc_object_t);
    /// `void xpc_connection_send_message_with_reply(xpc_connection_t
    /// connection, xpc_object_t message, dispatch_queue_t _Nullable replyq,
    /// xpc_handler_t handler);` the message is logically copied and the
    /// block copied; the handler is submitted to `replyq` once, with the
    /// reply or an error object (SDK xpc/connection.h).
    pub fn xpc_connection_send_message_with_reply(
        connection: xpc_connection_t,
        message: xpc_object_t,
        replyq: Option<&DispatchQueue>,
        handler: &xpc_handler_t,
    );
    /// `xpc_object_t xpc_connection_send_message_with_reply_sync(
    /// xpc_connection_t connection, xpc_object_t message);` retained reply
    /// or error object (SDK xpc/connection.h).
    pub fn xpc_connection_send_message_with_reply_sync(
        connection: xpc_connection_t,
        message: xpc_object_t,
    ) -> xpc_object_t;
    /// `pid_t xpc_connection_get_pid(xpc_connection_t connection);` (SDK
    /// xpc/connection.h).
    pub fn xpc_connection_get_pid(connection: xpc_connection_t) -> libc::pid_t;
    /// `uid_t xpc_connection_get_euid(xpc_connection_t connection);` at
    /// connection time (SDK xpc/connection.h).
    pub fn xpc_connection_get_euid(connection: xpc_connection_t) -> libc::uid_t;
    /// `gid_t xpc_connection_get_egid(xpc_connection_t connection);` at
    /// connection time (SDK xpc/connection.h).
    pub fn xpc_connection_get_egid(connection: xpc_connection_t) -> libc::gid_t;
}
