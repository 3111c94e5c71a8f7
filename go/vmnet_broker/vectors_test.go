// SPDX-License-Identifier: Apache-2.0

package vmnet_broker

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// vectors is testdata/protocol-vectors.json, a byte-identical copy of the
// repository's shared vectors (scripts/test-go checks that).
type vectors struct {
	Requests []struct {
		Name        string          `json:"name"`
		Request     json.RawMessage `json:"request"`
		Raw         *string         `json:"raw"`
		ExpectError *int64          `json:"expect_error"`
		ExpectKeys  []string        `json:"expect_keys"`
	} `json:"requests"`
	Replies []struct {
		Name         string          `json:"name"`
		Reply        json.RawMessage `json:"reply"`
		ExpectStatus int64           `json:"expect_status"`
		ExpectInfo   *struct {
			Mode             string `json:"mode"`
			Subnet           string `json:"subnet"`
			Mask             string `json:"mask"`
			IPv6Prefix       string `json:"ipv6_prefix"`
			IPv6PrefixLength int    `json:"ipv6_prefix_length"`
		} `json:"expect_info"`
	} `json:"replies"`
	Statuses []struct {
		Code        int64   `json:"code"`
		CName       *string `json:"c_name"`
		Description string  `json:"description"`
		Strerror    string  `json:"strerror"`
	} `json:"statuses"`
}

