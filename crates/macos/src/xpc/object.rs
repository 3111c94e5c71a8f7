//! Owned XPC objects and dictionaries.

use std::borrow::Cow;
use std::ffi::{CStr, CString, c_char};
use std::fmt;
use std::ptr::NonNull;

use vmnet_broker_proto::Dict;

use super::{XpcError, shorten};
use crate::sys::xpc as sys;
use crate::sys::xpc::xpc_object_t;

/// The type of an XPC object (`xpc_get_type` compared with the
/// `XPC_TYPE_*` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XpcType {
    /// `XPC_TYPE_CONNECTION`.
    Connection,
    /// `XPC_TYPE_ENDPOINT`.
    Endpoint,
    /// `XPC_TYPE_NULL`.
    Null,
    /// `XPC_TYPE_BOOL`.
    Bool,
    /// `XPC_TYPE_INT64`.
    Int64,
    /// `XPC_TYPE_UINT64`.
    UInt64,
    /// `XPC_TYPE_DOUBLE`.
    Double,
    /// `XPC_TYPE_DATE`.
    Date,
    /// `XPC_TYPE_DATA`.
    Data,
    /// `XPC_TYPE_STRING`.
    String,
    /// `XPC_TYPE_UUID`.
    Uuid,
    /// `XPC_TYPE_FD`.
    Fd,
    /// `XPC_TYPE_SHMEM`.
    Shmem,
    /// `XPC_TYPE_ARRAY`.
    Array,
    /// `XPC_TYPE_DICTIONARY`.
    Dictionary,
    /// `XPC_TYPE_ERROR` (the well-known error dictionaries).
    Error,
    /// A type this crate does not list.
    Other,
}

/// The type of a live object.
///
/// # Safety
///
/// `ptr` must be a valid XPC object for the duration of the call.
pub(crate) unsafe fn type_of(ptr: xpc_object_t) -> XpcType {
    // SAFETY: the caller guarantees `ptr` is a live XPC object;
    // xpc_get_type only reads it (SDK xpc/xpc.h).
    let t = unsafe { sys::xpc_get_type(ptr) };
    let table: [(*const sys::xpc_type_s, XpcType); 16] = [
        (&raw const sys::_xpc_type_dictionary, XpcType::Dictionary),
        (&raw const sys::_xpc_type_string, XpcType::String),
        (&raw const sys::_xpc_type_int64, XpcType::Int64),
        (&raw const sys::_xpc_type_error, XpcType::Error),
        (&raw const sys::_xpc_type_connection, XpcType::Connection),
        (&raw const sys::_xpc_type_array, XpcType::Array),
        (&raw const sys::_xpc_type_bool, XpcType::Bool),
        (&raw const sys::_xpc_type_double, XpcType::Double),
        (&raw const sys::_xpc_type_uint64, XpcType::UInt64),
        (&raw const sys::_xpc_type_null, XpcType::Null),
        (&raw const sys::_xpc_type_data, XpcType::Data),
        (&raw const sys::_xpc_type_date, XpcType::Date),
        (&raw const sys::_xpc_type_uuid, XpcType::Uuid),
        (&raw const sys::_xpc_type_fd, XpcType::Fd),
        (&raw const sys::_xpc_type_shmem, XpcType::Shmem),
        (&raw const sys::_xpc_type_endpoint, XpcType::Endpoint),
    ];
    table
        .iter()
        .find(|(p, _)| *p == t)
        .map_or(XpcType::Other, |(_, k)| *k)
}

/// A string from libxpc, copied (`None` if NULL or not UTF-8).
///
/// # Safety
///
/// `ptr` must be NULL or a NUL-terminated string valid for the call.
pub(crate) unsafe fn copy_c_str(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's guarantee.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str().ok().map(str::to_owned)
}

pub(crate) fn c_string(what: &'static str, text: &str) -> Result<CString, XpcError> {
    CString::new(text).map_err(|_| XpcError::InteriorNul {
        what,
        text: shorten(text),
    })
}

