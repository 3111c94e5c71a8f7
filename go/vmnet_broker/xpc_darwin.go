// SPDX-License-Identifier: Apache-2.0

//go:build cgo

package vmnet_broker

/*
#include <stdlib.h>
#include "xpc_shim.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// platformHint is added to socket connection errors; nothing to add here.
const platformHint = ""

// defaultTransport uses the broker's XPC service, or the development socket
// when VMNET_BROKER_SOCKET is set.
func defaultTransport() (transport, error) {
	if os.Getenv(SocketEnv) != "" {
		return dialSocket(DefaultSocketPath())
	}
	return processTransport()
}

// processTransport is the connection AcquireNetwork uses: always the XPC
// service, as in the original package (VMNET_BROKER_SOCKET is ignored).
func processTransport() (transport, error) {
	conn := C.vbgo_connect()
	if conn == nil {
		return nil, ErrXPCFailure
	}
	return &xpcTransport{conn: conn}, nil
}

// xpcTransport is a connection to com.github.nirs.vmnet-broker. libxpc
// connections may be used from several threads; the lock only keeps close
// from releasing the connection under a request in flight.
type xpcTransport struct {
	mu   sync.RWMutex
	conn unsafe.Pointer // nil once closed
}

// errClosedXPC is returned by a closed client.
var errClosedXPC = &TransportError{Status: ErrXPCFailure, Err: errClosed}

// cName converts a network name for C. A name with a NUL byte would be cut
// short by C, so it is refused here, as the broker would refuse it.
func cName(name string) (*C.char, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return nil, ErrInvalidRequest
	}
	return C.CString(name), nil
}

func (t *xpcTransport) acquire(name string) (*Serialization, error) {
	cname, err := cName(name)
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(cname))

	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.conn == nil {
		return nil, errClosedXPC
	}
	var network unsafe.Pointer
	var info C.vbgo_network_info
	status := C.vbgo_acquire(t.conn, cname, &network, &info)
	if status != 0 {
		return nil, statusFromCode(int64(status))
	}
	s := &Serialization{ptr: network}
	runtime.AddCleanup(s, func(p unsafe.Pointer) { C.vbgo_object_release(p) }, network)
	if info.valid != 0 {
		s.info, s.hasInfo = makeNetworkInfo(
			C.GoString(&info.mode[0]),
			C.GoString(&info.subnet[0]),
			C.GoString(&info.mask[0]),
			C.GoString(&info.ipv6_prefix[0]),
			int64(info.ipv6_prefix_length),
		)
	}
	return s, nil
}

func (t *xpcTransport) release(name string) error {
	cname, err := cName(name)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cname))

	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.conn == nil {
		return errClosedXPC
	}
	if status := C.vbgo_release(t.conn, cname); status != 0 {
		return statusFromCode(int64(status))
	}
	return nil
}

func (t *xpcTransport) status() (*StatusReport, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.conn == nil {
		return nil, errClosedXPC
	}
	var report unsafe.Pointer
	if status := C.vbgo_status(t.conn, &report); status != 0 {
		return nil, statusFromCode(int64(status))
	}
	defer C.vbgo_object_release(report)

	// Convert the dictionary to JSON and decode that, so that both
	// transports share one set of field rules.
	data, err := json.Marshal(xpcToGo(report, 0))
	if err != nil {
		return nil, &TransportError{Status: ErrInvalidReply, Err: err}
	}
	var r StatusReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, &TransportError{Status: ErrInvalidReply, Err: fmt.Errorf("cannot read the status report: %w", err)}
	}
	return &r, nil
}

// xpcToGo converts a borrowed XPC object to plain Go values. Types a status
// report never contains become nil; so does anything nested absurdly deep.
func xpcToGo(obj unsafe.Pointer, depth int) any {
	if depth > 32 {
		return nil
	}
	switch C.vbgo_kind(obj) {
	case C.VBGO_KIND_DICTIONARY:
		var count C.size_t
		keys := C.vbgo_dictionary_copy_keys(obj, &count)
		if keys == nil {
			return nil
		}
		defer C.vbgo_free_keys(keys, count)
		m := make(map[string]any, int(count))
		for _, key := range unsafe.Slice(keys, int(count)) {
			m[C.GoString(key)] = xpcToGo(C.vbgo_dictionary_get(obj, key), depth+1)
		}
		return m
	case C.VBGO_KIND_ARRAY:
		n := int(C.vbgo_array_count(obj))
		a := make([]any, n)
		for i := range a {
			a[i] = xpcToGo(C.vbgo_array_get(obj, C.size_t(i)), depth+1)
		}
		return a
	case C.VBGO_KIND_STRING:
		return C.GoString(C.vbgo_string(obj))
	case C.VBGO_KIND_INT64:
		return int64(C.vbgo_int64(obj))
	case C.VBGO_KIND_UINT64:
		return uint64(C.vbgo_uint64(obj))
	case C.VBGO_KIND_DOUBLE:
		return float64(C.vbgo_double(obj))
	case C.VBGO_KIND_BOOL:
		return C.vbgo_bool(obj) != 0
	default:
		return nil
	}
}

// isLost is always false: libxpc re-establishes an interrupted connection
// by itself on the next request.
func (t *xpcTransport) isLost() bool { return false }

func (t *xpcTransport) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		C.vbgo_disconnect(t.conn)
		t.conn = nil
	}
	return nil
}
