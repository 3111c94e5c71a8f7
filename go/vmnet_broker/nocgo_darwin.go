// SPDX-License-Identifier: Apache-2.0

//go:build !cgo

package vmnet_broker

// On macOS this package talks to the broker over XPC, through cgo. Built
// without cgo it could only use the development socket, which no installed
// broker listens on, and every call would fail at run time. The original
// package cannot be built without cgo either, so the build stops here, with
// this message in the compiler's "undefined:" error:
//
//	go build: enable cgo (CGO_ENABLED=1, with Xcode's command line tools)
//
// Programs that want the development socket on macOS build with cgo and
// call ConnectSocket.
var _ = vmnet_broker_on_macOS_needs_cgo__build_with_CGO_ENABLED_1

// The rest only keeps the compiler's output down to the message above.

func defaultTransport() (transport, error) { return nil, ErrXPCFailure }

func processTransport() (transport, error) { return nil, ErrXPCFailure }