/// An owned reference to an XPC object.
///
/// `Clone` retains (`xpc_retain`), `Drop` releases (`xpc_release`), after
/// the model of `dispatch2::DispatchRetained`. Through this type an object
/// is only read; dictionaries this process builds are changed through
/// [`XpcDictionary`] before they are shared.
///
/// # Thread safety
///
/// `XpcObject` is `Send`: XPC objects are reference counted with atomic
/// counts (`xpc_retain`/`xpc_release` are plain OS-object reference
/// operations), and an object reachable through `XpcObject` is never
/// changed by this crate. libxpc does not document concurrent reads of one
/// object, so the type is not `Sync`; clones on different threads only
/// read, which we take to be safe for objects nobody modifies.
#[repr(transparent)]
pub struct XpcObject {
    ptr: NonNull<std::ffi::c_void>,
}

// SAFETY: see "Thread safety" above: reference counting is atomic and the
// object is not mutated through this type.
unsafe impl Send for XpcObject {}

impl XpcObject {
    /// Takes ownership of a +1 reference (from a `*_create*` or `*_copy*`
    /// function). Returns `None` for NULL.
    ///
    /// # Safety
    ///
    /// `ptr` must be NULL or a valid XPC object whose reference the caller
    /// owns and gives up, and nobody may modify the object while an
    /// `XpcObject` exists for it (other than through [`XpcDictionary`]
    /// when that is the only reference).
    pub unsafe fn from_owned(ptr: xpc_object_t) -> Option<Self> {
        NonNull::new(ptr).map(|ptr| Self { ptr })
    }

    /// Retains a borrowed object (an event given to a handler, a value
    /// from `*_get_value`). Returns `None` for NULL.
    ///
    /// # Safety
    ///
    /// `ptr` must be NULL or a valid XPC object for the duration of the
    /// call, with the same no-modification rule as [`Self::from_owned`].
    pub unsafe fn from_borrowed(ptr: xpc_object_t) -> Option<Self> {
        let ptr = NonNull::new(ptr)?;
        // SAFETY: `ptr` is a live XPC object; xpc_retain returns the object
        // it was given (SDK xpc/xpc.h) with one more reference, which the
        // new XpcObject owns.
        unsafe { sys::xpc_retain(ptr.as_ptr()) };
        Some(Self { ptr })
    }

    /// The raw pointer, still owned by `self`.
    pub fn as_ptr(&self) -> xpc_object_t {
        self.ptr.as_ptr()
    }

    /// Gives up ownership: the caller must release the returned pointer.
    pub fn into_raw(self) -> xpc_object_t {
        let ptr = self.ptr.as_ptr();
        std::mem::forget(self);
        ptr
    }

    /// The object's type.
    pub fn kind(&self) -> XpcType {
        // SAFETY: `self` keeps the object alive.
        unsafe { type_of(self.as_ptr()) }
    }

    /// libxpc's name for the object's type (`"dictionary"`, `"int64"`, ...).
    pub fn type_name(&self) -> String {
        // SAFETY: `self` keeps the object alive; xpc_get_type returns a
        // type descriptor valid for the process lifetime (SDK xpc/xpc.h).
        let ty = unsafe { sys::xpc_get_type(self.as_ptr()) };
        // SAFETY: a type descriptor; xpc_type_get_name returns a static
        // string not to be freed (SDK xpc/xpc.h, macOS 10.15).
        let name = unsafe { sys::xpc_type_get_name(ty) };
        // SAFETY: NULL or a static NUL-terminated string, copied.
        unsafe { copy_c_str(name) }.unwrap_or_else(|| "unknown".to_owned())
    }

