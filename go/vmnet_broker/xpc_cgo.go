// SPDX-License-Identifier: Apache-2.0

//go:build (darwin && cgo) || (linux && cgo && vmnet_broker_fake_xpc)

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
	"sync/atomic"
	"time"
	"unsafe"
)

// defaultTransport uses the broker's XPC service, or the development socket
// when VMNET_BROKER_SOCKET is set.
func defaultTransport() (transport, error) {
	if os.Getenv(SocketEnv) != "" {
		return dialSocket(DefaultSocketPath())
	}
	return dialXPC(false)
}

// processTransport is the connection AcquireNetwork uses: always the XPC
// service, as in the original package (VMNET_BROKER_SOCKET is ignored).
//
// Its errors are bare Error values, as the original's are, so that code
// comparing err == ErrXPCFailure keeps working.
func processTransport() (transport, error) {
	return dialXPC(true)
}

// dialXPC makes a connection to the broker's XPC service with the timeout
// of VMNET_BROKER_TIMEOUT (an invalid value wraps ErrInvalidRequest, and
// the message names it); bare: see xpcTransport.
func dialXPC(bare bool) (transport, error) {
	timeout, err := envTimeout()
	if err != nil {
		return nil, err
	}
	conn := C.vbgo_connect()
	if conn == nil {
		return nil, ErrXPCFailure
	}
	return &xpcTransport{conn: conn, bare: bare, timeout: timeout}, nil
}

// xpcTransport is a connection to com.github.nirs.vmnet-broker. libxpc
// connections may be used from several threads; the lock only keeps close
// from releasing the connection under a request in flight.
type xpcTransport struct {
	mu   sync.RWMutex
	conn unsafe.Pointer // nil once closed

	// How long one request may wait for its reply (Client.SetTimeout).
	// After a timeout the connection is cancelled and counts as dead.
	timeout time.Duration
	// dead: the connection was cancelled (a timeout), found invalid (no
	// such service) or served by another user. The next request replaces
	// it (renew), so that a broker installed or relaunched later is found.
	dead atomic.Bool
	// bare: report connection failures as the bare ErrXPCFailure (the
	// original API) rather than a *TransportError saying what happened.
	bare bool

	// What the broker holds for this connection, as far as we know. When
	// the connection is interrupted (the broker restarted), the broker has
	// dropped every hold: held moves to dropped, so that a later Release of
	// one of them reports the loss instead of a puzzling ErrNotFound, as
	// the Rust client does.
	holds   sync.Mutex
	seen    uint64 // interruptions accounted for
	held    map[string]bool
	dropped map[string]bool
}

// renew replaces a dead connection with a new one, as the Rust client
// does; the request that found it dead has reported that already.
func (t *xpcTransport) renew() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil || !t.dead.Load() {
		return
	}
	conn := C.vbgo_connect()
	if conn == nil {
		return // still dead: the request reports it
	}
	C.vbgo_disconnect(t.conn)
	t.conn = conn
	t.dead.Store(false)
	t.holds.Lock()
	t.seen = 0
	t.holds.Unlock()
}

// begin starts a request: it renews a dead connection, takes t.mu for
// reading (the caller unlocks it) and fails the request once with the
// loss when the connection's event handler saw an interruption since the
// last request: the broker went away while the client was idle, and every
// hold is gone.
func (t *xpcTransport) begin() error {
	t.renew()
	t.mu.RLock()
	if t.conn == nil {
		return errClosedXPC
	}
	if t.sync() {
		if t.bare {
			return ErrXPCFailure
		}
		return lostError()
	}
	return nil
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
	if t.dropped == nil {
		t.dropped = make(map[string]bool)
	}
	for name := range t.held {
		t.dropped[name] = true
	}
	t.held = nil
}

// markDead records that the connection is dead (the next request renews
// it) and that every hold made on it is gone.
func (t *xpcTransport) markDead() {
	t.dead.Store(true)
	t.holds.Lock()
	t.dropHolds()
	t.holds.Unlock()
}

