// SPDX-License-Identifier: Apache-2.0

package vmnet_broker

// End-to-end tests: they start the real broker binary, named by
// VMNET_BROKER_BIN, on a development socket in a temporary directory, and
// talk to it with this package. scripts/test-go builds the broker and sets
// the variable. Without it the tests are skipped, except under CI (CI set),
// where a missing broker is a failure.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// helperEnv, when set, makes the test binary act as a client process for
// the tests instead of running tests (see runHelper).
const helperEnv = "VMNET_BROKER_GO_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// runHelper acquires the networks listed in VMNET_BROKER_GO_TEST_NETWORKS
// with AcquireNetwork, prints "ready" and the subnets, then waits until its
// standard input closes or it is killed.
func runHelper(mode string) int {
	if mode != "hold" {
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		return 2
	}
	var subnets []string
	for _, name := range strings.Split(os.Getenv("VMNET_BROKER_GO_TEST_NETWORKS"), ",") {
		s, err := AcquireNetwork(name)
		if err != nil {
			fmt.Printf("error %s: %v\n", name, err)
			return 1
		}
		info, _ := s.Info()
		subnets = append(subnets, info.Subnet.String())
	}
	fmt.Printf("ready %s\n", strings.Join(subnets, " "))
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// lockedBuffer collects the broker's log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type broker struct {
	socket string
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan struct{}
}

// patience bounds every wait for the broker. It is a safety net against a
// hung test, not a performance requirement.
const patience = 30 * time.Second

// brokerBinary returns the broker to test, or skips the test.
func brokerBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("VMNET_BROKER_BIN")
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("VMNET_BROKER_BIN is not set, so the end-to-end tests cannot run. " +
				"Run them with scripts/test-go, which builds the broker, or set VMNET_BROKER_BIN " +
				"to a vmnet-broker binary (cargo build -p vmnet-broker; target/debug/vmnet-broker)")
		}
		t.Skip("VMNET_BROKER_BIN is not set; skipping the end-to-end test (scripts/test-go sets it)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("VMNET_BROKER_BIN=%s: %v", bin, err)
	}
	return bin
}