    /// libxpc's debug description of the object.
    pub fn description(&self) -> String {
        // SAFETY: `self` keeps the object alive; xpc_copy_description
        // returns a malloc'd string the caller frees with free(3) (SDK
        // xpc/xpc.h).
        let raw = unsafe { sys::xpc_copy_description(self.as_ptr()) };
        let text = if raw.is_null() {
            String::new()
        } else {
            // SAFETY: a NUL-terminated string we own until the free below.
            unsafe { CStr::from_ptr(raw) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: NULL or the malloc'd string, freed once, not used after.
        unsafe { libc::free(raw.cast()) };
        text
    }

    // ----- Constructors of scalar objects.

    /// A string object.
    ///
    /// # Errors
    ///
    /// [`XpcError::InteriorNul`] if `text` contains a NUL byte.
    pub fn string(text: &str) -> Result<Self, XpcError> {
        let c = c_string("string", text)?;
        // SAFETY: `c` is NUL-terminated and outlives the call, which copies
        // it (SDK xpc/xpc.h).
        let raw = unsafe { sys::xpc_string_create(c.as_ptr()) };
        // SAFETY: a +1 object (or NULL), ours alone.
        Ok(unsafe { owned(raw) })
    }

    /// A signed 64-bit integer object.
    pub fn int64(value: i64) -> Self {
        // SAFETY: a plain value in (SDK xpc/xpc.h).
        let raw = unsafe { sys::xpc_int64_create(value) };
        // SAFETY: a +1 object (or NULL), ours alone.
        unsafe { owned(raw) }
    }

    /// An unsigned 64-bit integer object.
    pub fn uint64(value: u64) -> Self {
        // SAFETY: a plain value in (SDK xpc/xpc.h).
        let raw = unsafe { sys::xpc_uint64_create(value) };
        // SAFETY: a +1 object (or NULL), ours alone.
        unsafe { owned(raw) }
    }

    /// A double object.
    pub fn double(value: f64) -> Self {
        // SAFETY: a plain value in (SDK xpc/xpc.h).
        let raw = unsafe { sys::xpc_double_create(value) };
        // SAFETY: a +1 object (or NULL), ours alone.
        unsafe { owned(raw) }
    }

    /// A boolean object.
    pub fn bool(value: bool) -> Self {
        // SAFETY: a plain value in (SDK xpc/xpc.h).
        let raw = unsafe { sys::xpc_bool_create(value) };
        // SAFETY: a +1 object (or NULL), ours alone.
        unsafe { owned(raw) }
    }

    /// The null object.
    pub fn null() -> Self {
        // SAFETY: no arguments (SDK xpc/xpc.h).
        let raw = unsafe { sys::xpc_null_create() };
        // SAFETY: a +1 object (or NULL), ours alone.
        unsafe { owned(raw) }
    }

    // ----- Reading scalars. Each returns `None` for another type.

    /// The bytes of a string object (without the terminator), borrowed
    /// from `self`; `None` for another type.
    fn string_bytes(&self) -> Option<&[u8]> {
        if self.kind() != XpcType::String {
            return None;
        }
        // SAFETY: type checked: a live string object kept alive by `self`
        // (SDK xpc/xpc.h); the getter only reads.
        let ptr = unsafe { sys::xpc_string_get_string_ptr(self.as_ptr()) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: the same live string object; the getter only reads. The
        // length excludes the terminator.
        let len = unsafe { sys::xpc_string_get_length(self.as_ptr()) };
        // SAFETY: `len` bytes at `ptr` belong to the string object, which
        // is immutable and alive while `self` holds it; the slice borrows
        // `self`, so it cannot outlive that.
        Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
    }

    /// The string, if this is a UTF-8 string object.
    pub fn as_string(&self) -> Option<String> {
        std::str::from_utf8(self.string_bytes()?)
            .ok()
            .map(str::to_owned)
    }

    /// The string, if this is a string object, with bytes that are not
    /// UTF-8 replaced by U+FFFD. Requests are read this way: the original
    /// broker looks up whatever C string it gets, so a name that is not
    /// UTF-8 must still be a (not found) name, not a missing one.
    pub fn as_string_lossy(&self) -> Option<String> {
        Some(String::from_utf8_lossy(self.string_bytes()?).into_owned())
    }

    /// The value, if this is an int64 object.
    pub fn as_i64(&self) -> Option<i64> {
        // SAFETY: type checked; the getter only reads (SDK xpc/xpc.h).
        (self.kind() == XpcType::Int64).then(|| unsafe { sys::xpc_int64_get_value(self.as_ptr()) })
    }

    /// The value, if this is a uint64 object.
    pub fn as_u64(&self) -> Option<u64> {
        // SAFETY: type checked; the getter only reads (SDK xpc/xpc.h).
        (self.kind() == XpcType::UInt64)
            .then(|| unsafe { sys::xpc_uint64_get_value(self.as_ptr()) })
    }

    /// The value, if this is a double object.
    pub fn as_f64(&self) -> Option<f64> {
        // SAFETY: type checked; the getter only reads (SDK xpc/xpc.h).
        (self.kind() == XpcType::Double)
            .then(|| unsafe { sys::xpc_double_get_value(self.as_ptr()) })
    }

    /// The value, if this is a boolean object.
    pub fn as_bool(&self) -> Option<bool> {
        // SAFETY: type checked; the getter only reads (SDK xpc/xpc.h).
        (self.kind() == XpcType::Bool).then(|| unsafe { sys::xpc_bool_get_value(self.as_ptr()) })
    }

    /// The elements, retained, if this is an array.
    pub fn array_elements(&self) -> Option<Vec<Self>> {
        if self.kind() != XpcType::Array {
            return None;
        }
        // SAFETY: an array object kept alive by `self`; the getter only
        // reads (SDK xpc/xpc.h).
        let count = unsafe { sys::xpc_array_get_count(self.as_ptr()) };
        Some(
            (0..count)
                .filter_map(|i| {
                    // SAFETY: as above, and `i` is within 0..count; the
                    // value is borrowed from the array (SDK xpc/xpc.h).
                    let value = unsafe { sys::xpc_array_get_value(self.as_ptr(), i) };
                    // SAFETY: a live object (or NULL), retained at once.
                    unsafe { Self::from_borrowed(value) }
                })
                .collect(),
        )
    }

    // ----- Reading dictionaries. Each returns `None` if `self` is not a
    // dictionary, the key is absent or has a NUL byte, or the value has
    // another type.

    /// The value under `key`, retained.
    pub fn get(&self, key: &str) -> Option<Self> {
        if self.kind() != XpcType::Dictionary {
            return None;
        }
        let key = CString::new(key).ok()?;
        // SAFETY: a dictionary kept alive by `self`, a NUL-terminated key;
        // the value is borrowed from the dictionary (SDK xpc/xpc.h).
        let value = unsafe { sys::xpc_dictionary_get_value(self.as_ptr(), key.as_ptr()) };
        // SAFETY: a live object (or NULL), retained at once.
        unsafe { Self::from_borrowed(value) }
    }

    /// The string under `key`.
    pub fn get_string(&self, key: &str) -> Option<String> {
        self.get(key)?.as_string()
    }

    /// The int64 under `key`. Unlike `xpc_dictionary_get_int64`, which
    /// returns 0 for a missing key, this tells absence apart.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key)?.as_i64()
    }

    /// Whether `self` is a dictionary with a value under `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The entries of a dictionary, retained, in libxpc's (unspecified)
    /// order. Keys that are not UTF-8 are skipped.
    pub fn dictionary_entries(&self) -> Option<Vec<(String, Self)>> {
        if self.kind() != XpcType::Dictionary {
            return None;
        }
        let entries = std::cell::RefCell::new(Vec::new());
        let applier =
            block2::StackBlock::new(|key: *const c_char, value: xpc_object_t| -> sys::c_bool {
                // Keep a panic (allocation failure) from unwinding into libxpc.
                super::no_unwind("xpc_dictionary_apply", || {
                    // SAFETY: libxpc passes a NUL-terminated key for the
                    // duration of this call (SDK xpc/xpc.h,
                    // `xpc_dictionary_applier_t`); we copy it.
                    let k = unsafe { copy_c_str(key) };
                    // SAFETY: likewise a live value, which we retain.
                    let v = unsafe { Self::from_borrowed(value) };
                    let entry = (k, v);
                    if let (Some(k), Some(v)) = entry {
                        entries.borrow_mut().push((k, v));
                    }
                });
                sys::c_bool(true)
            });
        // SAFETY: a dictionary kept alive by `self`; the applier is not
        // kept after the call (XPC_NOESCAPE) and the dictionary is not
        // modified during it.
        unsafe { sys::xpc_dictionary_apply(self.as_ptr(), &applier) };
        Some(entries.into_inner())
    }
}

/// Wraps a +1 pointer from a create function that cannot return NULL
/// except when out of memory.
///
/// # Safety
///
/// `ptr` must be NULL or a fresh +1 XPC object nobody else holds.
unsafe fn owned(ptr: xpc_object_t) -> XpcObject {
    // SAFETY: per the caller.
    match unsafe { XpcObject::from_owned(ptr) } {
        Some(obj) => obj,
        // libxpc's create functions only fail when memory is exhausted;
        // Rust's own allocation failure also aborts.
        None => std::process::abort(),
    }
}

impl Clone for XpcObject {
    fn clone(&self) -> Self {
        // SAFETY: `self` keeps the object alive; one more reference is
        // owned by the clone.
        unsafe { sys::xpc_retain(self.as_ptr()) };
        Self { ptr: self.ptr }
    }
}

impl Drop for XpcObject {
    fn drop(&mut self) {
        // SAFETY: we own exactly one reference, given up here.
        unsafe { sys::xpc_release(self.as_ptr()) };
    }
}

impl fmt::Debug for XpcObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("XpcObject")
            .field(&self.description())
            .finish()
    }
}

