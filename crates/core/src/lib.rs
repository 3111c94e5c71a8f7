//! The portable core of vmnet-broker.
//!
//! Everything the broker decides lives here, free of sockets, threads,
//! clocks, XPC and vmnet, so that it builds and is tested the same way on
//! every platform:
//!
//! - [`config`]: network options, their parsing and validation, the
//!   built-in networks and the [`ConfigSource`](config::ConfigSource) trait
//!   (reading the drop-in directory is the daemon's job: the core does no
//!   I/O);
//! - [`backend`]: the [`Backend`](backend::Backend) trait through which
//!   networks are created and destroyed, and a simulated vmnet;
//! - [`hostnet`]: the host's networks (through the
//!   [`HostNetworks`](hostnet::HostNetworks) trait) and the check that a
//!   static subnet collides with none of them;
//! - [`retry`]: the backoff between attempts to create a persistent
//!   network;
//! - [`state`]: the subnets remembered per network and their file format
//!   (the daemon reads and writes the file);
//! - [`broker`]: the [`Broker`](broker::Broker) state machine, which takes
//!   events and the current time and returns replies, events for the driver
//!   and its next deadline.
//!
//! Platform drivers (the Unix-socket transport, XPC on macOS) feed the
//! broker; see the `vmnet-broker` crate.
//!
//! The `test-util` feature adds the hooks that tests, fuzz targets and
//! benchmarks need and production must not call:
//! `Broker::check_invariants`, `Broker::backend_mut`,
//! `SimBackend::fail_next`, and the `testing` module with the one
//! fake-clock `testing::Harness` they all use.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod backend;
pub mod broker;
pub mod config;
pub mod hostnet;
pub mod retry;
pub mod state;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use vmnet_broker_proto as proto;
