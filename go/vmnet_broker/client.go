// SPDX-License-Identifier: Apache-2.0

package vmnet_broker

import (
	"sync"
	"time"
)

// transport is one connection to the broker: XPC on macOS, or the
// development socket.
type transport interface {
	acquire(name string) (*Serialization, error)
	release(name string) error
	status() (*StatusReport, error)
	// isLost reports whether the connection broke, so that the broker has
	// dropped its holds.
	isLost() bool
	// setTimeout bounds each later request (a positive duration).
	setTimeout(timeout time.Duration)
	close() error
}

// Client is one connection to the broker. The networks it acquires are held
// until it releases them, closes, or the process exits. A Client is safe for
// concurrent use.
type Client struct {
	t transport
}

// Connect opens a connection to the broker.
//
// On macOS it uses the broker's XPC service (com.github.nirs.vmnet-broker),
// unless VMNET_BROKER_SOCKET is set, in which case it uses that development
// socket. An XPC connection is established lazily, so a missing broker shows
// up on the first request. Elsewhere it connects to the development socket
// (see DefaultSocketPath). ConnectSocket chooses the socket explicitly, on
// any system. The timeout is that of ConnectSocket. What every failure
// returns is the same in every client of this project:
// docs/client-contract.md.
func Connect() (*Client, error) {
	t, err := defaultTransport()
	if err != nil {
		return nil, err
	}
	return &Client{t: t}, nil
}

// ConnectSocket connects to a broker's development socket at path, or at
// DefaultSocketPath() when path is empty. Connecting and each request wait
// at most $VMNET_BROKER_TIMEOUT seconds (TimeoutEnv), or DefaultTimeout; an
// invalid value fails with the status ErrInvalidRequest before the broker
// is contacted.
func ConnectSocket(path string) (*Client, error) {
	if path == "" {
		path = DefaultSocketPath()
	}
	timeout, err := envTimeout()
	if err != nil {
		return nil, withSocketPath(err, path)
	}
	return ConnectSocketTimeout(path, timeout)
}

// Acquire asks the broker for the named network, creating it if nobody uses
// it yet, and holds it for this client. Acquiring a network the client
// already holds returns it again and does not add a second hold.
func (c *Client) Acquire(name string) (*Serialization, error) {
	return c.t.acquire(name)
}

// Release drops this client's hold on the named network without closing
// the connection. Releasing a network the client does not hold fails with
// ErrNotFound. The original C broker does not know this command and answers
// ErrInvalidRequest.
func (c *Client) Release(name string) error {
	return c.t.release(name)
}

// Status returns the broker's report: networks, holders, clients and
// counters. The original C broker does not know this command and answers
// ErrInvalidRequest.
func (c *Client) Status() (*StatusReport, error) {
	return c.t.status()
}

// Close closes the connection. The broker drops every hold of this client;
// a network nobody else holds is removed after the broker's idle delay.
// Later calls on the client fail with ErrXPCFailure.
func (c *Client) Close() error {
	return c.t.close()
}

var (
	sharedMu     sync.Mutex
	sharedClient *Client
)

// AcquireNetwork asks the broker for the named network and returns its
// serialization, as the original vmnet_broker package does.
//
// All calls share one process-wide connection, opened on first use and
// never closed, so the networks stay held until the process exits. Use a
// Client to control the connection's lifetime or to release a network.
//
// On macOS it always uses the broker's XPC service, as the original does
// (VMNET_BROKER_SOCKET is not looked at); elsewhere the development socket
// (see DefaultSocketPath).
//
// If that connection is lost (the broker restarted and dropped every
// network it held for this process), the call that notices returns an
// error whose status is ErrXPCFailure, and the next call starts afresh.
func AcquireNetwork(name string) (*Serialization, error) {
	c, err := processClient()
	if err != nil {
		return nil, err
	}
	return c.Acquire(name)
}

func processClient() (*Client, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedClient != nil && sharedClient.t.isLost() {
		_ = sharedClient.Close()
		sharedClient = nil
	}
	if sharedClient == nil {
		t, err := processTransport()
		if err != nil {
			return nil, err
		}
		sharedClient = &Client{t: t}
	}
	return sharedClient, nil
}