/// Requests are read through the protocol crate's [`Dict`]: only strings
/// matter, and a value of another type counts as missing (as
/// `xpc_dictionary_get_string` returns NULL for it).
impl Dict for XpcObject {
    fn string(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key)?.as_string_lossy().map(Cow::Owned)
    }
}

/// A dictionary owned by this process alone, which may be changed.
///
/// Messages and replies are built here; [`XpcDictionary::into_object`]
/// turns it into a shared, read-only [`XpcObject`]. There is deliberately
/// no way to get an `XpcObject` for the dictionary while it can still be
/// changed.
pub struct XpcDictionary {
    obj: XpcObject,
}

// SAFETY: the dictionary is reachable only through this value (no clones
// are handed out), so moving it to another thread moves the only handle.
unsafe impl Send for XpcDictionary {}

impl XpcDictionary {
    /// An empty dictionary.
    pub fn new() -> Self {
        // SAFETY: (NULL, NULL, 0) creates an empty dictionary (SDK
        // xpc/xpc.h).
        let raw = unsafe { sys::xpc_dictionary_create(std::ptr::null(), std::ptr::null(), 0) };
        // SAFETY: a +1 dictionary (or NULL), ours alone.
        let obj = unsafe { owned(raw) };
        Self { obj }
    }

    /// Wraps a fresh dictionary (such as one from
    /// `xpc_dictionary_create_reply`).
    ///
    /// # Safety
    ///
    /// `ptr` must be NULL or a +1 dictionary that nobody else references.
    pub(crate) unsafe fn from_owned_unique(ptr: xpc_object_t) -> Option<Self> {
        // SAFETY: per the caller.
        unsafe { XpcObject::from_owned(ptr) }.map(|obj| Self { obj })
    }

