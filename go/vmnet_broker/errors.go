// SPDX-License-Identifier: Apache-2.0

package vmnet_broker

import (
	"errors"
	"fmt"
	"math"
)

// Error is a broker status code (vmnet_broker_return_t in the C API).
//
// As in the original package, whose Error is C.vmnet_broker_return_t (an
// unsigned 32-bit C enum), the underlying type is uint32, so conversions in
// existing code keep their meaning. The codes 1 to 7 are fixed by the
// original C implementation. A code this package does not know is kept as
// received (a newer broker may send one); a code that does not fit a uint32
// cannot be kept and is reported as ErrInvalidReply.
//
// Functions of this package return either a bare Error or, on the socket
// transport, a *TransportError that wraps one together with its cause. Test
// for a status with errors.Is(err, ErrNotFound) or errors.As(err, &status);
// both work for either form.
type Error uint32

// The status codes. 0 is success and is never returned as an error.
const (
	// ErrXPCFailure: the client could not talk to the broker (not running,
	// connection lost). Produced by the client.
	ErrXPCFailure Error = 1
	// ErrInvalidReply: the broker's reply was not understood. Produced by
	// the client.
	ErrInvalidReply Error = 2
	// ErrNotAllowed: the caller may not use this network.
	ErrNotAllowed Error = 3
	// ErrInvalidRequest: the request was malformed (no network name, an
	// unknown command).
	ErrInvalidRequest Error = 4
	// ErrNotFound: no network of that name is configured, whatever the form
	// of the name, or, for Release, this client does not hold it.
	ErrNotFound Error = 5
	// ErrCreateFailure: vmnet could not create the network.
	ErrCreateFailure Error = 6
	// ErrInternalError: any other failure in the broker, including holding
	// more networks than the broker allows one client (8).
	ErrInternalError Error = 7
)

// strerrorTexts are the texts of the original C client's
// vmnet_broker_strerror, which the original Error.Error() returns
// (testdata/protocol-vectors.json, "statuses", "strerror").
var strerrorTexts = map[Error]string{
	0:                 "Broker session started",
	ErrXPCFailure:     "Failed to send XPC message to broker",
	ErrInvalidReply:   "Broker returned invalid reply",
	ErrNotAllowed:     "You are not allowed to create a network",
	ErrInvalidRequest: "Invalid broker request",
	ErrNotFound:       "Network name not found",
	ErrCreateFailure:  "Failed to create network",
	ErrInternalError:  "Internal or unknown error",
}

// descriptions are this project's shorter texts, shared by its clients
// (testdata/protocol-vectors.json, "statuses", "description").
var descriptions = map[Error]string{
	0:                 "success",
	ErrXPCFailure:     "cannot communicate with the broker",
	ErrInvalidReply:   "invalid reply from the broker",
	ErrNotAllowed:     "not allowed to use this network",
	ErrInvalidRequest: "invalid request",
	ErrNotFound:       "network not found",
	ErrCreateFailure:  "failed to create the network",
	ErrInternalError:  "internal error in the broker",
}

// Known reports whether e is one of the codes 0 to 7.
func (e Error) Known() bool {
	_, ok := descriptions[e]
	return ok
}

// Description is a short text for the code, without the number: "network
// not found", or "unknown status" for a code this package does not know.
// (An addition of this package.)
func (e Error) Description() string {
	if d, ok := descriptions[e]; ok {
		return d
	}
	return "unknown status"
}

// Detail names the problem and the number: "vmnet-broker: network not found
// (status 5)" or "vmnet-broker: unknown status 999". (An addition of this
// package; Error returns the original text.)
func (e Error) Detail() string {
	if e.Known() {
		return fmt.Sprintf("vmnet-broker: %s (status %d)", e.Description(), uint32(e))
	}
	return fmt.Sprintf("vmnet-broker: unknown status %d", uint32(e))
}

// Error returns the original client's text for the code, byte for byte, as
// the original package does (it calls vmnet_broker_strerror): "Network name
// not found", or "(unknown status)" for a code this package does not know.
func (e Error) Error() string {
	if t, ok := strerrorTexts[e]; ok {
		return t
	}
	return "(unknown status)"
}

// statusFromCode turns a code received from the broker into an Error. A code
// that does not fit a uint32 cannot be passed on faithfully: it is an
// invalid reply, as in the C client.
func statusFromCode(code int64) Error {
	if code < 0 || code > math.MaxUint32 {
		return ErrInvalidReply
	}
	return Error(code)
}

// ErrConnectionLost is wrapped in the error of the request that finds the
// connection to the broker gone while the client was idle: the broker
// exited or was restarted, and dropped every network this client held. The
// error's status is ErrXPCFailure. Acquire the networks again; the next
// request connects again. (An addition of this package.)
var ErrConnectionLost = errors.New("the connection to the broker was lost (the broker exited or was restarted); its networks were released: acquire them again")

// TransportError is returned by the socket transport when the client could
// not talk to the broker (Status is ErrXPCFailure) or could not understand
// its answer (Status is ErrInvalidReply). It keeps the underlying cause and
// the socket path so that the message says what went wrong.
type TransportError struct {
	// Status is ErrXPCFailure or ErrInvalidReply.
	Status Error
	// Socket is the path of the broker's socket.
	Socket string
	// Err is the cause.
	Err error
	// Hint, when not empty, says what to do about it.
	Hint string
}

func (e *TransportError) Error() string {
	msg := e.Status.Detail()
	if e.Socket != "" {
		msg += ": socket " + e.Socket
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Unwrap returns the status and the cause, so that errors.Is and errors.As
// find either.
func (e *TransportError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Status}
	}
	return []error{e.Status, e.Err}
}

// statusOf returns the status carried by an error of this package: 0 for
// nil, the code for an Error or a *TransportError, and ErrInternalError for
// anything else.
func statusOf(err error) Error {
	if err == nil {
		return 0
	}
	var s Error
	if errors.As(err, &s) {
		return s
	}
	return ErrInternalError
}
