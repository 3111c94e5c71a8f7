// SPDX-License-Identifier: Apache-2.0

package vmnet_broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"unsafe"
)

// Mode is the operating mode of a vmnet network.
type Mode string

// The modes the broker creates today. A newer broker may report others.
const (
	// ModeShared: NAT to the outside world through the host.
	ModeShared Mode = "shared"
	// ModeHost: host-only; guests and host reach each other, nothing else.
	ModeHost Mode = "host"
)

// NetworkInfo describes the addresses of a network. The broker of this
// project sends it with every successful acquire; the original C broker does
// not, and then Serialization.Info reports false.
type NetworkInfo struct {
	// Mode is "shared" or "host".
	Mode Mode
	// Subnet is the IPv4 network address, for example 192.168.64.0.
	Subnet netip.Addr
	// Mask is the IPv4 netmask, for example 255.255.255.0.
	Mask netip.Addr
	// IPv6Prefix is the IPv6 prefix, for example fd9c:1a2b:3c4d:1::.
	IPv6Prefix netip.Addr
	// IPv6PrefixLength is the IPv6 prefix length in bits.
	IPv6PrefixLength int
}

// IPv4Prefix combines Subnet and Mask, for example 192.168.64.0/24. It
// returns the zero Prefix if the mask is not a contiguous netmask.
func (n NetworkInfo) IPv4Prefix() netip.Prefix {
	if !n.Mask.Is4() || !n.Subnet.Is4() {
		return netip.Prefix{}
	}
	m := n.Mask.As4()
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	ones := 0
	for v&0x80000000 != 0 {
		ones++
		v <<= 1
	}
	if v != 0 {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(n.Subnet, ones)
}

// IPv6 combines IPv6Prefix and IPv6PrefixLength, for example
// fd9c:1a2b:3c4d:1::/64.
func (n NetworkInfo) IPv6() netip.Prefix {
	return netip.PrefixFrom(n.IPv6Prefix, n.IPv6PrefixLength)
}

// Serialization is a network returned by the broker.
//
// From the XPC transport (macOS with cgo) it holds the vmnet serialization,
// an xpc_object_t; see Raw. From the socket transport it holds the
// serialization the development broker sent, as JSON; see JSON.
type Serialization struct {
	ptr     unsafe.Pointer
	json    json.RawMessage
	info    NetworkInfo
	hasInfo bool
}

// Raw returns the serialization as an xpc_object_t, ready for
// vmnet_network_create_with_serialization.
//
// The object belongs to the Serialization, which releases it when it becomes
// unreachable. Keep the Serialization reachable while you use the pointer
// (runtime.KeepAlive(s) after the last use), or take your own reference with
// xpc_retain and release it with xpc_release when done.
//
// Raw returns nil for a Serialization from the socket transport, which has
// no XPC object; use JSON there.
func (s *Serialization) Raw() unsafe.Pointer {
	return s.ptr
}

// JSON returns the serialization sent over the socket transport (with the
// simulated backend, an object describing the simulated network). It is
// opaque: compare it, log it, but do not rely on its contents. It is nil
// for a Serialization from the XPC transport.
func (s *Serialization) JSON() json.RawMessage {
	return s.json
}

// Info returns the network's addresses, and false when the broker did not
// send them (the original C broker never does).
func (s *Serialization) Info() (NetworkInfo, bool) {
	return s.info, s.hasInfo
}

// StatusReport is the broker's answer to Client.Status. Fields may be added
// in later versions; none are removed or change meaning.
type StatusReport struct {
	Version                   string   `json:"version"`
	PID                       int      `json:"pid"`
	Backend                   string   `json:"backend"`
	UptimeSeconds             float64  `json:"uptime_seconds"`
	NetworkIdleTimeoutSeconds float64  `json:"network_idle_timeout_seconds"`
	ExitIdleTimeoutSeconds    *float64 `json:"exit_idle_timeout_seconds"` // nil: the broker never exits by itself
	// Networks are the live networks, sorted by name.
	Networks []NetworkStatus `json:"networks"`
	// Peers are the connected clients the caller may see, sorted by id.
	Peers []PeerStatus `json:"peers"`
	// PeerCount counts every connected client, listed or not.
	PeerCount int `json:"peer_count"`
	// HiddenPeers counts the clients not listed in Peers.
	HiddenPeers int      `json:"hidden_peers"`
	Counters    Counters `json:"counters"`
}

// NetworkStatus is one live network in a StatusReport.
type NetworkStatus struct {
	Name             string     `json:"name"`
	Description      string     `json:"description,omitempty"`
	Mode             Mode       `json:"mode"`
	Subnet           netip.Addr `json:"subnet"`
	Mask             netip.Addr `json:"mask"`
	IPv6Prefix       netip.Addr `json:"ipv6_prefix"`
	IPv6PrefixLength int        `json:"ipv6_prefix_length"`
	// Holders is the number of clients holding the network.
	Holders    int     `json:"holders"`
	AgeSeconds float64 `json:"age_seconds"`
	// IdleForSeconds and RemovalInSeconds are nil while the network is held.
	IdleForSeconds   *float64 `json:"idle_for_seconds"`
	RemovalInSeconds *float64 `json:"removal_in_seconds"`
}

// PeerStatus is one connected client in a StatusReport.
type PeerStatus struct {
	ID  uint64 `json:"id"`
	PID int    `json:"pid"`
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// Networks are the names the client holds, sorted.
	Networks         []string `json:"networks"`
	ConnectedSeconds float64  `json:"connected_seconds"`
}

// Counters are totals since the broker started.
type Counters struct {
	Connects    uint64 `json:"connects"`
	Disconnects uint64 `json:"disconnects"`
	Requests    uint64 `json:"requests"`
	Acquires    uint64 `json:"acquires"`
	Releases    uint64 `json:"releases"`
	Creations   uint64 `json:"creations"`
	Removals    uint64 `json:"removals"`
	// Failures counts failed requests by status name ("not_found", ...).
	Failures map[string]uint64 `json:"failures"`
}

// Network returns the entry for the named network, or nil.
func (r *StatusReport) Network(name string) *NetworkStatus {
	for i := range r.Networks {
		if r.Networks[i].Name == name {
			return &r.Networks[i]
		}
	}
	return nil
}

// errNotObject and friends describe why a reply is invalid.
var (
	errNotObject      = errors.New("reply is not a JSON object")
	errNoNetwork      = errors.New("reply has neither 'error' nor 'network'")
	errNoStatusReport = errors.New("reply has neither 'error' nor 'status'")
)

// parseReply reads one reply line as a JSON object and applies the upstream
// rule for 'error': an integer other than 0 is the status; absent, 0, or a
// value of another type (which xpc_dictionary_get_int64 reads as 0) means
// no error.
func parseReply(line []byte) (map[string]json.RawMessage, Error, error) {
	var obj map[string]json.RawMessage
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return nil, 0, errNotObject
	}
	if err := json.Unmarshal(line, &obj); err != nil {
		return nil, 0, fmt.Errorf("reply is not valid JSON: %w", err)
	}
	if raw, ok := obj["error"]; ok {
		if code, ok := jsonInt(raw); ok && code != 0 {
			return obj, statusFromCode(code), nil
		}
	}
	return obj, 0, nil
}

