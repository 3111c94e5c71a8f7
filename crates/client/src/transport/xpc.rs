//! The XPC transport (macOS).
//!
//! Placeholder until the safe XPC layer in `vmnet-broker-macos` exists:
//! connecting fails with [`Error::Xpc`], which maps to
//! [`Status::XPC_FAILURE`](crate::Status::XPC_FAILURE).

use vmnet_broker_proto::StatusReport;

use crate::Error;
use crate::decode::Acquired;

/// An XPC object owned by the client (placeholder).
#[derive(Debug)]
pub struct Object {
    _private: (),
}

impl Object {
    /// The object as a borrowed `xpc_object_t`, valid while `self` lives.
    pub fn as_ptr(&self) -> *mut std::ffi::c_void {
        std::ptr::null_mut()
    }

    /// The object as a new reference (`xpc_retain`ed); the caller must
    /// `xpc_release` it.
    pub fn retained_ptr(&self) -> *mut std::ffi::c_void {
        std::ptr::null_mut()
    }
}

/// A connection to the broker's Mach service.
#[derive(Debug)]
pub(crate) struct XpcTransport {
    service: String,
}

fn not_built() -> Error {
    Error::Xpc("XPC transport not built yet".into())
}

impl XpcTransport {
    pub(crate) fn connect(_service: &str) -> Result<Self, Error> {
        Err(not_built())
    }

    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    pub(crate) fn epoch(&self) -> u64 {
        0
    }

    pub(crate) fn acquire(&mut self, _network: &str) -> Result<Acquired<Object>, Error> {
        Err(not_built())
    }

    pub(crate) fn release(&mut self, _network: &str) -> Result<(), Error> {
        Err(not_built())
    }

    pub(crate) fn status(&mut self) -> Result<StatusReport, Error> {
        Err(not_built())
    }
}
