// SPDX-License-Identifier: Apache-2.0

package vmnet_broker

import (
	"errors"
	"fmt"
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

// A server that accepts and never answers (a stopped or stuck broker):
// requests fail with ErrXPCFailure once the timeout passes.
func TestRequestsTimeOutOnASilentServer(t *testing.T) {
	dir, err := os.MkdirTemp("", "vbgo")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "silent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	c, err := ConnectSocketTimeout(path, 200*time.Millisecond)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close()
	_, err = c.Status()
	if !errors.Is(err, ErrXPCFailure) || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("Status on a silent server: %v, want ErrXPCFailure saying it did not answer", err)
	}

	c2, err := ConnectSocket(path)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c2.Close()
	c2.SetTimeout(100 * time.Millisecond)
	if _, err := c2.Acquire("shared"); !errors.Is(err, ErrXPCFailure) {
		t.Fatalf("Acquire on a silent server: %v, want ErrXPCFailure", err)
	}
	if _, err := ConnectSocketTimeout(path, 0); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("zero timeout: %v, want ErrInvalidRequest", err)
	}
}

// A broker run by another user (neither root nor us) is refused before any
// request is sent. Needs root, to create that user.
func TestRefusesABrokerOfAnotherUser(t *testing.T) {
	bin := brokerBinary(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a second user")
	}
	name := fmt.Sprintf("vbgo%d", os.Getpid()%100000)
	if out, err := exec.Command("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	defer exec.Command("userdel", name).Run()
	id := func(flag string) uint32 {
		out, err := exec.Command("id", flag, name).Output()
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(n)
	}
	uid, gid := id("-u"), id("-g")

	dir, err := os.MkdirTemp("", "vbgo")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "u")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(theirs, "s.sock")
	cmd := exec.Command(bin, "serve", "--socket", path, "--config-dir", "/nonexistent",
		"--no-idle-exit", "--backend", "simulated")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(patience)
	for {
		conn, err := net.Dial("unix", path)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other user's broker did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	_, err = ConnectSocket(path)
	if !errors.Is(err, ErrXPCFailure) || !strings.Contains(err.Error(), fmt.Sprintf("uid %d", uid)) {
		t.Fatalf("ConnectSocket to another user's broker: %v, want ErrXPCFailure naming uid %d", err, uid)
	}
}