// startBroker starts `vmnet-broker serve` with the given configuration
// files (name -> contents of name.json) and waits until it accepts
// connections. The broker is killed when the test ends.
func startBroker(t *testing.T, configs map[string]string) *broker {
	t.Helper()
	bin := brokerBinary(t)

	// A short directory of our own: socket paths are limited to about 100
	// bytes, and t.TempDir names grow with the test name.
	dir, err := os.MkdirTemp("", "vbgo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := filepath.Join(dir, "conf")
	if err := os.Mkdir(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range configs {
		if err := os.WriteFile(filepath.Join(conf, name+".json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	b := &broker{
		socket: filepath.Join(dir, "s.sock"),
		log:    &lockedBuffer{},
		exited: make(chan struct{}),
	}
	b.cmd = exec.Command(bin, "serve", "--socket", b.socket, "--no-idle-exit",
		"--config-dir", conf, "--backend", "simulated", "--log-level", "debug")
	b.cmd.Stdout = b.log
	b.cmd.Stderr = b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("cannot start the broker %s: %v", bin, err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			t.Logf("broker log:\n%s", b.log.String())
		}
	})

	deadline := time.Now().Add(patience)
	for {
		conn, err := net.Dial("unix", b.socket)
		if err == nil {
			conn.Close()
			return b
		}
		select {
		case <-b.exited:
			t.Fatalf("the broker exited before accepting connections (%v); its log:\n%s",
				b.cmd.ProcessState, b.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker did not accept connections on %s within %v: %v", b.socket, patience, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *broker) kill() {
	select {
	case <-b.exited:
		return
	default:
	}
	_ = b.cmd.Process.Kill()
	<-b.exited
}

func (b *broker) connect(t *testing.T) *Client {
	t.Helper()
	c, err := ConnectSocket(b.socket)
	if err != nil {
		t.Fatalf("cannot connect to the broker: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (b *broker) status(t *testing.T) *StatusReport {
	t.Helper()
	c, err := ConnectSocket(b.socket)
	if err != nil {
		t.Fatalf("cannot connect to the broker: %v", err)
	}
	defer c.Close()
	r, err := c.Status()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return r
}

// waitFor polls the broker's status until cond holds.
func (b *broker) waitFor(t *testing.T, what string, cond func(*StatusReport) bool) *StatusReport {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		r := b.status(t)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			js, _ := json.MarshalIndent(r, "", "  ")
			t.Fatalf("gave up waiting for %s; last status:\n%s", what, js)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holders is the number of holders of a network; 0 if it does not exist.
func holders(r *StatusReport, name string) int {
	if n := r.Network(name); n != nil {
		return n.Holders
	}
	return 0
}

func acquire(t *testing.T, c *Client, name string) (*Serialization, NetworkInfo) {
	t.Helper()
	s, err := c.Acquire(name)
	if err != nil {
		t.Fatalf("acquire %q: %v", name, err)
	}
	info, ok := s.Info()
	if !ok {
		t.Fatalf("acquire %q: the reply has no network_info", name)
	}
	return s, info
}

func TestAcquireBuiltinNetworks(t *testing.T) {
	b := startBroker(t, nil)
	c := b.connect(t)

	shared, sharedInfo := acquire(t, c, "shared")
	host, hostInfo := acquire(t, c, "host")
	if sharedInfo.Mode != ModeShared || hostInfo.Mode != ModeHost {
		t.Errorf("modes: shared is %q, host is %q", sharedInfo.Mode, hostInfo.Mode)
	}
	if sharedInfo.Subnet == hostInfo.Subnet {
		t.Errorf("shared and host have the same subnet %v", sharedInfo.Subnet)
	}
	for _, info := range []NetworkInfo{sharedInfo, hostInfo} {
		if !info.IPv4Prefix().IsValid() || !info.IPv6().IsValid() {
			t.Errorf("network info %+v does not give valid prefixes", info)
		}
	}
	if len(shared.JSON()) == 0 || len(host.JSON()) == 0 {
		t.Error("a serialization from the socket transport has no JSON")
	}
	if shared.Raw() != nil {
		t.Error("Raw() of a socket-transport serialization is not nil")
	}

	// Acquiring again returns the same network and does not hold it twice.
	again, againInfo := acquire(t, c, "shared")
	if againInfo != sharedInfo || !sameJSON(t, again.JSON(), shared.JSON()) {
		t.Errorf("acquiring shared again gave %+v, first time %+v", againInfo, sharedInfo)
	}
	if n := holders(b.status(t), "shared"); n != 1 {
		t.Errorf("shared has %d holders after one client acquired it twice, want 1", n)
	}
}

func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("serialization %s is not JSON: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("serialization %s is not JSON: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func TestTwoClientsShareANetwork(t *testing.T) {
	b := startBroker(t, nil)
	c1 := b.connect(t)
	c2 := b.connect(t)

	s1, info1 := acquire(t, c1, "shared")
	s2, info2 := acquire(t, c2, "shared")
	if info1 != info2 {
		t.Errorf("two clients got different networks: %+v and %+v", info1, info2)
	}
	if !sameJSON(t, s1.JSON(), s2.JSON()) {
		t.Errorf("two clients got different serializations: %s and %s", s1.JSON(), s2.JSON())
	}
	if n := holders(b.status(t), "shared"); n != 2 {
		t.Errorf("shared has %d holders, want 2", n)
	}

	// Closing one client drops its hold only.
	if err := c1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	b.waitFor(t, "shared to have 1 holder after a client closed", func(r *StatusReport) bool {
		return holders(r, "shared") == 1
	})
	if _, err := c1.Acquire("shared"); !errors.Is(err, ErrXPCFailure) {
		t.Errorf("acquire on a closed client: %v, want ErrXPCFailure", err)
	}
}

func TestConfiguredNetworks(t *testing.T) {
	b := startBroker(t, map[string]string{
		"lab":    `{"mode": "host"}`,
		"broken": `{"mode": `,
	})
	c := b.connect(t)

	_, lab := acquire(t, c, "lab")
	if lab.Mode != ModeHost {
		t.Errorf("lab is configured as host, got mode %q", lab.Mode)
	}
	_, shared := acquire(t, c, "shared")
	if lab.Subnet == shared.Subnet {
		t.Errorf("lab and shared have the same subnet %v", lab.Subnet)
	}
	if _, err := c.Acquire("broken"); !errors.Is(err, ErrNotFound) {
		t.Errorf("acquire of a network with a broken configuration: %v, want ErrNotFound", err)
	}
}

func TestAcquireErrors(t *testing.T) {
	b := startBroker(t, nil)
	c := b.connect(t)

	_, err := c.Acquire("no-such-network")
	if err != ErrNotFound {
		t.Errorf("acquire no-such-network: %v, want the bare ErrNotFound", err)
	}
	if err == nil || err.Error() != "Network name not found" {
		t.Errorf("the error says %q, want the original's text", err)
	}
	// Like the original broker, any string is looked up: a name that is not
	// configured is not found, whatever its form.
	for _, name := range []string{"", "../etc/passwd", ".hidden", "a b", strings.Repeat("a", 65), "nul\x00byte"} {
		if _, err := c.Acquire(name); err != ErrNotFound {
			t.Errorf("acquire %q: %v, want the bare ErrNotFound", name, err)
		}
	}
	// The connection is still usable after refused requests.
	acquire(t, c, "shared")
}

// Every request vector, each sent as-is on a fresh connection to a fresh
// broker, as the vectors prescribe.
func TestRequestVectors(t *testing.T) {
	brokerBinary(t)
	for _, vec := range loadVectors(t).Requests {
		t.Run(vec.Name, func(t *testing.T) {
			b := startBroker(t, nil)
			line := []byte(nil)
			if vec.Raw != nil {
				line = []byte(*vec.Raw)
			} else {
				var buf bytes.Buffer
				if err := json.Compact(&buf, vec.Request); err != nil {
					t.Fatal(err)
				}
				line = buf.Bytes()
			}
			st, err := dialSocket(b.socket)
			if err != nil {
				t.Fatal(err)
			}
			defer st.close()
			reply, err := st.roundTripRaw(line)
			if err != nil {
				t.Fatalf("sending %q: %v", line, err)
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(reply, &obj); err != nil {
				t.Fatalf("reply %q to %q is not a JSON object: %v", reply, line, err)
			}
			raw, hasError := obj["error"]
			if vec.ExpectError == nil {
				if hasError {
					t.Fatalf("request %q: reply %s has an error, want none", line, reply)
				}
				for _, key := range vec.ExpectKeys {
					if _, ok := obj[key]; !ok {
						t.Errorf("request %q: reply %s lacks %q", line, reply, key)
					}
				}
				return
			}
			code, ok := jsonInt(raw)
			if !hasError || !ok || code != *vec.ExpectError {
				t.Fatalf("request %q: reply %s, want error %d", line, reply, *vec.ExpectError)
			}
			// The broker goes on reading this connection after an error.
			if _, err := (&Client{t: st}).Status(); err != nil {
				t.Errorf("status after the refused request: %v", err)
			}
		})
	}
}

func TestRelease(t *testing.T) {
	b := startBroker(t, nil)
	c := b.connect(t)
	other := b.connect(t)

	acquire(t, c, "shared")
	acquire(t, other, "shared")
	if err := c.Release("shared"); err != nil {
		t.Fatalf("release: %v", err)
	}
	if n := holders(b.status(t), "shared"); n != 1 {
		t.Errorf("shared has %d holders after one of two released it, want 1", n)
	}
	if err := c.Release("shared"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second release: %v, want ErrNotFound", err)
	}
	if err := c.Release("host"); !errors.Is(err, ErrNotFound) {
		t.Errorf("release of a network never acquired: %v, want ErrNotFound", err)
	}
	// The released network can be acquired again on the same connection.
	acquire(t, c, "shared")
	if n := holders(b.status(t), "shared"); n != 2 {
		t.Errorf("shared has %d holders after acquiring it again, want 2", n)
	}
}

func TestStatus(t *testing.T) {
	b := startBroker(t, nil)
	c1 := b.connect(t)
	c2 := b.connect(t)
	acquire(t, c1, "shared")
	acquire(t, c1, "host")
	acquire(t, c2, "shared")

	r, err := c1.Status()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if r.Backend != "simulated" || r.Version == "" {
		t.Errorf("backend %q, version %q", r.Backend, r.Version)
	}
	if r.ExitIdleTimeoutSeconds != nil {
		t.Errorf("the broker runs with --no-idle-exit but reports an exit timeout of %v", *r.ExitIdleTimeoutSeconds)
	}
	if holders(r, "shared") != 2 || holders(r, "host") != 1 {
		t.Errorf("holders: shared %d (want 2), host %d (want 1)", holders(r, "shared"), holders(r, "host"))
	}
	if n := r.Network("shared"); n == nil || n.IdleForSeconds != nil || n.RemovalInSeconds != nil {
		t.Errorf("a held network reports idle times: %+v", n)
	}
	var lists []string
	for _, p := range r.Peers {
		if p.PID != os.Getpid() {
			t.Errorf("peer %d has pid %d, want this process (%d)", p.ID, p.PID, os.Getpid())
		}
		// Connections that hold nothing may be the broker noticing late
		// that an earlier probe connection closed.
		if len(p.Networks) > 0 {
			lists = append(lists, strings.Join(p.Networks, ","))
		}
	}
	if !reflect.DeepEqual(lists, []string{"host,shared", "shared"}) {
		t.Errorf("peers hold %q, want [host,shared shared]", lists)
	}
	if r.PeerCount < 2 || r.PeerCount != len(r.Peers)+r.HiddenPeers || r.HiddenPeers != 0 {
		t.Errorf("peer_count %d, %d peers listed, hidden_peers %d; want at least 2, all listed",
			r.PeerCount, len(r.Peers), r.HiddenPeers)
	}
	if r.Counters.Acquires < 3 || r.Counters.Creations != 2 {
		t.Errorf("counters %+v: want at least 3 acquires and 2 creations", r.Counters)
	}
}

// AcquireNetwork in another process: its calls share one connection, and
// killing the process drops its holds.
func TestKilledProcessLosesItsHolds(t *testing.T) {
	b := startBroker(t, nil)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		helperEnv+"=hold",
		"VMNET_BROKER_GO_TEST_NETWORKS=shared,host",
		SocketEnv+"="+b.socket,
	)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start the helper process: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-waited
	}()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if !strings.HasPrefix(line, "ready ") {
		t.Fatalf("the helper process said %q (%v); stderr:\n%s", line, err, stderr.String())
	}
	subnets := strings.Fields(strings.TrimPrefix(line, "ready "))
	if len(subnets) != 2 || subnets[0] == subnets[1] {
		t.Errorf("the helper got subnets %q", subnets)
	}

	pid := cmd.Process.Pid
	r := b.status(t)
	var mine []PeerStatus
	for _, p := range r.Peers {
		if p.PID == pid {
			mine = append(mine, p)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("the helper (pid %d) has %d connections, want one shared by its AcquireNetwork calls; peers: %+v",
			pid, len(mine), r.Peers)
	}
	if got := strings.Join(mine[0].Networks, ","); got != "host,shared" {
		t.Errorf("the helper holds %q, want host,shared", got)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-waited
	waited <- nil // for the deferred cleanup
	b.waitFor(t, "the killed process's holds to be dropped", func(r *StatusReport) bool {
		for _, p := range r.Peers {
			if p.PID == pid {
				return false
			}
		}
		return holders(r, "shared") == 0 && holders(r, "host") == 0
	})
}

func TestBrokerGoneIsXPCFailure(t *testing.T) {
	b := startBroker(t, nil)
	c := b.connect(t)
	acquire(t, c, "shared")

	b.kill()
	_, err := c.Acquire("shared")
	if !errors.Is(err, ErrXPCFailure) {
		t.Fatalf("acquire after the broker died: %v, want ErrXPCFailure", err)
	}
	if !strings.Contains(err.Error(), b.socket) {
		t.Errorf("the error %q does not name the socket", err)
	}
	if _, err := c.Status(); !errors.Is(err, ErrXPCFailure) {
		t.Errorf("status after the broker died: %v, want ErrXPCFailure", err)
	}
}

// No broker at all: AcquireNetwork reports ErrXPCFailure with the socket
// and what to do.
func TestNoBroker(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nobody.sock")
	t.Setenv(SocketEnv, path)
	_, err := AcquireNetwork("shared")
	if !errors.Is(err, ErrXPCFailure) {
		t.Fatalf("AcquireNetwork without a broker: %v, want ErrXPCFailure", err)
	}
	for _, part := range []string{path, "is the broker running", "vmnet-broker serve"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("the error %q does not mention %q", err, part)
		}
	}
	if _, err := ConnectSocket(path); !errors.Is(err, ErrXPCFailure) {
		t.Errorf("ConnectSocket without a broker: %v, want ErrXPCFailure", err)
	}
}

// A peer that answers with something other than a reply object gives
// ErrInvalidReply.
func TestInvalidReplyFromPeer(t *testing.T) {
	dir, err := os.MkdirTemp("", "vbgo")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "fake.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	answers := []string{"[1,2]\n", "not json\n", "{}\n", `{"error":999}` + "\n",
		`{"error":-1}` + "\n", `{"error":4294967296}` + "\n", `{"error":4294967295}` + "\n"}
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for _, a := range answers {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			if _, err := io.WriteString(conn, a); err != nil {
				return
			}
		}
	}()

	c, err := ConnectSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Codes that do not fit Error (a uint32, as the original's C enum) are
	// invalid replies; the others are kept as they are.
	want := []Error{ErrInvalidReply, ErrInvalidReply, ErrInvalidReply, Error(999),
		ErrInvalidReply, ErrInvalidReply, Error(4294967295)}
	for i, w := range want {
		_, err := c.Acquire("shared")
		if got := statusOf(err); got != w {
			t.Errorf("answer %q: %v, want status %d", answers[i], err, w)
		}
	}
}
