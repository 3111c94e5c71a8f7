// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package vmnet_broker

/*
#include <sys/types.h>
#include <unistd.h>
*/
import "C"

// peerUID returns the effective user id of the process at the other end of
// the connected Unix socket fd (getpeereid(3)).
func peerUID(fd int) (int, error) {
	var uid C.uid_t
	var gid C.gid_t
	if rc, err := C.getpeereid(C.int(fd), &uid, &gid); rc != 0 {
		return -1, err
	}
	return int(uid), nil
}
