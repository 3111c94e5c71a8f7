// SPDX-License-Identifier: Apache-2.0

package vmnet_broker

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// SocketEnv names the environment variable that points clients at a
// broker's development socket.
const SocketEnv = "VMNET_BROKER_SOCKET"

// DefaultTimeout bounds connecting to the development socket and waiting
// for each reply, unless $VMNET_BROKER_TIMEOUT (TimeoutEnv),
// ConnectSocketTimeout or SetTimeout say otherwise. A stopped or stuck
// broker still accepts connections, so without it a request could wait
// forever.
const DefaultTimeout = 30 * time.Second

// maxReplyLine bounds one reply line from the broker. Status reports are the
// largest replies and stay far below it.
const maxReplyLine = 16 << 20

// DefaultSocketPath returns the development socket path every vmnet-broker
// client and the broker agree on, the first that applies:
// $VMNET_BROKER_SOCKET, $XDG_RUNTIME_DIR/vmnet-broker.sock, then
// /tmp/vmnet-broker-$UID.sock with the effective user id. Empty variables
// count as unset.
func DefaultSocketPath() string {
	if p := os.Getenv(SocketEnv); p != "" {
		return p
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "vmnet-broker.sock")
	}
	return "/tmp/vmnet-broker-" + strconv.Itoa(os.Geteuid()) + ".sock"
}

var errClosed = errors.New("the client is closed")

// socketTransport speaks the development transport: one JSON object per
// line in each direction, one reply per request, in order.
//
// After a failure the connection is dropped (a half-read reply cannot be
// resynchronised) and the next request opens a new one; the broker dropped
// the old connection's holds when it went away. A connection that has
// answered before and is found closed when the next request starts (the
// broker exited or was restarted while the client was idle) fails that
// request once with ErrConnectionLost.
type socketTransport struct {
	path string

	mu      sync.Mutex
	timeout time.Duration
	conn    net.Conn // nil between a failure and the next request
	r       *bufio.Reader
	closed  bool
	// answered: conn has answered a request, so finding it closed means
	// the broker went away since.
	answered bool
	// lost is the last failure, until a request succeeds again; the broker
	// has dropped the holds of the connection it broke.
	lost error
	// held: the networks acquired on conn; dropped: those of connections
	// since lost, so that releasing one reports the loss (ErrConnectionLost)
	// instead of the new connection's ErrNotFound, as the Rust client does.
	held, dropped map[string]bool
}

// dialSocket connects with the timeout of the environment (envTimeout).
func dialSocket(path string) (*socketTransport, error) {
	timeout, err := envTimeout()
	if err != nil {
		return nil, withSocketPath(err, path)
	}
	return dialSocketTimeout(path, timeout)
}

// withSocketPath fills in the socket path of a *TransportError.
func withSocketPath(err error, path string) error {
	var te *TransportError
	if errors.As(err, &te) && te.Socket == "" {
		te.Socket = path
	}
	return err
}

// ConnectSocketTimeout is ConnectSocket with another bound on connecting
// and on each request, from MinTimeout to MaxTimeout (otherwise the status
// is ErrInvalidRequest). A broker that does not answer in time fails the
// request with ErrXPCFailure.
func ConnectSocketTimeout(path string, timeout time.Duration) (*Client, error) {
	if path == "" {
		path = DefaultSocketPath()
	}
	if err := checkTimeout(timeout); err != nil {
		return nil, withSocketPath(err, path)
	}
	t, err := dialSocketTimeout(path, timeout)
	if err != nil {
		return nil, err
	}
	return &Client{t: t}, nil
}

// SetTimeout changes how long each later request of c may take, from
// sending it to the whole reply (over the development socket and over XPC;
// after an XPC timeout the connection is cancelled and its networks are
// lost). The value is brought within MinTimeout and MaxTimeout.
func (c *Client) SetTimeout(timeout time.Duration) {
	c.t.setTimeout(clampTimeout(timeout))
}