func loadVectors(t *testing.T) *vectors {
	t.Helper()
	data, err := os.ReadFile("testdata/protocol-vectors.json")
	if err != nil {
		t.Fatalf("cannot read the protocol vectors: %v", err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("cannot parse testdata/protocol-vectors.json: %v", err)
	}
	if len(v.Requests) == 0 || len(v.Replies) == 0 || len(v.Statuses) == 0 {
		t.Fatalf("protocol vectors are incomplete: %d requests, %d replies, %d statuses",
			len(v.Requests), len(v.Replies), len(v.Statuses))
	}
	return &v
}

// Every reply vector, read by the same code the socket transport uses.
func TestReplyVectors(t *testing.T) {
	for _, vec := range loadVectors(t).Replies {
		t.Run(vec.Name, func(t *testing.T) {
			s, err := decodeAcquireReply(vec.Reply)
			if got := statusOf(err); int64(got) != vec.ExpectStatus {
				t.Fatalf("reply %s: status %d (%v), want %d", vec.Reply, got, err, vec.ExpectStatus)
			}
			if vec.ExpectStatus != 0 {
				if s != nil {
					t.Fatalf("reply %s: got a serialization along with error %v", vec.Reply, err)
				}
				var code Error
				if !errors.As(err, &code) || int64(code) != vec.ExpectStatus {
					t.Fatalf("errors.As(%v) gives %d, want %d", err, code, vec.ExpectStatus)
				}
				return
			}
			if s == nil {
				t.Fatal("success without a serialization")
			}
			info, ok := s.Info()
			if vec.ExpectInfo == nil {
				if ok {
					t.Fatalf("reply %s has no network_info, but Info() returned %+v", vec.Reply, info)
				}
				return
			}
			if !ok {
				t.Fatalf("reply %s: Info() reports no network_info", vec.Reply)
			}
			want := vec.ExpectInfo
			if string(info.Mode) != want.Mode || info.Subnet.String() != want.Subnet ||
				info.Mask.String() != want.Mask || info.IPv6Prefix.String() != want.IPv6Prefix ||
				info.IPv6PrefixLength != want.IPv6PrefixLength {
				t.Fatalf("Info() = %+v, want %+v", info, *want)
			}
		})
	}
}

// Every status vector: Error() is the original's strerror text, byte for
// byte; Description and Detail carry ours; unknown codes keep their number
// and say they are unknown.
func TestStatusVectors(t *testing.T) {
	for _, vec := range loadVectors(t).Statuses {
		e := Error(vec.Code)
		if got := e.Error(); got != vec.Strerror {
			t.Errorf("Error(%d).Error() = %q, want the original's %q", vec.Code, got, vec.Strerror)
		}
		if got := e.Description(); got != vec.Description {
			t.Errorf("Error(%d).Description() = %q, want %q", vec.Code, got, vec.Description)
		}
		if e.Known() != (vec.CName != nil) {
			t.Errorf("Error(%d).Known() = %v, but the vectors say c_name is %v", vec.Code, e.Known(), vec.CName)
		}
		msg := e.Detail()
		if !strings.Contains(msg, vec.Description) || !strings.Contains(msg, strconv.FormatInt(vec.Code, 10)) {
			t.Errorf("Error(%d).Detail() = %q: want the description %q and the number", vec.Code, msg, vec.Description)
		}
	}
}

// Error has the original's underlying type: conversions from and to uint32
// (C.vmnet_broker_return_t in the original) keep their meaning.
func TestErrorIsUint32(t *testing.T) {
	var raw uint32 = 5
	if Error(raw) != ErrNotFound {
		t.Errorf("Error(uint32(5)) = %v", Error(raw))
	}
	if uint32(ErrInternalError) != 7 {
		t.Errorf("uint32(ErrInternalError) = %d", uint32(ErrInternalError))
	}
	if got := reflect.TypeOf(ErrNotFound).Kind(); got != reflect.Uint32 {
		t.Errorf("Error's kind is %v, want uint32", got)
	}
}

// The named constants have the upstream numbers.
func TestConstants(t *testing.T) {
	want := map[Error]int64{
		ErrXPCFailure: 1, ErrInvalidReply: 2, ErrNotAllowed: 3, ErrInvalidRequest: 4,
		ErrNotFound: 5, ErrCreateFailure: 6, ErrInternalError: 7,
	}
	for e, code := range want {
		if int64(e) != code {
			t.Errorf("%v has code %d, want %d", e, int64(e), code)
		}
	}
}

// Malformed network_info is ignored, as an older client would ignore it,
// rather than failing the acquire.
func TestMalformedNetworkInfoIsIgnored(t *testing.T) {
	for _, info := range []string{
		`"shared"`,
		`{"mode":"shared","subnet":"192.168.64.0","mask":"255.255.255.0","ipv6_prefix":"fd00::"}`,
		`{"mode":"shared","subnet":"fd00::","mask":"255.255.255.0","ipv6_prefix":"fd00::","ipv6_prefix_length":64}`,
		`{"mode":"shared","subnet":"192.168.64.0","mask":"255.255.255.0","ipv6_prefix":"fd00::","ipv6_prefix_length":"64"}`,
		`{"mode":"","subnet":"192.168.64.0","mask":"255.255.255.0","ipv6_prefix":"fd00::","ipv6_prefix_length":64}`,
	} {
		s, err := decodeAcquireReply([]byte(`{"network":{},"network_info":` + info + `}`))
		if err != nil {
			t.Fatalf("network_info %s: acquire failed: %v", info, err)
		}
		if got, ok := s.Info(); ok {
			t.Errorf("network_info %s: Info() = %+v, want none", info, got)
		}
	}
}

func TestIPv4Prefix(t *testing.T) {
	s, err := decodeAcquireReply([]byte(`{"network":{},"network_info":{"mode":"host",` +
		`"subnet":"10.1.2.0","mask":"255.255.254.0","ipv6_prefix":"fd00:1::","ipv6_prefix_length":64}}`))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info()
	if got := info.IPv4Prefix().String(); got != "10.1.2.0/23" {
		t.Errorf("IPv4Prefix() = %s, want 10.1.2.0/23", got)
	}
	if got := info.IPv6().String(); got != "fd00:1::/64" {
		t.Errorf("IPv6() = %s, want fd00:1::/64", got)
	}
}

// Errors from the socket transport can be tested with errors.Is and
// errors.As, and name the socket.
func TestTransportErrorMatching(t *testing.T) {
	err := error(&TransportError{Status: ErrXPCFailure, Socket: "/x.sock", Err: os.ErrNotExist, Hint: "start it"})
	if !errors.Is(err, ErrXPCFailure) || errors.Is(err, ErrNotFound) {
		t.Errorf("errors.Is does not see the status of %v", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("errors.Is does not see the cause of %v", err)
	}
	var code Error
	if !errors.As(err, &code) || code != ErrXPCFailure {
		t.Errorf("errors.As gives %v", code)
	}
	for _, part := range []string{"cannot communicate with the broker", "/x.sock", "start it"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("%q does not mention %q", err.Error(), part)
		}
	}
}

func TestDefaultSocketPath(t *testing.T) {
	t.Setenv(SocketEnv, "/explicit/broker.sock")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got := DefaultSocketPath(); got != "/explicit/broker.sock" {
		t.Errorf("with %s set: %q", SocketEnv, got)
	}
	t.Setenv(SocketEnv, "")
	if got := DefaultSocketPath(); got != "/run/user/1000/vmnet-broker.sock" {
		t.Errorf("with XDG_RUNTIME_DIR set: %q", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	want := "/tmp/vmnet-broker-" + strconv.Itoa(os.Geteuid()) + ".sock"
	if got := DefaultSocketPath(); got != want {
		t.Errorf("with neither set: %q, want %q", got, want)
	}
}