    /// The raw pointer, still owned by `self`.
    pub fn as_ptr(&self) -> xpc_object_t {
        self.obj.as_ptr()
    }

    /// Shares the dictionary; it cannot be changed afterwards.
    pub fn into_object(self) -> XpcObject {
        self.obj
    }

    /// Sets `key` to a string.
    ///
    /// # Errors
    ///
    /// [`XpcError::InteriorNul`] if the key or value has a NUL byte.
    pub fn set_string(&mut self, key: &str, value: &str) -> Result<(), XpcError> {
        let k = c_string("key", key)?;
        let v = c_string("string", value)?;
        // SAFETY: a dictionary we own alone; both strings are
        // NUL-terminated and copied by the call (SDK xpc/xpc.h).
        unsafe { sys::xpc_dictionary_set_string(self.as_ptr(), k.as_ptr(), v.as_ptr()) };
        Ok(())
    }

    /// Sets `key` to an int64.
    ///
    /// # Errors
    ///
    /// [`XpcError::InteriorNul`] if the key has a NUL byte.
    pub fn set_i64(&mut self, key: &str, value: i64) -> Result<(), XpcError> {
        let k = c_string("key", key)?;
        // SAFETY: a dictionary we own alone; NUL-terminated key (SDK
        // xpc/xpc.h).
        unsafe { sys::xpc_dictionary_set_int64(self.as_ptr(), k.as_ptr(), value) };
        Ok(())
    }