// jsonInt parses a JSON integer. Strings, fractions, exponents and numbers
// out of the int64 range are not integers.
func jsonInt(raw json.RawMessage) (int64, bool) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// decodeAcquireReply turns an acquire reply line into a Serialization or an
// error. Errors are bare Error values, or errors whose status is
// ErrInvalidReply.
func decodeAcquireReply(line []byte) (*Serialization, error) {
	obj, status, err := parseReply(line)
	if err != nil {
		return nil, invalidReply(err)
	}
	if status != 0 {
		return nil, status
	}
	network, ok := obj["network"]
	if !ok {
		return nil, invalidReply(errNoNetwork)
	}
	s := &Serialization{json: append(json.RawMessage(nil), network...)}
	if raw, ok := obj["network_info"]; ok {
		s.info, s.hasInfo = decodeNetworkInfo(raw)
	}
	return s, nil
}

// decodeNetworkInfo reads network_info. Like older clients, which ignore the
// key, a malformed value is dropped rather than failing the acquire.
func decodeNetworkInfo(raw json.RawMessage) (NetworkInfo, bool) {
	var wire struct {
		Mode             string          `json:"mode"`
		Subnet           string          `json:"subnet"`
		Mask             string          `json:"mask"`
		IPv6Prefix       string          `json:"ipv6_prefix"`
		IPv6PrefixLength json.RawMessage `json:"ipv6_prefix_length"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		return NetworkInfo{}, false
	}
	length, ok := jsonInt(wire.IPv6PrefixLength)
	if !ok {
		return NetworkInfo{}, false
	}
	return makeNetworkInfo(wire.Mode, wire.Subnet, wire.Mask, wire.IPv6Prefix, length)
}

// makeNetworkInfo validates the fields of network_info, as received over
// either transport.
func makeNetworkInfo(mode, subnet, mask, prefix string, prefixLen int64) (NetworkInfo, bool) {
	var info NetworkInfo
	var err error
	if mode == "" {
		return NetworkInfo{}, false
	}
	info.Mode = Mode(mode)
	if info.Subnet, err = netip.ParseAddr(subnet); err != nil || !info.Subnet.Is4() {
		return NetworkInfo{}, false
	}
	if info.Mask, err = netip.ParseAddr(mask); err != nil || !info.Mask.Is4() {
		return NetworkInfo{}, false
	}
	if info.IPv6Prefix, err = netip.ParseAddr(prefix); err != nil || !info.IPv6Prefix.Is6() || info.IPv6Prefix.Is4In6() {
		return NetworkInfo{}, false
	}
	if prefixLen < 0 || prefixLen > 128 {
		return NetworkInfo{}, false
	}
	info.IPv6PrefixLength = int(prefixLen)
	return info, true
}

// decodeReleaseReply reads the reply to release: success is any object
// without a non-zero error (the broker sends {}).
func decodeReleaseReply(line []byte) error {
	_, status, err := parseReply(line)
	if err != nil {
		return invalidReply(err)
	}
	if status != 0 {
		return status
	}
	return nil
}

// decodeStatusReply reads the reply to status.
func decodeStatusReply(line []byte) (*StatusReport, error) {
	obj, status, err := parseReply(line)
	if err != nil {
		return nil, invalidReply(err)
	}
	if status != 0 {
		return nil, status
	}
	raw, ok := obj["status"]
	if !ok {
		return nil, invalidReply(errNoStatusReport)
	}
	var report StatusReport
	if err := json.Unmarshal(raw, &report); err != nil {
		return nil, invalidReply(fmt.Errorf("cannot read the status report: %w", err))
	}
	return &report, nil
}

// invalidReply wraps a decoding problem. The transport fills in the socket.
func invalidReply(err error) error {
	return &TransportError{Status: ErrInvalidReply, Err: err}
}
