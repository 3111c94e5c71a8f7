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
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// defaultTransport uses the broker's XPC service, or the development socket
// when VMNET_BROKER_SOCKET is set.
func defaultTransport() (transport, error) {
	if os.Getenv(SocketEnv) != "" {
		return dialSocket(DefaultSocketPath())
	}
	conn := C.vbgo_connect()
	if conn == nil {
		return nil, ErrXPCFailure
	}
	return &xpcTransport{conn: conn, timeout: DefaultTimeout}, nil
}

// processTransport is the connection AcquireNetwork uses: always the XPC
// service, as in the original package (VMNET_BROKER_SOCKET is ignored).
//
// Its errors are bare Error values, as the original's are, so that code
// comparing err == ErrXPCFailure keeps working.
func processTransport() (transport, error) {
	conn := C.vbgo_connect()
	if conn == nil {
		return nil, ErrXPCFailure
	}
	return &xpcTransport{conn: conn, bare: true, timeout: DefaultTimeout}, nil
}

// xpcTransport is a connection to com.github.nirs.vmnet-broker. libxpc
// connections may be used from several threads; the lock only keeps close
// from releasing the connection under a request in flight.
type xpcTransport struct {
	mu   sync.RWMutex
	conn unsafe.Pointer // nil once closed

	// How long one request may wait for its reply (Client.SetTimeout).
	// After a timeout the connection is cancelled: later requests fail.
	timeout time.Duration
	// bare: report connection failures as the bare ErrXPCFailure (the
	// original API) rather than a *TransportError saying what happened.
	bare bool

	// What the broker holds for this connection, as far as we know. When
	// the connection is interrupted (the broker restarted), the broker has
	// dropped every hold: held moves to dropped, so that a later Release of
	// one of them reports the loss instead of a puzzling ErrNotFound, as
	// the Rust client does.
	holds       sync.Mutex
	seen        uint64 // interruptions accounted for
	held        map[string]bool
	dropped     map[string]bool
	interrupted bool
}

func lostError() error {
	return &TransportError{
		Status: ErrXPCFailure,
		Err:    ErrConnectionLost,
		Hint:   "acquire the networks again",
	}
}

// sync accounts for interruptions seen by the connection's event handler.
// It reports whether there was one since the last call. Call with t.mu held.
func (t *xpcTransport) sync() bool {
	n := uint64(C.vbgo_interruptions(t.conn))
	t.holds.Lock()
	defer t.holds.Unlock()
	if n == t.seen {
		return false
	}
	t.seen = n
	t.dropHolds()
	return true
}

// dropHolds records that every hold is gone: the connection was
// interrupted or cancelled. Call with t.holds held.
func (t *xpcTransport) dropHolds() {
	t.interrupted = true
	if t.dropped == nil {
		t.dropped = make(map[string]bool)
	}
	for name := range t.held {
		t.dropped[name] = true
	}
	t.held = nil
}

// xpcStatus turns a status from the shim into an error.
func (t *xpcTransport) xpcStatus(status C.int64_t) error {
	switch status {
	case C.VBGO_CONNECTION_INTERRUPTED:
		t.sync()
		if t.bare {
			return ErrXPCFailure
		}
		return lostError()
	case C.VBGO_CONNECTION_INVALID:
		if t.bare {
			return ErrXPCFailure
		}
		return &TransportError{
			Status: ErrXPCFailure,
			Err:    errors.New("the broker's XPC service cannot be reached"),
			Hint:   "is the broker installed (vmnet-broker install)?",
		}
	}
	return statusFromCode(int64(status))
}

// call runs one request of the shim, giving up after t.timeout. libxpc has
// no timeout for a synchronous request and a stopped broker never answers,
// so the request runs on another goroutine; when no reply came in time the
// connection is cancelled, which ends the wait (the pending reply becomes
// XPC_ERROR_CONNECTION_INVALID), and every hold counts as lost. It returns
// the shim's status and whether the time ran out. Call with t.mu held for
// reading.
func (t *xpcTransport) call(request func() C.int64_t) (C.int64_t, bool) {
	done := make(chan C.int64_t, 1)
	go func() { done <- request() }()
	timer := time.NewTimer(t.timeout)
	defer timer.Stop()
	select {
	case status := <-done:
		return status, false
	case <-timer.C:
	}
	C.vbgo_cancel(t.conn)
	status := <-done
	t.holds.Lock()
	t.dropHolds()
	t.holds.Unlock()
	return status, true
}

// callObject runs a request of the shim that returns an object (+1) in
// *out, bounded as call bounds it: an object that arrives too late is
// released, and a failed request is an error. Call with t.mu held for
// reading.
func (t *xpcTransport) callObject(request func(out *unsafe.Pointer) C.int64_t) (unsafe.Pointer, error) {
	var object unsafe.Pointer
	status, late := t.call(func() C.int64_t { return request(&object) })
	if late {
		if status == 0 && object != nil {
			C.vbgo_object_release(object)
		}
		return nil, t.timeoutError()
	}
	if status != 0 {
		return nil, t.xpcStatus(status)
	}
	return object, nil
}

// timeoutError is the error of a request that got no reply in time.
func (t *xpcTransport) timeoutError() error {
	if t.bare {
		return ErrXPCFailure
	}
	return &TransportError{
		Status: ErrXPCFailure,
		Err:    fmt.Errorf("the broker did not answer within %v; it may be stopped or overloaded", t.timeout),
		Hint:   "the connection was cancelled and its networks are lost: connect again",
	}
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
	t.sync()
	var info C.vbgo_network_info
	network, err := t.callObject(func(out *unsafe.Pointer) C.int64_t {
		return C.vbgo_acquire(t.conn, cname, out, &info)
	})
	if err != nil {
		return nil, err
	}
	if t.sync() && !t.bare {
		// Interrupted while the reply was on its way: whether this hold
		// survived cannot be known; report the loss. (The original API
		// takes the reply as it is, as the original does.)
		C.vbgo_object_release(network)
		return nil, lostError()
	}
	t.holds.Lock()
	if t.held == nil {
		t.held = make(map[string]bool)
	}
	t.held[name] = true
	delete(t.dropped, name)
	t.holds.Unlock()
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
	t.sync()
	t.holds.Lock()
	lost := t.dropped[name] && !t.held[name]
	t.holds.Unlock()
	if lost {
		return lostError()
	}
	status, late := t.call(func() C.int64_t { return C.vbgo_release(t.conn, cname) })
	if late {
		return t.timeoutError()
	}
	if status != 0 {
		return t.xpcStatus(status)
	}
	t.holds.Lock()
	delete(t.held, name)
	t.holds.Unlock()
	return nil
}

func (t *xpcTransport) status() (*StatusReport, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.conn == nil {
		return nil, errClosedXPC
	}
	t.sync()
	report, err := t.callObject(func(out *unsafe.Pointer) C.int64_t {
		return C.vbgo_status(t.conn, out)
	})
	if err != nil {
		return nil, err
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

// isLost reports whether the connection was ever interrupted: libxpc
// re-establishes it by itself, but the broker has dropped its holds, so the
// process-wide client of AcquireNetwork starts afresh.
func (t *xpcTransport) isLost() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.conn == nil {
		return true
	}
	t.sync()
	t.holds.Lock()
	defer t.holds.Unlock()
	return t.interrupted
}

func (t *xpcTransport) setTimeout(timeout time.Duration) {
	t.mu.Lock()
	t.timeout = timeout
	t.mu.Unlock()
}

func (t *xpcTransport) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		C.vbgo_disconnect(t.conn)
		t.conn = nil
	}
	return nil
}
