package fsm

import (
	"testing"
	"time"

	"github.com/regroup-dev/regroup/assignor"
)

// TestDefaults checks that WithDefaults fills in what its documentation
// (and member.Config's) says, keeps values already set, and that a
// configuration filled with the defaults passes New's own validation.
func TestDefaults(t *testing.T) {
	a, err := assignor.Lookup("cooperative-sticky")
	if err != nil {
		t.Fatal(err)
	}
	base := Config{GroupID: "g", Topics: []string{"orders"}, Assignors: []assignor.Assignor{a}}

	got := base.WithDefaults()
	want := base
	want.SessionTimeout, want.RebalanceTimeout = 20*time.Second, 30*time.Second
	want.HeartbeatInterval, want.Margin = 3*time.Second, 2*time.Second
	want.MinBackoff, want.MaxBackoff = 100*time.Millisecond, 5*time.Second
	if d := durations(got); d != durations(want) {
		t.Errorf("defaults: got %v, want %v", d, durations(want))
	}
	if _, err := New(got); err != nil {
		t.Errorf("New refuses the defaults: %v", err)
	}
	if !got.RidesFailover(FailoverBudget) {
		t.Errorf("the defaults do not ride through a failover of %v", FailoverBudget)
	}
	for _, budget := range []time.Duration{FailoverBudget, 10 * time.Second, 30 * time.Second} {
		need := SessionToRide(budget)
		at, below := base, base
		at.SessionTimeout, below.SessionTimeout = need, need-10*time.Millisecond
		if !at.WithDefaults().RidesFailover(budget) || below.WithDefaults().RidesFailover(budget) {
			t.Errorf("SessionToRide(%v) = %v, which RidesFailover does not agree is the shortest", budget, need)
		}
	}
	short := base
	short.SessionTimeout = 10 * time.Second
	if short.WithDefaults().RidesFailover(FailoverBudget) {
		t.Errorf("a 10 s session with a 3 s held heartbeat rides through a failover of %v, but its lease can be down to 3 s", FailoverBudget)
	}

	// The values that depend on the session timeout, across its range.
	for _, session := range []time.Duration{30 * time.Millisecond, 200 * time.Millisecond, time.Second, 6 * time.Second, 9 * time.Second, 15 * time.Second, 45 * time.Second, 5 * time.Minute} {
		c := base
		c.SessionTimeout = session
		c = c.WithDefaults()
		wantHB := min(3*time.Second, session/3)
		wantMax := max(100*time.Millisecond, min(5*time.Second, session/3))
		if c.HeartbeatInterval != wantHB || c.Margin != session/10 || c.MinBackoff != 100*time.Millisecond || c.MaxBackoff != wantMax {
			t.Errorf("session %v: got %v, want heartbeat %v, margin %v, backoff 100ms..%v", session, durations(c), wantHB, session/10, wantMax)
		}
		if _, err := New(c); err != nil {
			t.Errorf("session %v: New refuses the defaults: %v", session, err)
		}
	}

	// Values already set are kept; defaults derived from them follow them.
	set := base
	set.SessionTimeout, set.RebalanceTimeout, set.HeartbeatInterval = 20*time.Second, time.Minute, time.Second
	set.Margin, set.MinBackoff, set.MaxBackoff = 500*time.Millisecond, time.Second, 2*time.Second
	if d := durations(set.WithDefaults()); d != durations(set) {
		t.Errorf("set values changed: got %v, want %v", d, durations(set))
	}
	big := base
	big.MinBackoff = 8 * time.Second
	if c := big.WithDefaults(); c.MaxBackoff != 8*time.Second {
		t.Errorf("MinBackoff 8s: MaxBackoff %v, want 8s (never below MinBackoff)", c.MaxBackoff)
	}
}

// durations lists a configuration's durations, for comparing.
func durations(c Config) [6]time.Duration {
	return [6]time.Duration{c.SessionTimeout, c.RebalanceTimeout, c.HeartbeatInterval, c.Margin, c.MinBackoff, c.MaxBackoff}
}
