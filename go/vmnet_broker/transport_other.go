// SPDX-License-Identifier: Apache-2.0

//go:build !darwin || !cgo

package vmnet_broker

import "runtime"

// platformHint is added to connection errors.
var platformHint = func() string {
	if runtime.GOOS == "darwin" {
		return "this program was built without cgo, so it cannot use the broker's XPC service; " +
			"rebuild it with CGO_ENABLED=1"
	}
	return ""
}()

// defaultTransport connects to the development socket: without cgo, or off
// macOS, there is no XPC.
func defaultTransport() (transport, error) {
	return dialSocket(DefaultSocketPath())
}
