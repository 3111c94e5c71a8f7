// SPDX-License-Identifier: Apache-2.0

package vmnet_broker

// The client failure contract (docs/client-contract.md), as the table in
// testdata/client-contract.json, for the Go client over the development
// socket: ConnectSocket (a Client) and AcquireNetwork (the process-wide
// connection).
//
// Each case runs in a probe process (this test binary again, running
// TestContractProbe) with the case's environment only, so that
// VMNET_BROKER_TIMEOUT is tested as a user sets it and cases run in
// parallel. The fake brokers are vmnet-broker-contract-server (its path in
// VMNET_BROKER_CONTRACT_SERVER; scripts/test-go builds it); the real broker
// is VMNET_BROKER_BIN.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type contractTable struct {
	Cases []contractCase `json:"cases"`
}

type contractCase struct {
	ID         string            `json:"id"`
	Transports []string          `json:"transports"`
	Server     string            `json:"server"`
	Reply      *string           `json:"reply"`
	Request    string            `json:"request"`
	Env        map[string]string `json:"env"`
	Expect     contractExpect    `json:"expect"`
}

type contractExpect struct {
	Status     int64           `json:"status"`
	Message    []string        `json:"message"`
	MinSeconds *float64        `json:"min_seconds"`
	MaxSeconds *float64        `json:"max_seconds"`
	Then       *contractExpect `json:"then"`
}

// otherUID serves the squatted socket (nobody).
const otherUID = 65534

// describe is what a caller shows of an error: the TransportError's text,
// or a bare status's Detail (Error() keeps the original's strerror text).
func describe(err error) string {
	var te *TransportError
	if errors.As(err, &te) {
		return te.Error()
	}
	var s Error
	if errors.As(err, &s) {
		return s.Detail()
	}
	return err.Error()
}

// TestContractProbe is the probe: it does nothing unless the runner starts
// it with VMNET_BROKER_CONTRACT_PROBE=MODE:STEPS:SOCKET.
func TestContractProbe(t *testing.T) {
	spec := os.Getenv("VMNET_BROKER_CONTRACT_PROBE")
	if spec == "" {
		t.Skip("the probe of TestContract; runs only when TestContract starts it")
	}
	mode, rest, _ := strings.Cut(spec, ":")
	steps, socket, _ := strings.Cut(rest, ":")
	var client *Client
	in := bufio.NewReader(os.Stdin)
	for _, step := range strings.Split(steps, ",") {
		if step == "wait" {
			fmt.Println("waiting")
			if _, err := in.ReadString('\n'); err != nil {
				break
			}
			continue
		}
		started := time.Now()
		err := func() error {
			// xpc-upstream and xpc-client are the runs over the fake XPC
			// (crates/ffi/tests/contract.rs starts this probe with them
			// when built with the vmnet_broker_fake_xpc tag).
			if mode == "acquire" || mode == "xpc-upstream" {
				_, err := AcquireNetwork("shared")
				return err
			}
			if client == nil {
				connect := func() (*Client, error) { return ConnectSocket(socket) }
				if mode == "xpc-client" {
					connect = Connect
				}
				c, err := connect()
				if err != nil {
					return err
				}
				client = c
			}
			if step == "acquire" {
				_, err := client.Acquire("shared")
				return err
			}
			_, err := client.Status()
			return err
		}()
		seconds := time.Since(started).Seconds()
		if err != nil {
			fmt.Printf("result %d %.3f %s\n", uint32(statusOf(err)), seconds, describe(err))
		} else {
			fmt.Printf("result 0 %.3f -\n", seconds)
		}
	}
	if client != nil {
		client.Close()
	}
}

type contractOutcome struct {
	status  int64
	seconds float64
	message string
}

