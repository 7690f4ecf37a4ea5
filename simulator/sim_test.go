package simulator_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/simulator"
	"github.com/regroup-dev/regroup/simulator/report"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

func load(t *testing.T, path string) *scenario.Scenario {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenario.Parse(filepath.Base(path), string(b))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestScenarios runs every shipped scenario in testdata/ and checks its
// expect lines, with the safety checks after every event and the liveness
// check after the last disturbance.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.sim")
	if err != nil || len(files) < 10 {
		t.Fatalf("want the shipped scenarios in testdata/, found %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".sim"), func(t *testing.T) {
			res, err := simulator.Run(load(t, f), simulator.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK() {
				var b bytes.Buffer
				_ = report.Summary(&b, res)
				t.Errorf("%s\nreplay with: go run ./cmd/regroup sim run %s --trace", b.String(), f)
			}
			if !res.Metrics.LivenessChecked {
				t.Errorf("the run ends before its liveness could be checked")
			}
		})
	}
}

func traceHash(t *testing.T, sc *scenario.Scenario) (string, *simulator.Result) {
	t.Helper()
	h := sha256.New()
	res, err := simulator.Run(sc, simulator.Options{Trace: h, Messages: true})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), res
}

// TestDeterminism runs scenarios twice with the same seed and compares the
// hashes of their traces (every event and message); another seed must
// give another trace.
func TestDeterminism(t *testing.T) {
	for _, sc := range []func() *scenario.Scenario{
		func() *scenario.Scenario { return load(t, "testdata/failover-during-rebalance.sim") },
		func() *scenario.Scenario { return load(t, "testdata/gc-pause-long.sim") },
		func() *scenario.Scenario {
			// Random scenario 11 has network loss, drift and slow callbacks.
			s, err := scenario.Parse("random-11", scenario.Random(11))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	} {
		a, ra := traceHash(t, sc())
		b, rb := traceHash(t, sc())
		if a != b || ra.TraceHash != rb.TraceHash {
			t.Errorf("%s: two runs with seed %d gave different traces: %s and %s", ra.Scenario, ra.Seed, a, b)
		}
		if a != ra.TraceHash {
			t.Errorf("%s: Result.TraceHash %s is not the hash of the trace %s", ra.Scenario, ra.TraceHash, a)
		}
		other := sc()
		other.Seed++
		if c, _ := traceHash(t, other); c == a {
			t.Errorf("%s: seeds %d and %d gave the same trace", ra.Scenario, ra.Seed, other.Seed)
		}
	}
}

// TestSweep runs 50 random scenarios and expects no violation. The long
// sweep is "regroup sim sweep --seeds 1000" (docs/simulator.md).
func TestSweep(t *testing.T) {
	for seed := range uint64(50) {
		sc, err := scenario.Parse(fmt.Sprintf("random-%d", seed), scenario.Random(seed))
		if err != nil {
			t.Fatal(err)
		}
		res, err := simulator.Run(sc, simulator.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Violations) > 0 {
			t.Errorf("seed %d: %v\nreplay with: go run ./cmd/regroup sim run --random %d --trace", seed, res.Violations, seed)
		}
	}
}

// TestDriftBeyondMargin: members whose clocks run up to 40% slow keep
// believing in a lease the coordinator already ended; cut off from it,
// they hold partitions that others were given, and the checker says so.
// Within the margin (5%) nothing overlaps.
func TestDriftBeyondMargin(t *testing.T) {
	for _, tc := range []struct {
		drift string
		bad   bool
	}{{"40%", true}, {"5%", false}} {
		sc, err := scenario.Parse("drift", `
topic orders partitions=32
group g session=10s drift=`+tc.drift+`
at 0s join m1..m8
at 40s partition m1..m4 for=30s
`)
		if err != nil {
			t.Fatal(err)
		}
		res, err := simulator.Run(sc, simulator.Options{})
		if err != nil {
			t.Fatal(err)
		}
		overlaps := 0
		for _, v := range res.Violations {
			if v.Kind == "two-owners" {
				overlaps++
			}
		}
		if (overlaps > 0) != tc.bad {
			t.Errorf("drift %s: %d overlaps (violations %v)", tc.drift, overlaps, res.Violations)
		}
	}
}

// TestFastRebalanceNotice: members learn that a rebalance started from
// their held heartbeat, which the coordinator answers at once with
// REBALANCE_IN_PROGRESS instead of at the end of its hold: the rebalance
// after a crash completes within a few round trips, not a heartbeat
// interval (3 s).
func TestFastRebalanceNotice(t *testing.T) {
	res, err := simulator.Run(load(t, "testdata/one-crash.sim"), simulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range res.Metrics.RebalanceLog {
		if r.CauseKind == "member-expired" {
			found = true
			if d := r.End - r.Start; d > 100*time.Millisecond {
				t.Errorf("the rebalance after the crash took %v, want a few round trips", d)
			}
		}
	}
	if !found {
		t.Fatalf("no rebalance after the crash: %+v", res.Metrics.RebalanceLog)
	}
}