func (t *socketTransport) setTimeout(timeout time.Duration) {
	t.mu.Lock()
	t.timeout = timeout
	t.mu.Unlock()
}

func dialSocketTimeout(path string, timeout time.Duration) (*socketTransport, error) {
	conn, err := openSocket(path, timeout)
	if err != nil {
		return nil, err
	}
	return &socketTransport{path: path, conn: conn, r: bufio.NewReader(conn), timeout: timeout}, nil
}

// openSocket connects within timeout and checks who serves the socket.
func openSocket(path string, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	var conn net.Conn
	var err error
	for {
		d := net.Dialer{Deadline: deadline}
		conn, err = d.Dial("unix", path)
		// A listener whose backlog is full makes a non-blocking connect
		// fail with EAGAIN at once: wait for room, within the timeout.
		if err == nil || !errors.Is(err, syscall.EAGAIN) || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		var ne net.Error
		if errors.Is(err, syscall.EAGAIN) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, &TransportError{Status: ErrXPCFailure, Socket: path,
				Err:  fmt.Errorf("the broker did not answer in time (connecting; gave up after %v)", timeout),
				Hint: "it may be stopped or overloaded; wait longer with " + TimeoutEnv}
		}
		hint := `is the broker running? Start one with "vmnet-broker serve --socket PATH", or set ` +
			SocketEnv + " to the socket of a running broker"
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			hint = "this user may not open the socket; check its permissions"
		}
		return nil, &TransportError{Status: ErrXPCFailure, Socket: path,
			Err: fmt.Errorf("cannot connect to the broker: %w", err), Hint: hint}
	}
	if err := checkServer(conn); err != nil {
		conn.Close()
		return nil, &TransportError{Status: ErrXPCFailure, Socket: path, Err: err,
			Hint: "another user may have taken the socket path; use another one"}
	}
	return conn, nil
}

// idleOpen reports whether the idle connection is still open: nothing to
// read (no reply can be pending between requests), no end of stream, no
// error.
func (t *socketTransport) idleOpen() bool {
	if t.r.Buffered() > 0 {
		return false
	}
	uc, ok := t.conn.(*net.UnixConn)
	if !ok {
		return true
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	_ = raw.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR)
	})
	return open
}

// drop closes the connection after a failure; the next request opens a
// new one.
func (t *socketTransport) drop(cause error) {
	t.lost = cause
	if t.conn != nil {
		_ = t.conn.Close()
	}
	t.conn, t.r, t.answered = nil, nil, false
	if t.dropped == nil {
		t.dropped = make(map[string]bool)
	}
	for name := range t.held {
		t.dropped[name] = true
	}
	t.held = nil
}

