// Package waitfor is the tests' one way to wait for a condition: poll it
// until it holds, with a generous bound that only turns a hang into a
// failure and is not a timing assumption.
package waitfor

import (
	"errors"
	"testing"
	"time"
)

// Bound is how long Until waits before it fails the test.
const Bound = 60 * time.Second

// ErrHopeless marks a condition that waiting cannot make true (a safety
// violation, say): Until fails at once when cond returns an error wrapping
// it.
var ErrHopeless = errors.New("waiting cannot fix this")

// Until calls cond every 20 ms until it returns nil, and fails t if that
// has not happened within Bound or cond returned an error wrapping
// ErrHopeless. what names the condition in the failure.
func Until(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(Bound)
	for {
		err := cond()
		if err == nil {
			return
		}
		if errors.Is(err, ErrHopeless) {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, Bound, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
