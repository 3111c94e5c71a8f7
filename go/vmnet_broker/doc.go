// SPDX-License-Identifier: Apache-2.0

// Package vmnet_broker is a client for vmnet-broker, the macOS daemon that
// shares vmnet networks between virtual machine programs.
//
// AcquireNetwork keeps the API of the original vmnet_broker package: it asks
// the broker for a network by name over one process-wide connection and
// returns its serialization, to be passed to
// vmnet_network_create_with_serialization. Client adds explicit connection
// lifetime, Release and Status.
//
// Transports: on macOS the package talks XPC to the Mach service
// com.github.nirs.vmnet-broker through a small C file in this package
// (libxpc is part of libSystem; nothing else is needed), so it needs cgo
// there, as the original does: without cgo the build fails with a message
// saying so. Everywhere else, and on macOS through ConnectSocket (or Connect
// with VMNET_BROKER_SOCKET set), it speaks the broker's development
// transport: JSON lines over a Unix socket (see DefaultSocketPath). Both
// carry the same requests and replies.
//
// The package name keeps the underscore of the original package, so that
// code written for it compiles unchanged.
package vmnet_broker
