//! `CFRetain`/`CFRelease` over the vmnet fake's configuration and network
//! objects (the only Core Foundation objects the project touches).

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::vmnet::CfBody;
use super::{Family, Live, check, register, unregister};

pub(crate) struct CfObj {
    rc: AtomicUsize,
    pub(crate) body: CfBody,
}

pub(crate) fn alloc(body: CfBody) -> *mut c_void {
    let p = Box::into_raw(Box::new(CfObj {
        rc: AtomicUsize::new(1),
        body,
    }));
    register(p as usize, Family::Cf);
    p.cast()
}

pub(crate) fn get(p: *const c_void, func: &str) -> &'static CfObj {
    check(p as usize, Family::Cf, func);
    // SAFETY: checked live; the caller holds a reference.
    unsafe { &*p.cast::<CfObj>() }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn CFRetain(cf: *const c_void) -> *const c_void {
    get(cf, "CFRetain").rc.fetch_add(1, Ordering::Relaxed);
    cf
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn CFRelease(cf: *const c_void) {
    let o = get(cf, "CFRelease");
    if o.rc.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    unregister(cf as usize);
    // SAFETY: last reference, unregistered.
    drop(unsafe { Box::from_raw(cf.cast_mut().cast::<CfObj>()) });
}

/// For the leak report.
///
/// # Safety
///
/// `addr` is a registered CF object.
pub(crate) unsafe fn describe(addr: usize) -> Live {
    // SAFETY: per the caller.
    let o = unsafe { &*(addr as *const CfObj) };
    Live {
        what: format!(
            "{} (refcount {})",
            o.body.describe(),
            o.rc.load(Ordering::Relaxed)
        ),
        in_use: false,
        targets: None,
    }
}
