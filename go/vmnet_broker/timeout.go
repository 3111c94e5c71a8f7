// SPDX-License-Identifier: Apache-2.0

package vmnet_broker

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"time"
)

// TimeoutEnv names the environment variable with the timeout, in decimal
// seconds, of every connection made without an explicit one: Connect,
// ConnectSocket and AcquireNetwork. Unset or empty means DefaultTimeout. The
// rule is the same in every client of this project
// (docs/client-contract.md). (An addition of this package.)
const TimeoutEnv = "VMNET_BROKER_TIMEOUT"

// MinTimeout and MaxTimeout bound every timeout, from the environment or
// given explicitly: a millisecond (less could not be told from a broker
// that never answers) and a day.
const (
	MinTimeout = time.Millisecond
	MaxTimeout = 24 * time.Hour
)

// parseTimeout reads decimal seconds within the bounds.
func parseTimeout(text string) (time.Duration, bool) {
	seconds, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(seconds) {
		return 0, false
	}
	if seconds < MinTimeout.Seconds() || seconds > MaxTimeout.Seconds() {
		return 0, false
	}
	return time.Duration(seconds * float64(time.Second)), true
}

// envTimeout is the timeout of a connection made without an explicit one:
// $VMNET_BROKER_TIMEOUT, or DefaultTimeout when it is unset or empty. Any
// other value is an error with the status ErrInvalidRequest, returned before
// the broker is contacted.
func envTimeout() (time.Duration, error) {
	value := os.Getenv(TimeoutEnv)
	if value == "" {
		return DefaultTimeout, nil
	}
	timeout, ok := parseTimeout(value)
	if !ok {
		return 0, &TransportError{
			Status: ErrInvalidRequest,
			Err: fmt.Errorf("%s=%q is not a valid timeout: give seconds from %g to %g",
				TimeoutEnv, value, MinTimeout.Seconds(), MaxTimeout.Seconds()),
		}
	}
	return timeout, nil
}

// checkTimeout refuses an explicit timeout outside the bounds.
func checkTimeout(timeout time.Duration) error {
	if timeout < MinTimeout || timeout > MaxTimeout {
		return &TransportError{
			Status: ErrInvalidRequest,
			Err: fmt.Errorf("a timeout of %v is not valid: give from %v to %v",
				timeout, MinTimeout, MaxTimeout),
		}
	}
	return nil
}

// clampTimeout brings timeout within the bounds, for setters that cannot
// report an error.
func clampTimeout(timeout time.Duration) time.Duration {
	return min(max(timeout, MinTimeout), MaxTimeout)
}
