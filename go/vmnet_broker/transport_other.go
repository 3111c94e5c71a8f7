// SPDX-License-Identifier: Apache-2.0

//go:build !darwin && !(linux && cgo && vmnet_broker_fake_xpc)

package vmnet_broker

// defaultTransport connects to the development socket: off macOS there is
// no XPC.
func defaultTransport() (transport, error) {
	return dialSocket(DefaultSocketPath())
}

// processTransport is the connection AcquireNetwork uses: the development
// socket off macOS.
func processTransport() (transport, error) {
	return defaultTransport()
}