// checkServer accepts the process serving conn only if it runs as root or
// as this process's effective user: anyone may bind a socket path in /tmp
// first, and must not be able to pose as the broker.
func checkServer(conn net.Conn) error {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return errors.New("not a Unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var uid int
	var credErr error
	if err := raw.Control(func(fd uintptr) { uid, credErr = peerUID(int(fd)) }); err != nil {
		return err
	}
	if credErr != nil {
		return fmt.Errorf("cannot check who serves the socket: %w", credErr)
	}
	if own := os.Geteuid(); uid != 0 && uid != own {
		return fmt.Errorf("the server runs as uid %d, but only %s may serve it", uid, trustedServers(own))
	}
	return nil
}

// trustedServers names who may serve the broker to a process of user own:
// root, and that user unless it is root.
func trustedServers(own int) string {
	if own == 0 {
		return "root (uid 0)"
	}
	return fmt.Sprintf("root (uid 0) or this user (uid %d)", own)
}

// roundTrip sends one request object and returns the reply line.
func (t *socketTransport) roundTrip(req map[string]string) ([]byte, error) {
	msg, err := json.Marshal(req)
	if err != nil {
		return nil, &TransportError{Status: ErrInternalError, Socket: t.path, Err: err}
	}
	return t.roundTripRaw(msg)
}

// roundTripRaw sends line (a newline is added) and returns the reply line
// without its newline.
func (t *socketTransport) roundTripRaw(line []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, &TransportError{Status: ErrXPCFailure, Socket: t.path, Err: errClosed}
	}
	if t.conn != nil && t.answered && !t.idleOpen() {
		// The broker closed the connection while nothing was asked: it
		// exited or was restarted, and every hold is gone. Say so once;
		// the next request connects again.
		t.drop(ErrConnectionLost)
		return nil, &TransportError{Status: ErrXPCFailure, Socket: t.path, Err: ErrConnectionLost}
	}
	if t.conn == nil {
		conn, err := openSocket(t.path, t.timeout)
		if err != nil {
			return nil, err
		}
		t.conn, t.r = conn, bufio.NewReader(conn)
	}
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	// One deadline for the whole request, however slowly the reply comes.
	_ = t.conn.SetDeadline(time.Now().Add(t.timeout))
	if _, err := t.conn.Write(buf); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("the broker did not answer in time (sending the request; gave up after %v)", t.timeout)
		}
		t.drop(err)
		return nil, t.failedError(err)
	}
	reply, err := t.readLine()
	if err != nil {
		if errors.Is(err, errReplyTooLong) {
			// The rest of the line is still unread: the connection cannot
			// be used any more.
			t.drop(err)
			return nil, &TransportError{Status: ErrInvalidReply, Socket: t.path, Err: err}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = errors.New("the broker closed the connection")
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("the broker did not answer in time (waiting for the reply; gave up after %v); it may be stopped or overloaded", t.timeout)
		}
		t.drop(err)
		return nil, t.failedError(err)
	}
	t.answered, t.lost = true, nil
	return reply, nil
}

// failedError is the error of a request whose connection broke.
func (t *socketTransport) failedError(cause error) error {
	return &TransportError{
		Status: ErrXPCFailure,
		Socket: t.path,
		Err:    cause,
		Hint:   "the broker dropped this connection's networks; the next request connects again",
	}
}

var errReplyTooLong = fmt.Errorf("reply line longer than %d bytes", maxReplyLine)

func (t *socketTransport) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := t.r.ReadSlice('\n')
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(line) > maxReplyLine {
				return nil, errReplyTooLong
			}
		case err == io.EOF && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// withSocket fills in the socket path of decoding errors.
func (t *socketTransport) withSocket(err error) error {
	var te *TransportError
	if errors.As(err, &te) && te.Socket == "" {
		te.Socket = t.path
	}
	return err
}

func (t *socketTransport) acquire(name string) (*Serialization, error) {
	line, err := t.roundTrip(map[string]string{"command": "acquire", "network_name": name})
	if err != nil {
		return nil, err
	}
	s, err := decodeAcquireReply(line)
	if err == nil {
		t.mu.Lock()
		if t.held == nil {
			t.held = make(map[string]bool)
		}
		t.held[name] = true
		delete(t.dropped, name)
		t.mu.Unlock()
	}
	return s, t.withSocket(err)
}

func (t *socketTransport) release(name string) error {
	t.mu.Lock()
	lost := t.dropped[name] && !t.held[name]
	if lost {
		delete(t.dropped, name)
	}
	t.mu.Unlock()
	if lost {
		return &TransportError{Status: ErrXPCFailure, Socket: t.path, Err: ErrConnectionLost}
	}
	line, err := t.roundTrip(map[string]string{"command": "release", "network_name": name})
	if err != nil {
		return err
	}
	err = decodeReleaseReply(line)
	if err == nil {
		t.mu.Lock()
		delete(t.held, name)
		t.mu.Unlock()
	}
	return t.withSocket(err)
}

func (t *socketTransport) status() (*StatusReport, error) {
	line, err := t.roundTrip(map[string]string{"command": "status"})
	if err != nil {
		return nil, err
	}
	r, err := decodeStatusReply(line)
	return r, t.withSocket(err)
}

func (t *socketTransport) isLost() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lost != nil
}

func (t *socketTransport) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	if t.conn == nil {
		return nil
	}
	return t.conn.Close()
}
