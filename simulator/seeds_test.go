package simulator_test

import (
	"math"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/simulator"
)

// TestSummarize checks the statistics against values worked out by hand:
// for 1..10, the mean is 5.5, the median 5.5, the 95th percentile 9.55 and
// the 99th 9.91 (linear interpolation), and the 95% interval 5.5 ± 2.262 ×
// 3.0277/√10 = [3.334, 7.666].
func TestSummarize(t *testing.T) {
	var ms []simulator.Metrics
	for i := 1; i <= 10; i++ {
		ms = append(ms, simulator.Metrics{Rebalances: i})
	}
	st := simulator.Summarize(ms)
	if st[0].Metric != "rebalances" || len(st) != len(simulator.StatMetrics()) {
		t.Fatalf("stats %+v", st)
	}
	got, want := st[0], simulator.Stat{Metric: "rebalances", N: 10, Mean: 5.5, P50: 5.5, P95: 9.55, P99: 9.91, Lo: 3.334, Hi: 7.666}
	for _, c := range [][2]float64{{got.Mean, want.Mean}, {got.P50, want.P50}, {got.P95, want.P95}, {got.P99, want.P99}, {got.Lo, want.Lo}, {got.Hi, want.Hi}} {
		if math.Abs(c[0]-c[1]) > 0.001 {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	// A run that never settled has no time to stable.
	one := simulator.Summarize([]simulator.Metrics{{Stable: false, TimeToStable: -1}, {Stable: true, TimeToStable: 2 * time.Second}})
	for _, s := range one {
		if s.Metric == "stable" && (s.N != 1 || s.Mean != 2 || s.Lo != 2 || s.Hi != 2) {
			t.Errorf("stable over one settled run of two: %+v", s)
		}
	}
}

// TestJitter: the offset is drawn from [0, d] by the seed, the same for the
// same seed; actions at 0s stay.
func TestJitter(t *testing.T) {
	offsets := map[time.Duration]bool{}
	for seed := range uint64(20) {
		sc := load(t, "testdata/one-crash.sim")
		sc.Seed = seed
		before := sc.Actions[len(sc.Actions)-1].At
		off := simulator.Jitter(sc, 3*time.Second)
		again := load(t, "testdata/one-crash.sim")
		again.Seed = seed
		if off < 0 || off > 3*time.Second || simulator.Jitter(again, 3*time.Second) != off {
			t.Fatalf("seed %d: offset %v, want the same in [0, 3s] each time", seed, off)
		}
		if sc.Actions[0].At != 0 || sc.Actions[len(sc.Actions)-1].At != before+off {
			t.Fatalf("seed %d: actions %v, want the join at 0s and the crash moved by %v", seed, sc.Actions, off)
		}
		offsets[off] = true
	}
	if len(offsets) < 15 {
		t.Errorf("20 seeds gave %d offsets", len(offsets))
	}
}

// TestCrashOverSeeds checks a crash's cost against the analytic
// expectation: a member that owns P partitions and crashes at a random
// phase of its heartbeats (every 3 s, session 10 s) leaves them without an
// owner for the session timeout less the time since its last heartbeat,
// on average P x (session - heartbeat/2) = 7 x 8.5 s = 59.5
// partition-seconds. The runs' 95% interval must contain it.
func TestCrashOverSeeds(t *testing.T) {
	var ms []simulator.Metrics
	for seed := range uint64(60) {
		sc := load(t, "testdata/one-crash.sim")
		sc.Seed = seed
		simulator.Jitter(sc, 3*time.Second)
		_, m := runFrom(t, sc, 30*time.Second)
		if m.Moved != 7 {
			t.Fatalf("seed %d: %d partitions moved, want the crashed member's 7", seed, m.Moved)
		}
		ms = append(ms, m)
	}
	for _, s := range simulator.Summarize(ms) {
		if s.Metric == "unowned" && (s.Lo > 59.5 || s.Hi < 59.5 || s.P99 > 70.5) {
			t.Errorf("unowned after a crash: %+v, want a 95%% interval around 7 x 8.5 s = 59.5 and nothing above 7 x 10 s", s)
		}
	}
}
