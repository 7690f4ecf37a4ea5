package simulator_test

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/simulator"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// TestClassicHeartbeats checks the classic baseline against the analytic
// expectation. In one-join.sim, run eagerly, an eleventh member joins a
// group of ten at a random phase of their heartbeats (every 3 s, in step since the first sync answered them
// together). With held heartbeats the rebalance notice reaches every member
// at once, in the answer to the heartbeat the coordinator holds; a classic
// member learns of it at its next heartbeat, uniformly up to an interval
// later. So, seed by seed, the join settles later under classic by the
// notice's wait: half an interval, 1.5 s, on average, never more than an
// interval. The mean difference's 95% interval must contain 1.5 s.
func TestClassicHeartbeats(t *testing.T) {
	b, err := os.ReadFile("testdata/one-join.sim")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	settled := func(seed uint64, classic bool) time.Duration {
		sc := load(t, "testdata/one-join.sim")
		sc.Seed, sc.Expects = seed, nil // written for cooperative rounds
		simulator.Variant{Protocol: assignor.Eager, Assignor: "cooperative-sticky", Classic: classic}.Apply(sc)
		simulator.Jitter(sc, 3*time.Second)
		res, m := runFrom(t, sc, 30*time.Second)
		if !res.OK() {
			t.Fatalf("seed %d, classic %v: violations %v, failed %v", seed, classic, res.Violations, res.Failed)
		}
		if m.Rebalances != 1 {
			t.Fatalf("seed %d, classic %v: %d rebalances after the join, want 1 (eager)", seed, classic, m.Rebalances)
		}
		return m.Stats().SettledMax
	}
	// The scenario language sets the same thing per group or member, and
	// compare's protocols name it.
	sc, err := scenario.Parse("one-join.sim", text+"at 61s join m12 heartbeats=classic\n")
	if err != nil {
		t.Fatal(err)
	}
	if j := sc.Actions[len(sc.Actions)-1].Do.(scenario.Join); !j.Config.ClassicHeartbeats || sc.Groups[0].Member.ClassicHeartbeats {
		t.Fatalf("heartbeats=classic on m12's join: %+v, group %+v", j.Config, sc.Groups[0].Member)
	}
	vs, _, err := simulator.Variants([]string{"cooperative", "classic-cooperative"}, []string{"cooperative-sticky"}, nil)
	if err != nil || len(vs) != 2 || vs[0].Classic || !vs[1].Classic || vs[1].ProtocolName() != "classic-cooperative" {
		t.Fatalf("Variants: %v, %v", vs, err)
	}
	const seeds = 200
	var diffs []float64
	for seed := range uint64(seeds) {
		held, classic := settled(seed, false), settled(seed, true)
		if held > 300*time.Millisecond {
			t.Errorf("seed %d: held heartbeats settled the join in %v, want the 200 ms revocation and a few round trips", seed, held)
		}
		d := (classic - held).Seconds()
		if d < 0 || d > 3.1 {
			t.Errorf("seed %d: classic settled %v after held heartbeats (%v against %v), want within one interval (3 s)", seed, d, classic, held)
		}
		diffs = append(diffs, d)
	}
	var sum, sq float64
	for _, d := range diffs {
		sum += d
	}
	mean := sum / seeds
	for _, d := range diffs {
		sq += (d - mean) * (d - mean)
	}
	half := 1.972 * math.Sqrt(sq/(seeds-1)/seeds) // Student's t, 199 degrees of freedom
	if mean-half > 1.5 || mean+half < 1.5 {
		t.Errorf("classic's notice waits %.3f s ± %.3f more than held heartbeats' on average, want an interval around half the heartbeat interval, 1.5 s", mean, half)
	}
	t.Logf("classic's notice waits %.3f s ± %.3f more on average (95%% interval); expected 1.5 s", mean, half)
}
