// SPDX-License-Identifier: Apache-2.0

package vmnet_broker

import "syscall"

// peerUID returns the effective user id of the process at the other end of
// the connected Unix socket fd (SO_PEERCRED).
func peerUID(fd int) (int, error) {
	cred, err := syscall.GetsockoptUcred(fd, syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	if err != nil {
		return -1, err
	}
	return int(cred.Uid), nil
}
