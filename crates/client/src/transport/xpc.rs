//! The XPC transport (macOS), over the safe XPC layer of
//! `vmnet-broker-macos`.
//!
//! Type-checked on Linux for the Apple targets; run on Linux against the
//! fakes of crates/fake-apple (docs/macos-fakes.md); not run on macOS by us.

use std::ffi::c_void;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use vmnet_broker_macos::xpc::{XpcClient, XpcDictionary, XpcError, XpcObject, XpcType, to_json};
use vmnet_broker_proto::{StatusReport, commands, keys};

use crate::Error;
use crate::decode::{self, Acquired, ReplyView};

/// A network's XPC serialization, owned by a [`crate::Network`].
///
/// The object is kept behind a lock so that a `Network` can be shared
/// between threads (`XpcObject` itself may be sent but not shared); every
/// access is a pointer read or an `xpc_retain`.
#[derive(Debug)]
pub struct Object {
    object: Mutex<XpcObject>,
}

impl Object {
    fn new(object: XpcObject) -> Self {
        Self {
            object: Mutex::new(object),
        }
    }

    /// A new reference to the object (`xpc_retain`); it stays valid after
    /// the `Network` is gone.
    pub fn retained(&self) -> XpcObject {
        self.object
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The object as a borrowed `xpc_object_t`, valid while the `Network`
    /// lives.
    pub fn as_ptr(&self) -> *mut c_void {
        self.object
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ptr()
    }

    /// The object as a new `xpc_object_t` reference that the caller must
    /// `xpc_release`.
    pub fn retained_ptr(&self) -> *mut c_void {
        self.retained().into_raw()
    }
}

impl ReplyView for XpcObject {
    type Value = Self;
    fn is_dictionary(&self) -> bool {
        self.kind() == XpcType::Dictionary
    }
    fn int(&self, key: &str) -> Option<i64> {
        self.get_i64(key)
    }
    fn value(&self, key: &str) -> Option<Self> {
        self.get(key)
    }
    fn json(&self, key: &str) -> Option<serde_json::Value> {
        to_json(&self.get(key)?).ok()
    }
}

/// A connection to the broker's Mach service.
///
/// The connection is made without the `PRIVILEGED` flag, as the original C
/// client does. libxpc re-establishes an interrupted connection by itself;
/// the broker has dropped its holds by then, so an interruption seen on a
/// reply bumps the epoch, and one seen by the connection's event handler
/// while the client was idle fails the next request once with
/// [`Error::Lost`]. An invalid connection (no such service), a timeout and
/// `XPC_ERROR_TERMINATION_IMMINENT` drop the connection; the next request
/// makes a new one, so that a broker installed or relaunched later is
/// found. A reply from a process that is neither root nor this user is
/// discarded ([`Error::UntrustedService`]); libxpc tells the peer's euid
/// only once a reply has arrived, so the request has reached it by then.
#[derive(Debug)]
pub(crate) struct XpcTransport {
    service: String,
    client: Option<XpcClient>,
    epoch: u64,
    /// How long one request may wait for its reply.
    timeout: Duration,
}

fn xpc_error(e: XpcError) -> Error {
    match e {
        XpcError::InteriorNul { .. } => Error::InvalidRequest(e.to_string()),
        other => Error::Xpc(other.to_string()),
    }
}

impl XpcTransport {
    pub(crate) fn connect(service: &str, timeout: Duration) -> Result<Self, Error> {
        let client = XpcClient::connect(service, false).map_err(xpc_error)?;
        Ok(Self {
            service: service.to_owned(),
            client: Some(client),
            epoch: 0,
            timeout,
        })
    }

    /// Changes how long each request may wait for its reply.
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn acquire(&mut self, network: &str) -> Result<Acquired<Object>, Error> {
        let reply = self.request(commands::ACQUIRE, Some(network))?;
        let Acquired {
            serialization,
            info,
        } = decode::acquire(&reply, network)?;
        Ok(Acquired {
            serialization: Object::new(serialization),
            info,
        })
    }

    pub(crate) fn release(&mut self, network: &str) -> Result<(), Error> {
        let reply = self.request(commands::RELEASE, Some(network))?;
        decode::release(&reply, network)
    }

    pub(crate) fn status(&mut self) -> Result<StatusReport, Error> {
        let reply = self.request(commands::STATUS, None)?;
        decode::status(&reply)
    }

    /// Sends `{command, network_name}` and waits for the reply.
    fn request(&mut self, command: &str, network: Option<&str>) -> Result<XpcObject, Error> {
        let mut message = XpcDictionary::new();
        message
            .set_string(keys::COMMAND, command)
            .map_err(xpc_error)?;
        if let Some(network) = network {
            message
                .set_string(keys::NETWORK_NAME, network)
                .map_err(xpc_error)?;
        }
        if self
            .client
            .as_ref()
            .is_some_and(XpcClient::take_interruption)
        {
            // The broker exited or was relaunched while nothing was asked
            // (libxpc delivered INTERRUPTED or TERMINATION_IMMINENT to the
            // connection's handler): every hold is gone. Say so once; the
            // next request goes to whichever broker serves by then.
            self.epoch += 1;
            self.client = None;
            return Err(Error::Lost);
        }
        let client = match &self.client {
            Some(client) => client,
            None => self
                .client
                .insert(XpcClient::connect(&self.service, false).map_err(xpc_error)?),
        };
        let result = client.request_within(&message, self.timeout);
        if result.is_err() {
            // An interruption that failed this request is reported by it,
            // not again by the next one.
            client.take_interruption();
        }
        match result {
            Ok(reply) => {
                let uid = client.server_euid();
                let own = crate::sys::effective_uid();
                if uid != 0 && uid != own {
                    // Someone else registered the service: drop what it
                    // said, and the connection with it.
                    self.epoch += 1;
                    self.client = None;
                    return Err(Error::UntrustedService {
                        service: self.service.clone(),
                        uid,
                        own,
                    });
                }
                Ok(reply)
            }
            Err(XpcError::Timeout { .. }) => {
                // The connection was cancelled, and the broker drops what
                // it held for it: the holds are gone, and the next request
                // makes a new connection.
                self.epoch += 1;
                self.client = None;
                Err(Error::Timeout {
                    what: "waiting for the reply over XPC",
                    after: self.timeout,
                })
            }
            Err(e @ XpcError::ConnectionInterrupted { .. }) => {
                self.epoch += 1;
                Err(xpc_error(e))
            }
            Err(
                e @ (XpcError::ConnectionInvalid { .. } | XpcError::TerminationImminent { .. }),
            ) => {
                self.epoch += 1;
                self.client = None;
                Err(xpc_error(e))
            }
            Err(e) => Err(xpc_error(e)),
        }
    }
}
