//! libxpc objects: type descriptors, the well-known error objects, values,
//! arrays, dictionaries with reply contexts, and transactions.

use super::faults::{self, Action, Point};
use std::ffi::{CStr, CString, c_char, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use block2::Block;

use super::conn::Conn;
use super::{Family, Live, check, lock, register, unregister, violation};

pub(crate) type XPtr = *mut c_void;

/// A type descriptor (`_xpc_type_*`): only its address and name matter.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct XpcTypeObject {
    name: *const c_char,
}

// SAFETY: the only field points to a static NUL-terminated string.
unsafe impl Sync for XpcTypeObject {}

macro_rules! xpc_types {
    ($($sym:ident = $name:literal;)*) => {
        $(
            /// An `XPC_TYPE_*` descriptor.
            #[unsafe(no_mangle)]
            pub(crate) static $sym: XpcTypeObject = XpcTypeObject { name: concat!($name, "\0").as_ptr().cast() };
        )*
        fn is_type_object(t: *const XpcTypeObject) -> bool {
            $( std::ptr::eq(t, &raw const $sym) )||*
        }
    };
}

xpc_types! {
    _xpc_type_connection = "connection";
    _xpc_type_endpoint = "endpoint";
    _xpc_type_null = "null";
    _xpc_type_bool = "bool";
    _xpc_type_int64 = "int64";
    _xpc_type_uint64 = "uint64";
    _xpc_type_double = "double";
    _xpc_type_date = "date";
    _xpc_type_data = "data";
    _xpc_type_string = "string";
    _xpc_type_uuid = "uuid";
    _xpc_type_fd = "fd";
    _xpc_type_shmem = "shmem";
    _xpc_type_array = "array";
    _xpc_type_dictionary = "dictionary";
    _xpc_type_error = "error";
}

/// One of the well-known error objects (`_xpc_error_*`): a constant
/// dictionary holding only a description.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct XpcErrorObject {
    description: *const c_char,
}

// SAFETY: the only field points to a static NUL-terminated string.
unsafe impl Sync for XpcErrorObject {}

/// `XPC_ERROR_CONNECTION_INTERRUPTED`.
#[unsafe(no_mangle)]
pub(crate) static _xpc_error_connection_interrupted: XpcErrorObject = XpcErrorObject {
    description: c"Connection interrupted".as_ptr(),
};
/// `XPC_ERROR_CONNECTION_INVALID`.
#[unsafe(no_mangle)]
pub(crate) static _xpc_error_connection_invalid: XpcErrorObject = XpcErrorObject {
    description: c"Connection invalid".as_ptr(),
};
/// `XPC_ERROR_TERMINATION_IMMINENT`.
#[unsafe(no_mangle)]
pub(crate) static _xpc_error_termination_imminent: XpcErrorObject = XpcErrorObject {
    description: c"Termination imminent".as_ptr(),
};

/// A `const char *` that may live in a static.
#[repr(transparent)]
#[derive(Debug)]
pub(crate) struct StaticStr(*const c_char);
// SAFETY: points to a static NUL-terminated string.
unsafe impl Sync for StaticStr {}

/// `XPC_ERROR_KEY_DESCRIPTION`: the value of this static is the key.
#[unsafe(no_mangle)]
pub(crate) static _xpc_error_key_description: StaticStr =
    StaticStr(c"XPCErrorDescription".as_ptr());

pub(crate) fn invalid() -> XPtr {
    (&raw const _xpc_error_connection_invalid).cast_mut().cast()
}
pub(crate) fn interrupted() -> XPtr {
    (&raw const _xpc_error_connection_interrupted)
        .cast_mut()
        .cast()
}

fn error_object(p: XPtr) -> Option<&'static XpcErrorObject> {
    [
        &_xpc_error_connection_interrupted,
        &_xpc_error_connection_invalid,
        &_xpc_error_termination_imminent,
    ]
    .into_iter()
    .find(|e| std::ptr::eq(p.cast_const().cast::<XpcErrorObject>(), *e))
}

pub(crate) struct XObj {
    rc: AtomicUsize,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    Null,
    Bool(bool),
    Int64(i64),
    UInt64(u64),
    Double(f64),
    Str(CString),
    Array(Mutex<Vec<usize>>),
    Dict(Dict),
    Conn(std::sync::Arc<Conn>),
}

