//! C ABI of the vmnet-broker client: `libvmnet_broker` and
//! `include/vmnet-broker.h`.
//!
//! Two layers, both built on [`vmnet_broker_client`]:
//!
//! - the original C client's API, kept source and binary compatible on
//!   Apple systems: `vmnet_broker_acquire_network` (returns the retained XPC
//!   serialization; one process-wide connection, never closed) and
//!   `vmnet_broker_strerror`;
//! - a portable API that works on Linux too: opaque network handles
//!   (`vmnet_broker_acquire`, accessors, `vmnet_broker_release`), explicit
//!   clients (`vmnet_broker_client_connect*`) and the broker status as JSON.
//!
//! Conventions, which the header documents per function:
//!
//! - every function is safe to call with NULL pointers: a NULL required
//!   argument gives `VMNET_BROKER_INVALID_REQUEST` (or NULL / -1 from an
//!   accessor), never a crash;
//! - status output parameters are optional and always written when given;
//!   other outputs are written only on success;
//! - strings returned by accessors belong to the handle and live as long as
//!   it does; strings returned through `char **` are freed with
//!   `vmnet_broker_string_free`; `vmnet_broker_strerror` returns static
//!   strings;
//! - no panic crosses the C boundary: a panic becomes
//!   `VMNET_BROKER_INTERNAL_ERROR` or a NULL result.

#![allow(non_camel_case_types)]
#![warn(missing_docs)]
// One unsafe operation per block, so each SAFETY comment covers exactly one.
#![deny(clippy::multiple_unsafe_ops_per_block)]

#[cfg(any(target_os = "macos", feature = "fake-apple"))]
mod apple;
mod client;
mod message;
mod network;
mod panic;
mod status;

#[cfg(any(target_os = "macos", feature = "fake-apple"))]
pub use apple::{vmnet_broker_acquire_network, vmnet_broker_network_serialization};
pub use client::{
    vmnet_broker_client, vmnet_broker_client_acquire, vmnet_broker_client_connect,
    vmnet_broker_client_connect_socket, vmnet_broker_client_free, vmnet_broker_client_set_timeout,
    vmnet_broker_client_status_json, vmnet_broker_string_free,
};
pub use message::vmnet_broker_last_error;
pub use network::{
    vmnet_broker_acquire, vmnet_broker_network, vmnet_broker_network_ipv6_prefix,
    vmnet_broker_network_ipv6_prefix_length, vmnet_broker_network_mask, vmnet_broker_network_mode,
    vmnet_broker_network_name, vmnet_broker_network_serialization_json,
    vmnet_broker_network_subnet, vmnet_broker_release,
};
pub use status::{vmnet_broker_return_t, vmnet_broker_strerror};