func readOutcome(r *bufio.Reader) (contractOutcome, error) {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return contractOutcome{}, fmt.Errorf("the probe ended without a result: %w", err)
		}
		rest, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "result ")
		if !ok {
			continue // the test framework's own lines
		}
		parts := strings.SplitN(rest, " ", 3)
		if len(parts) < 2 {
			return contractOutcome{}, fmt.Errorf("the probe printed %q", line)
		}
		var o contractOutcome
		o.status, _ = strconv.ParseInt(parts[0], 10, 64)
		o.seconds, _ = strconv.ParseFloat(parts[1], 64)
		if len(parts) == 3 {
			o.message = parts[2]
		}
		return o, nil
	}
}

func waitForLine(r *bufio.Reader, want string) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("the probe ended before %q: %w", want, err)
		}
		if strings.TrimSpace(line) == want {
			return nil
		}
	}
}

func judge(o contractOutcome, e contractExpect, socket string) error {
	if o.status != e.Status {
		return fmt.Errorf("status %d (%s), expected %d", o.status, o.message, e.Status)
	}
	for _, f := range e.Message {
		f = strings.ReplaceAll(f, "SOCKET", socket)
		if !strings.Contains(o.message, f) {
			return fmt.Errorf("message %q lacks %q", o.message, f)
		}
	}
	if e.MinSeconds != nil && o.seconds < *e.MinSeconds {
		return fmt.Errorf("answered after %.3fs, expected at least %vs", o.seconds, *e.MinSeconds)
	}
	if e.MaxSeconds != nil && o.seconds > *e.MaxSeconds {
		return fmt.Errorf("answered after %.3fs, expected at most %vs", o.seconds, *e.MaxSeconds)
	}
	return nil
}

// contractServer is the path of vmnet-broker-contract-server, or "" (the
// test is then skipped, or failed under CI).
func contractServer(t *testing.T) string {
	bin := os.Getenv("VMNET_BROKER_CONTRACT_SERVER")
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("VMNET_BROKER_CONTRACT_SERVER is not set; scripts/test-go builds it " +
				"(cargo build -p vmnet-broker-testkit)")
		}
		t.Skip("VMNET_BROKER_CONTRACT_SERVER is not set; scripts/test-go sets it")
	}
	return bin
}

// startProcess starts cmd and kills it when the test ends.
func startProcess(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// startFake starts the fake broker on socket and waits for its "ready".
func startFake(t *testing.T, bin, socket, kind string, reply *string, uid int) *exec.Cmd {
	t.Helper()
	args := []string{"--socket", socket, "--server", kind}
	if reply != nil {
		args = append(args, "--reply", *reply)
	}
	cmd := exec.Command(bin, args...)
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	startProcess(t, cmd)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("the fake broker (%s) did not start: %q %v", kind, line, err)
	}
	return cmd
}