// xpcStatus turns a status from the shim into an error.
func (t *xpcTransport) xpcStatus(status C.int64_t) error {
	switch status {
	case C.VBGO_CONNECTION_INTERRUPTED:
		// The broker went away with this request unanswered; the loss is
		// reported by this request, not again by the next.
		t.sync()
		if t.bare {
			return ErrXPCFailure
		}
		return &TransportError{
			Status: ErrXPCFailure,
			Err: fmt.Errorf("the broker %s closed the connection before replying: it exited or was restarted; look at its log",
				C.GoString(C.vbgo_service_name())),
			Hint: "networks acquired on this connection are released; acquire them again",
		}
	case C.VBGO_CONNECTION_INVALID:
		t.markDead()
		if t.bare {
			return ErrXPCFailure
		}
		return &TransportError{
			Status: ErrXPCFailure,
			Err:    errors.New("the broker's XPC service cannot be reached (the connection is invalid)"),
			Hint:   "is the broker installed (vmnet-broker install)? The next request tries again",
		}
	case C.VBGO_UNTRUSTED_SERVICE:
		uid := uint32(C.vbgo_server_euid(t.conn))
		C.vbgo_cancel(t.conn)
		t.markDead()
		if t.bare {
			return ErrXPCFailure
		}
		return &TransportError{
			Status: ErrXPCFailure,
			Err: fmt.Errorf("refusing the broker on the XPC service %s: it runs as uid %d, but only %s may serve it",
				C.GoString(C.vbgo_service_name()), uid, trustedServers(os.Geteuid())),
			Hint: "another user may have registered the service; its reply was discarded",
		}
	}
	return statusFromCode(int64(status))
}

// cancelGrace bounds the wait for a cancelled request to return. libxpc
// documents that cancelling ends a pending reply with
// XPC_ERROR_CONNECTION_INVALID; should it not come, the caller is not kept
// waiting for it.
const cancelGrace = 2 * time.Second

// shimResult is what one request of the shim returned: its status and the
// object (+1) it stored, if any.
type shimResult struct {
	status C.int64_t
	object unsafe.Pointer
}

// call runs one request of the shim, giving up after t.timeout. libxpc has
// no timeout for a synchronous request and a stopped broker never answers,
// so the request runs on another goroutine; when no reply came in time the
// connection is cancelled, which ends the wait (the pending reply becomes
// XPC_ERROR_CONNECTION_INVALID), the connection counts as dead and every
// hold as lost. The wait for the cancelled request is bounded too
// (cancelGrace); a result that comes later is released by that goroutine.
// It returns the result and whether the time ran out. Call with t.mu held
// for reading.
func (t *xpcTransport) call(request func(out *unsafe.Pointer) C.int64_t) (shimResult, bool) {
	done := make(chan shimResult, 1)
	abandoned := make(chan struct{})
	go func() {
		var object unsafe.Pointer
		r := shimResult{status: request(&object), object: object}
		select {
		case done <- r:
		case <-abandoned:
			if r.object != nil {
				C.vbgo_object_release(r.object)
			}
		}
	}()
	timer := time.NewTimer(t.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r, false
	case <-timer.C:
	}
	C.vbgo_cancel(t.conn)
	t.markDead()
	grace := time.NewTimer(cancelGrace)
	defer grace.Stop()
	select {
	case r := <-done:
		if r.object != nil {
			C.vbgo_object_release(r.object)
		}
	case <-grace.C:
		close(abandoned)
	}
	return shimResult{}, true
}

// callObject runs a request of the shim that returns an object (+1) in
// *out, bounded as call bounds it: a failed request is an error. Call with
// t.mu held for reading.
func (t *xpcTransport) callObject(request func(out *unsafe.Pointer) C.int64_t) (unsafe.Pointer, error) {
	r, late := t.call(request)
	if late {
		return nil, t.timeoutError()
	}
	if r.status != 0 {
		return nil, t.xpcStatus(r.status)
	}
	return r.object, nil
}

// timeoutError is the error of a request that got no reply in time.
func (t *xpcTransport) timeoutError() error {
	if t.bare {
		return ErrXPCFailure
	}
	return &TransportError{
		Status: ErrXPCFailure,
		Err:    fmt.Errorf("the broker did not answer in time (waiting for the reply over XPC; gave up after %v); it may be stopped or overloaded", t.timeout),
		Hint:   "the connection was cancelled and its networks are lost; the next request connects again",
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

	err = t.begin()
	defer t.mu.RUnlock()
	if err != nil {
		return nil, err
	}
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

	err = t.begin()
	defer t.mu.RUnlock()
	if err != nil {
		return err
	}
	t.holds.Lock()
	lost := t.dropped[name] && !t.held[name]
	t.holds.Unlock()
	if lost {
		return lostError()
	}
	r, late := t.call(func(*unsafe.Pointer) C.int64_t { return C.vbgo_release(t.conn, cname) })
	if late {
		return t.timeoutError()
	}
	if r.status != 0 {
		return t.xpcStatus(r.status)
	}
	t.holds.Lock()
	delete(t.held, name)
	t.holds.Unlock()
	return nil
}

func (t *xpcTransport) status() (*StatusReport, error) {
	err := t.begin()
	defer t.mu.RUnlock()
	if err != nil {
		return nil, err
	}
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

// isLost reports whether the connection is closed or dead (cancelled,
// invalid, untrusted), so that the process-wide client of AcquireNetwork
// starts afresh. An interruption does not count: libxpc re-establishes the
// connection by itself, and the next request reports the lost holds once
// (begin).
func (t *xpcTransport) isLost() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.conn == nil || t.dead.Load()
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