    /// Sets `key` to a boolean.
    ///
    /// # Errors
    ///
    /// [`XpcError::InteriorNul`] if the key has a NUL byte.
    pub fn set_bool(&mut self, key: &str, value: bool) -> Result<(), XpcError> {
        let k = c_string("key", key)?;
        // SAFETY: a dictionary we own alone; NUL-terminated key (SDK
        // xpc/xpc.h).
        unsafe { sys::xpc_dictionary_set_bool(self.as_ptr(), k.as_ptr(), value) };
        Ok(())
    }

    /// Sets `key` to `value` (the dictionary retains it), for example a
    /// network serialization.
    ///
    /// # Errors
    ///
    /// [`XpcError::InteriorNul`] if the key has a NUL byte.
    pub fn set_value(&mut self, key: &str, value: &XpcObject) -> Result<(), XpcError> {
        let k = c_string("key", key)?;
        // SAFETY: a dictionary we own alone; a live value, which the
        // dictionary retains (SDK xpc/xpc.h).
        unsafe { sys::xpc_dictionary_set_value(self.as_ptr(), k.as_ptr(), value.as_ptr()) };
        Ok(())
    }

    /// Sets `key` to the XPC form of a JSON value (see [`super::from_json`]).
    ///
    /// # Errors
    ///
    /// As [`super::from_json`], or a NUL byte in the key.
    pub fn set_json(&mut self, key: &str, value: &serde_json::Value) -> Result<(), XpcError> {
        let obj = super::from_json(value)?;
        self.set_value(key, &obj)
    }

    /// Removes `key`.
    ///
    /// # Errors
    ///
    /// [`XpcError::InteriorNul`] if the key has a NUL byte.
    pub fn remove(&mut self, key: &str) -> Result<(), XpcError> {
        let k = c_string("key", key)?;
        // SAFETY: a dictionary we own alone; NULL deletes the key (SDK
        // xpc/xpc.h).
        unsafe { sys::xpc_dictionary_set_value(self.as_ptr(), k.as_ptr(), std::ptr::null_mut()) };
        Ok(())
    }

    /// The value under `key`, retained (see [`XpcObject::get`]).
    pub fn get(&self, key: &str) -> Option<XpcObject> {
        self.obj.get(key)
    }

    /// The string under `key`.
    pub fn get_string(&self, key: &str) -> Option<String> {
        self.obj.get_string(key)
    }

    /// The int64 under `key`.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.obj.get_i64(key)
    }

    /// libxpc's debug description.
    pub fn description(&self) -> String {
        self.obj.description()
    }
}

impl Default for XpcDictionary {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for XpcDictionary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("XpcDictionary")
            .field(&self.description())
            .finish()
    }
}

impl Dict for XpcDictionary {
    fn string(&self, key: &str) -> Option<Cow<'_, str>> {
        self.obj.string(key)
    }
}