// startBrokerOn starts the real broker on socket and waits until it
// accepts connections.
func startBrokerOn(t *testing.T, socket, dir string) *exec.Cmd {
	t.Helper()
	conf := filepath.Join(dir, "conf")
	_ = os.MkdirAll(conf, 0o755)
	cmd := exec.Command(brokerBinary(t), "serve", "--socket", socket, "--no-idle-exit",
		"--config-dir", conf, "--backend", "simulated")
	startProcess(t, cmd)
	deadline := time.Now().Add(patience)
	for {
		if conn, err := net.Dial("unix", socket); err == nil {
			conn.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker did not serve %s within %v", socket, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stepsOf(request string) string {
	switch request {
	case "acquire", "status":
		return request
	default: // acquire-then-kill-then-status, acquire-then-relaunch-then-status
		return "acquire,wait,status,status"
	}
}

func TestContract(t *testing.T) {
	data, err := os.ReadFile("testdata/client-contract.json")
	if err != nil {
		t.Fatal(err)
	}
	var table contractTable
	if err := json.Unmarshal(data, &table); err != nil {
		t.Fatalf("testdata/client-contract.json: %v", err)
	}
	fake := contractServer(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	for _, c := range table.Cases {
		onSocket := len(c.Transports) == 0
		for _, tr := range c.Transports {
			onSocket = onSocket || tr == "socket"
		}
		if !onSocket {
			continue
		}
		for _, mode := range []string{"client", "acquire"} {
			runs++
			t.Run(c.ID+"/"+mode, func(t *testing.T) {
				t.Parallel()
				runContractCase(t, c, mode, fake, self)
			})
		}
	}
	if runs == 0 {
		t.Fatal("the table has no socket case")
	}
}

func runContractCase(t *testing.T, c contractCase, mode, fake, self string) {
	dir, err := os.MkdirTemp("", "vbgoc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "s.sock")
	var server *exec.Cmd
	switch c.Server {
	case "none":
	case "broker":
		server = startBrokerOn(t, socket, dir)
	case "broker-other-user":
		if os.Geteuid() != 0 {
			t.Skip("needs root, to serve the socket as another user")
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		server = startFake(t, fake, socket, "reply", c.Reply, otherUID)
	default:
		server = startFake(t, fake, socket, c.Server, c.Reply, -1)
	}

	probe := exec.Command(self, "-test.run=^TestContractProbe$", "-test.count=1")
	env := []string{}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != TimeoutEnv && k != SocketEnv && k != "VMNET_BROKER_CONTRACT_PROBE" {
			env = append(env, kv)
		}
	}
	env = append(env, SocketEnv+"="+socket,
		"VMNET_BROKER_CONTRACT_PROBE="+mode+":"+stepsOf(c.Request)+":"+socket)
	for k, v := range c.Env {
		env = append(env, k+"="+v)
	}
	probe.Env = env
	stdin, err := probe.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := probe.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	probe.Stderr = os.Stderr
	startProcess(t, probe)
	out := bufio.NewReader(stdout)

	first, err := readOutcome(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Request, "acquire-then-") {
		if err := judge(first, c.Expect, socket); err != nil {
			t.Fatal(err)
		}
		return
	}
	if first.status != 0 {
		t.Fatalf("the first acquire failed: %+v", first)
	}
	if err := waitForLine(out, "waiting"); err != nil {
		t.Fatal(err)
	}
	// The broker goes away while the client holds a network.
	_ = server.Process.Kill()
	_ = server.Wait()
	if strings.Contains(c.Request, "relaunch") {
		startBrokerOn(t, socket, dir)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	after, err := readOutcome(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := judge(after, c.Expect, socket); err != nil {
		t.Fatal(err)
	}
	then, err := readOutcome(out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Expect.Then != nil {
		if err := judge(then, *c.Expect.Then, socket); err != nil {
			t.Fatalf("then: %v", err)
		}
	}
	stdin.Close()
}

// Releasing a network held on a connection that was lost reports the loss,
// and sends nothing: the new connection holds nothing.
func TestReleaseAfterTheBrokerRestartedReportsTheLoss(t *testing.T) {
	dir, err := os.MkdirTemp("", "vbgor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "s.sock")
	first := startBrokerOn(t, socket, dir)
	c, err := ConnectSocket(socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Acquire("shared"); err != nil {
		t.Fatal(err)
	}
	_ = first.Process.Kill()
	_ = first.Wait()
	startBrokerOn(t, socket, dir)
	time.Sleep(100 * time.Millisecond)
	if _, err := c.Status(); !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("the first request after the restart: %v, want ErrConnectionLost", err)
	}
	if err := c.Release("shared"); !errors.Is(err, ErrConnectionLost) || !errors.Is(err, ErrXPCFailure) {
		t.Fatalf("release of a lost hold: %v, want ErrConnectionLost with ErrXPCFailure", err)
	}
	if _, err := c.Acquire("shared"); err != nil {
		t.Fatalf("acquire on the new broker: %v", err)
	}
	if err := c.Release("shared"); err != nil {
		t.Fatalf("release of the new hold: %v", err)
	}
}
