// Package testpoll waits in tests for a condition that the system reaches on its
// own time (a controller's write, a speaker's takeover), reporting the last state
// seen when it does not.
package testpoll

import (
	"testing"
	"time"
)

// Interval is how often Until checks: short against the latencies under test,
// long enough not to load the API server it often asks.
const Interval = 20 * time.Millisecond

// Until calls cond every Interval until it reports true, and fails the test after
// timeout with what was awaited and the state cond last described.
func Until(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", timeout, what, state)
		}
		time.Sleep(Interval)
	}
}
