// SPDX-License-Identifier: Apache-2.0

//go:build cgo && acceptance

// Acceptance tests against the broker installed on this Mac, over XPC:
//
//	go test -tags acceptance ./...
//
// They need a broker serving com.github.nirs.vmnet-broker with the default
// configuration (the networks shared and host, no network named
// no-such-network): ours or the original, which is the point. Tests of our
// additions (Release, Status) are skipped with VMNET_BROKER_ORIGINAL=1. The
// restart test runs only with VMNET_BROKER_RESTART set to a command that
// restarts the broker (for example "sudo launchctl kickstart -k
// system/com.github.nirs.vmnet-broker").

package vmnet_broker

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func originalOnly() bool { return os.Getenv("VMNET_BROKER_ORIGINAL") != "" }

func TestXPCAcquireNetwork(t *testing.T) {
	for _, name := range []string{"shared", "host", "shared"} {
		s, err := AcquireNetwork(name)
		if err != nil {
			t.Fatalf("AcquireNetwork(%q): %v", name, err)
		}
		if s.Raw() == nil {
			t.Fatalf("AcquireNetwork(%q): Raw() is nil", name)
		}
	}
}

func TestXPCUnknownNamesAreNotFound(t *testing.T) {
	for _, name := range []string{"no-such-network", "", "a b", "../etc/passwd", strings.Repeat("x", 65)} {
		_, err := AcquireNetwork(name)
		if err != ErrNotFound {
			t.Errorf("AcquireNetwork(%q): %v, want the bare ErrNotFound", name, err)
		}
		if err != nil && err.Error() != "Network name not found" {
			t.Errorf("AcquireNetwork(%q): the text is %q", name, err.Error())
		}
	}
}

func TestXPCClientReleaseAndStatus(t *testing.T) {
	if originalOnly() {
		t.Skip("Release and Status are additions of this project")
	}
	c, err := Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Acquire("host"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Network("host"); n == nil || n.Holders < 1 {
		t.Fatalf("status does not show host held: %+v", n)
	}
	if err := c.Release("host"); err != nil {
		t.Fatal(err)
	}
	if err := c.Release("host"); err != ErrNotFound {
		t.Fatalf("second release: %v, want ErrNotFound", err)
	}
}

// After the broker restarts, every hold is gone; the client must say so.
func TestXPCBrokerRestartIsNoticed(t *testing.T) {
	restart := os.Getenv("VMNET_BROKER_RESTART")
	if restart == "" {
		t.Skip("set VMNET_BROKER_RESTART to a command that restarts the broker")
	}
	c, err := Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Acquire("shared"); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("/bin/sh", "-c", restart).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", restart, err, out)
	}
	time.Sleep(2 * time.Second)
	// Either the release notices the loss, or the interruption was already
	// seen and the release says so without asking the broker.
	err = c.Release("shared")
	if !errors.Is(err, ErrConnectionLost) || !errors.Is(err, ErrXPCFailure) {
		t.Fatalf("release after a broker restart: %v, want ErrConnectionLost with ErrXPCFailure", err)
	}
	// The connection works again.
	if _, err := c.Acquire("shared"); err != nil {
		t.Fatalf("acquire after the restart: %v", err)
	}
}
