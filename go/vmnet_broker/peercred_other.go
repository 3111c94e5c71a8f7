// SPDX-License-Identifier: Apache-2.0

//go:build !linux && !(darwin && cgo)

package vmnet_broker

import "errors"

// peerUID cannot learn who serves the socket here (on macOS it needs cgo
// for getpeereid), so the connection is refused: the check fails closed.
func peerUID(fd int) (int, error) {
	return -1, errors.New("the server's credentials cannot be read on this platform or build (on macOS, build with CGO_ENABLED=1)")
}