impl Drop for XObj {
    fn drop(&mut self) {
        if let Body::Array(a) = &self.body {
            for v in std::mem::take(&mut *lock(a)) {
                release(v as XPtr);
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Dict {
    pub(crate) entries: Mutex<Vec<(CString, usize)>>,
    /// The connection a received message came from (retained).
    pub(crate) remote: usize,
    /// The reply context of a received message that expects a reply:
    /// taken by the first `xpc_dictionary_create_reply`.
    pub(crate) reply_id: Mutex<Option<u64>>,
    /// For a reply: the connection and request it answers (retained).
    pub(crate) reply_to: Option<(usize, u64)>,
}

impl Dict {
    pub(crate) fn new(
        remote: usize,
        reply_id: Option<u64>,
        reply_to: Option<(usize, u64)>,
    ) -> Self {
        Self {
            entries: Mutex::default(),
            remote,
            reply_id: Mutex::new(reply_id),
            reply_to,
        }
    }
}

impl Drop for Dict {
    fn drop(&mut self) {
        let entries = std::mem::take(&mut *lock(&self.entries));
        for (_, v) in entries {
            release(v as XPtr);
        }
        if self.remote != 0 {
            release(self.remote as XPtr);
        }
        if let Some((c, _)) = self.reply_to {
            release(c as XPtr);
        }
    }
}

pub(crate) fn alloc(body: Body) -> XPtr {
    let p = Box::into_raw(Box::new(XObj {
        rc: AtomicUsize::new(1),
        body,
    }));
    register(p as usize, Family::Xpc);
    p.cast()
}

/// The live object at `p` (aborts on anything else). Not for the
/// well-known error objects.
pub(crate) fn obj(p: XPtr, func: &str) -> &'static XObj {
    check(p as usize, Family::Xpc, func);
    // SAFETY: checked live above; the caller holds a reference for the
    // duration of the call, as the XPC contract requires.
    unsafe { &*p.cast::<XObj>() }
}

pub(crate) fn retain(p: XPtr) -> XPtr {
    if error_object(p).is_some() {
        return p;
    }
    obj(p, "xpc_retain").rc.fetch_add(1, Ordering::Relaxed);
    p
}

pub(crate) fn release(p: XPtr) {
    if error_object(p).is_some() {
        return;
    }
    let o = obj(p, "xpc_release");
    if o.rc.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    if let Body::Conn(c) = &o.body {
        c.on_last_release();
    }
    unregister(p as usize);
    // SAFETY: the last reference is gone and the object was unregistered:
    // nobody can reach it any more.
    drop(unsafe { Box::from_raw(p.cast::<XObj>()) });
}

fn cstr<'a>(p: *const c_char, func: &str) -> &'a CStr {
    if p.is_null() {
        violation(&format!("{func} was given a NULL string"));
    }
    // SAFETY: non-NULL; the C contract is a NUL-terminated string valid for
    // the call.
    unsafe { CStr::from_ptr(p) }
}

pub(crate) fn dict<'a>(p: XPtr, func: &str) -> Option<&'a Dict> {
    if error_object(p).is_some() {
        return None;
    }
    match &obj(p, func).body {
        Body::Dict(d) => Some(d),
        _ => None,
    }
}

fn dict_get(p: XPtr, key: *const c_char, func: &str) -> Option<usize> {
    let key = cstr(key, func);
    let d = dict(p, func)?;
    lock(&d.entries)
        .iter()
        .find(|(k, _)| k.as_c_str() == key)
        .map(|(_, v)| *v)
}

/// Sets (retaining `value`) or, for NULL, removes a key; the previous value
/// is released.
pub(crate) fn dict_set(p: XPtr, key: &CStr, value: XPtr, func: &str) {
    let Some(d) = dict(p, func) else {
        violation(&format!(
            "{func} was given an object that is not a dictionary"
        ));
    };
    if !value.is_null() {
        retain(value);
    }
    let old = {
        let mut e = lock(&d.entries);
        let old = e
            .iter()
            .position(|(k, _)| k.as_c_str() == key)
            .map(|i| e.remove(i).1);
        if !value.is_null() {
            e.push((key.to_owned(), value as usize));
        }
        old
    };
    if let Some(old) = old {
        release(old as XPtr);
    }
}

// ----- Object protocol -----

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_retain(object: XPtr) -> XPtr {
    retain(object)
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_release(object: XPtr) {
    release(object)
}

pub(crate) fn type_of(p: XPtr) -> *const XpcTypeObject {
    if error_object(p).is_some() {
        return &raw const _xpc_type_error;
    }
    match &obj(p, "xpc_get_type").body {
        Body::Null => &raw const _xpc_type_null,
        Body::Bool(_) => &raw const _xpc_type_bool,
        Body::Int64(_) => &raw const _xpc_type_int64,
        Body::UInt64(_) => &raw const _xpc_type_uint64,
        Body::Double(_) => &raw const _xpc_type_double,
        Body::Str(_) => &raw const _xpc_type_string,
        Body::Array(_) => &raw const _xpc_type_array,
        Body::Dict(_) => &raw const _xpc_type_dictionary,
        Body::Conn(_) => &raw const _xpc_type_connection,
    }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_get_type(object: XPtr) -> *const XpcTypeObject {
    type_of(object)
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_type_get_name(kind: *const XpcTypeObject) -> *const c_char {
    if !is_type_object(kind) {
        violation("xpc_type_get_name was given something that is not an XPC type");
    }
    // SAFETY: one of our statics.
    unsafe { (*kind).name }
}

fn describe_value(p: XPtr, depth: usize) -> String {
    if let Some(e) = error_object(p) {
        // SAFETY: static string.
        let d = unsafe { CStr::from_ptr(e.description) };
        return format!("<error: {}>", d.to_string_lossy());
    }
    if depth > 8 {
        return "...".into();
    }
    match &obj(p, "xpc_copy_description").body {
        Body::Null => "<null>".into(),
        Body::Bool(b) => format!("<bool: {b}>"),
        Body::Int64(v) => format!("<int64: {v}>"),
        Body::UInt64(v) => format!("<uint64: {v}>"),
        Body::Double(v) => format!("<double: {v}>"),
        Body::Str(s) => format!("<string: {:?}>", s.to_string_lossy()),
        Body::Array(a) => {
            let items: Vec<String> = lock(a)
                .iter()
                .map(|v| describe_value(*v as XPtr, depth + 1))
                .collect();
            format!("<array: [{}]>", items.join(", "))
        }
        Body::Dict(d) => {
            let items: Vec<String> = lock(&d.entries)
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{:?}: {}",
                        k.to_string_lossy(),
                        describe_value(*v as XPtr, depth + 1)
                    )
                })
                .collect();
            format!("<dictionary: {{{}}}>", items.join(", "))
        }
        Body::Conn(c) => format!("<connection: {}>", c.describe()),
    }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_copy_description(object: XPtr) -> *mut c_char {
    let text = describe_value(object, 0).replace('\0', " ");
    let c = CString::new(text).unwrap_or_default();
    // SAFETY: a valid C string; strdup returns malloc'd memory the caller
    // frees with free(3), as xpc.h says of xpc_copy_description.
    unsafe { libc::strdup(c.as_ptr()) }
}

// ----- Scalars -----

#[unsafe(no_mangle)]
pub(crate) extern "C" fn xpc_null_create() -> XPtr {
    alloc(Body::Null)
}
#[unsafe(no_mangle)]
pub(crate) extern "C" fn xpc_bool_create(value: bool) -> XPtr {
    alloc(Body::Bool(value))
}
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_bool_get_value(x: XPtr) -> bool {
    matches!(obj(x, "xpc_bool_get_value").body, Body::Bool(true))
}
#[unsafe(no_mangle)]
pub(crate) extern "C" fn xpc_int64_create(value: i64) -> XPtr {
    alloc(Body::Int64(value))
}
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_int64_get_value(x: XPtr) -> i64 {
    match obj(x, "xpc_int64_get_value").body {
        Body::Int64(v) => v,
        _ => 0,
    }
}
#[unsafe(no_mangle)]
pub(crate) extern "C" fn xpc_uint64_create(value: u64) -> XPtr {
    alloc(Body::UInt64(value))
}
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_uint64_get_value(x: XPtr) -> u64 {
    match obj(x, "xpc_uint64_get_value").body {
        Body::UInt64(v) => v,
        _ => 0,
    }
}
#[unsafe(no_mangle)]
pub(crate) extern "C" fn xpc_double_create(value: f64) -> XPtr {
    alloc(Body::Double(value))
}
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_double_get_value(x: XPtr) -> f64 {
    match obj(x, "xpc_double_get_value").body {
        Body::Double(v) => v,
        _ => f64::NAN,
    }
}
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_string_create(string: *const c_char) -> XPtr {
    alloc(Body::Str(cstr(string, "xpc_string_create").to_owned()))
}
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_string_get_length(x: XPtr) -> usize {
    match &obj(x, "xpc_string_get_length").body {
        Body::Str(s) => s.as_bytes().len(),
        _ => 0,
    }
}
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_string_get_string_ptr(x: XPtr) -> *const c_char {
    match &obj(x, "xpc_string_get_string_ptr").body {
        Body::Str(s) => s.as_ptr(),
        _ => std::ptr::null(),
    }
}

// ----- Arrays -----

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_array_create(objects: *const XPtr, count: usize) -> XPtr {
    let mut items = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: the caller passes an array of `count` objects (xpc.h), so
        // `objects + i` stays inside it.
        let p = unsafe { objects.add(i) };
        // SAFETY: `p` points to one of the caller's objects, readable.
        let v = unsafe { p.read() };
        items.push(retain(v) as usize);
    }
    alloc(Body::Array(Mutex::new(items)))
}
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_array_append_value(xarray: XPtr, value: XPtr) {
    let Body::Array(a) = &obj(xarray, "xpc_array_append_value").body else {
        violation("xpc_array_append_value was given an object that is not an array");
    };
    retain(value);
    lock(a).push(value as usize);
}
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_array_get_count(xarray: XPtr) -> usize {
    match &obj(xarray, "xpc_array_get_count").body {
        Body::Array(a) => lock(a).len(),
        _ => 0,
    }
}
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_array_get_value(xarray: XPtr, index: usize) -> XPtr {
    let Body::Array(a) = &obj(xarray, "xpc_array_get_value").body else {
        violation("xpc_array_get_value was given an object that is not an array");
    };
    match lock(a).get(index) {
        Some(v) => *v as XPtr,
        None => violation(&format!(
            "xpc_array_get_value index {index} is out of range (xpc.h: the index must lie within \
             the array)"
        )),
    }
}

// ----- Dictionaries -----

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_create(
    keys: *const *const c_char,
    values: *const XPtr,
    count: usize,
) -> XPtr {
    if faults::hit(Point::DictionaryCreate) == Some(Action::Null) {
        return std::ptr::null_mut();
    }
    let d = alloc(Body::Dict(Dict::default()));
    for i in 0..count {
        // SAFETY: the caller passes an array of `count` keys (xpc.h), so
        // `keys + i` stays inside it.
        let kp = unsafe { keys.add(i) };
        // SAFETY: likewise an array of `count` values.
        let vp = unsafe { values.add(i) };
        // SAFETY: `kp` points to one of the caller's keys, readable.
        let k = unsafe { kp.read() };
        // SAFETY: `vp` points to one of the caller's values, readable.
        let v = unsafe { vp.read() };
        dict_set(
            d,
            cstr(k, "xpc_dictionary_create"),
            v,
            "xpc_dictionary_create",
        );
    }
    d
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_create_reply(original: XPtr) -> XPtr {
    let Some(d) = dict(original, "xpc_dictionary_create_reply") else {
        return std::ptr::null_mut();
    };
    if faults::hit(Point::DictionaryCreateReply) == Some(Action::Null) {
        return std::ptr::null_mut();
    }
    let Some(id) = lock(&d.reply_id).take() else {
        return std::ptr::null_mut();
    };
    retain(d.remote as XPtr);
    alloc(Body::Dict(Dict::new(0, None, Some((d.remote, id)))))
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_set_value(
    xdict: XPtr,
    key: *const c_char,
    value: XPtr,
) {
    dict_set(
        xdict,
        cstr(key, "xpc_dictionary_set_value"),
        value,
        "xpc_dictionary_set_value",
    );
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_get_value(xdict: XPtr, key: *const c_char) -> XPtr {
    dict_get(xdict, key, "xpc_dictionary_get_value").map_or(std::ptr::null_mut(), |v| v as XPtr)
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_get_count(xdict: XPtr) -> usize {
    dict(xdict, "xpc_dictionary_get_count").map_or(0, |d| lock(&d.entries).len())
}

/// C99 `bool` as a block return value (objc2 encodes it; Rust `bool`
/// has no block encoding of its own).
#[repr(transparent)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct CBool(bool);

// SAFETY: repr(transparent) over bool, which has the layout of C99 _Bool
// ("B" encoding).
unsafe impl objc2::encode::Encode for CBool {
    const ENCODING: objc2::encode::Encoding = objc2::encode::Encoding::Bool;
}

type Applier = Block<dyn Fn(*const c_char, XPtr) -> CBool>;

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_apply(xdict: XPtr, applier: &Applier) -> bool {
    let Some(d) = dict(xdict, "xpc_dictionary_apply") else {
        return true;
    };
    // Snapshot (retained) and shuffle: xpc.h promises no order, so code
    // that depends on one fails here.
    let mut items: Vec<(CString, usize)> = lock(&d.entries)
        .iter()
        .map(|(k, v)| (k.clone(), retain(*v as XPtr) as usize))
        .collect();
    fastrand::shuffle(&mut items);
    let mut all = true;
    for (k, v) in &items {
        if all && !applier.call((k.as_ptr(), *v as XPtr)).0 {
            all = false;
        }
    }
    for (_, v) in items {
        release(v as XPtr);
    }
    all
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_get_remote_connection(xdict: XPtr) -> XPtr {
    dict(xdict, "xpc_dictionary_get_remote_connection")
        .map_or(std::ptr::null_mut(), |d| d.remote as XPtr)
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_set_bool(
    xdict: XPtr,
    key: *const c_char,
    value: bool,
) {
    let v = alloc(Body::Bool(value));
    dict_set(
        xdict,
        cstr(key, "xpc_dictionary_set_bool"),
        v,
        "xpc_dictionary_set_bool",
    );
    release(v);
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_set_int64(
    xdict: XPtr,
    key: *const c_char,
    value: i64,
) {
    let v = alloc(Body::Int64(value));
    dict_set(
        xdict,
        cstr(key, "xpc_dictionary_set_int64"),
        v,
        "xpc_dictionary_set_int64",
    );
    release(v);
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_set_string(
    xdict: XPtr,
    key: *const c_char,
    string: *const c_char,
) {
    let v = alloc(Body::Str(
        cstr(string, "xpc_dictionary_set_string").to_owned(),
    ));
    dict_set(
        xdict,
        cstr(key, "xpc_dictionary_set_string"),
        v,
        "xpc_dictionary_set_string",
    );
    release(v);
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_get_string(
    xdict: XPtr,
    key: *const c_char,
) -> *const c_char {
    if let Some(e) = error_object(xdict) {
        let k = cstr(key, "xpc_dictionary_get_string");
        // SAFETY: the static's value is a NUL-terminated string.
        let desc_key = unsafe { CStr::from_ptr(_xpc_error_key_description.0) };
        return if k == desc_key {
            e.description
        } else {
            std::ptr::null()
        };
    }
    match dict_get(xdict, key, "xpc_dictionary_get_string") {
        Some(v) => match &obj(v as XPtr, "xpc_dictionary_get_string").body {
            Body::Str(s) => s.as_ptr(),
            _ => std::ptr::null(),
        },
        None => std::ptr::null(),
    }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn xpc_dictionary_get_int64(xdict: XPtr, key: *const c_char) -> i64 {
    match dict_get(xdict, key, "xpc_dictionary_get_int64") {
        Some(v) => match obj(v as XPtr, "xpc_dictionary_get_int64").body {
            Body::Int64(i) => i,
            _ => 0,
        },
        None => 0,
    }
}

// ----- Transactions -----

static TRANSACTIONS: AtomicI64 = AtomicI64::new(0);

pub(crate) fn open_transactions() -> i64 {
    TRANSACTIONS.load(Ordering::Relaxed)
}

#[unsafe(no_mangle)]
pub(crate) extern "C" fn xpc_transaction_begin() {
    TRANSACTIONS.fetch_add(1, Ordering::Relaxed);
}

#[unsafe(no_mangle)]
pub(crate) extern "C" fn xpc_transaction_end() {
    if TRANSACTIONS.fetch_sub(1, Ordering::Relaxed) <= 0 {
        violation(
            "xpc_transaction_end without a matching xpc_transaction_begin (xpc.h: calls must be balanced)",
        );
    }
}

/// For the leak report.
///
/// # Safety
///
/// `addr` is a registered XPC object.
pub(crate) unsafe fn describe(addr: usize) -> Live {
    // SAFETY: per the caller.
    let o = unsafe { &*(addr as *const XObj) };
    match &o.body {
        Body::Conn(c) => c.live(o.rc.load(Ordering::Relaxed)),
        _ => {
            let what = match &o.body {
                Body::Str(s) => format!("XPC string {:?}", s.to_string_lossy()),
                Body::Dict(d) => format!(
                    "XPC dictionary with keys {:?}",
                    d.entries
                        .try_lock()
                        .map(|e| e
                            .iter()
                            .map(|(k, _)| k.to_string_lossy().into_owned())
                            .collect::<Vec<_>>())
                        .unwrap_or_default()
                ),
                Body::Array(_) => "XPC array".into(),
                Body::Null => "XPC null".into(),
                Body::Bool(_) => "XPC bool".into(),
                Body::Int64(v) => format!("XPC int64 {v}"),
                Body::UInt64(v) => format!("XPC uint64 {v}"),
                Body::Double(v) => format!("XPC double {v}"),
                Body::Conn(_) => String::new(),
            };
            Live {
                what: format!("{what} (refcount {})", o.rc.load(Ordering::Relaxed)),
                in_use: false,
                targets: None,
            }
        }
    }
}
