package simulator_test

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/member/fsm"
	"github.com/regroup-dev/regroup/simulator"
	"github.com/regroup-dev/regroup/simulator/report"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files testdata/*.golden with this run's output")

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

// runFrom runs sc with its partition-seconds measured from since, and
// returns the result and its metrics from since on.
func runFrom(t *testing.T, sc *scenario.Scenario, since time.Duration) (*simulator.Result, simulator.Metrics) {
	t.Helper()
	res, err := simulator.Run(sc, simulator.Options{Since: since})
	if err != nil {
		t.Fatal(err)
	}
	m, err := res.Metrics.From(since)
	if err != nil {
		t.Fatal(err)
	}
	return res, m
}

// runText parses text as scenario name, runs it and returns the result
// and the trace.
func runText(t *testing.T, name, text string) (*simulator.Result, string) {
	t.Helper()
	sc, err := scenario.Parse(name, text)
	if err != nil {
		t.Fatal(err)
	}
	var trace strings.Builder
	res, err := simulator.Run(sc, simulator.Options{Trace: &trace})
	if err != nil {
		t.Fatal(err)
	}
	return res, trace.String()
}

// TestScenarios runs every shipped scenario in testdata/ and checks its
// expect lines, with the safety checks after every event and the liveness
// check after the last disturbance. Its summary and windows must match
// testdata/NAME.golden (go test ./simulator -run TestScenarios -rewrite
// writes them; review the diff like code). Each scenario runs again with
// every member speaking the next-generation protocol (NAME/next, as `sim
// run --protocol next` does), with the expect lines written for it or for
// both, against testdata/NAME.next.golden.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.sim")
	if err != nil || len(files) < 10 {
		t.Fatalf("want the shipped scenarios in testdata/, found %v (%v)", files, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".sim")
		for _, proto := range []fsm.Protocol{fsm.Classic, fsm.Next} {
			sub, want, flag := name, strings.TrimSuffix(f, ".sim")+".golden", ""
			if proto == fsm.Next {
				sub, want, flag = name+"/next", strings.TrimSuffix(f, ".sim")+".next.golden", " --protocol next"
			}
			t.Run(sub, func(t *testing.T) {
				sc := load(t, f)
				if proto == fsm.Next {
					sc.SetProtocol(fsm.Next)
				}
				res, err := simulator.Run(sc, simulator.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if !res.OK() {
					var b bytes.Buffer
					_ = report.Summary(&b, res)
					t.Errorf("%s\nreplay with: go run ./cmd/regroup sim run %s%s --trace", b.String(), f, flag)
				}
				if !res.Metrics.LivenessChecked {
					t.Errorf("the run ends before its liveness could be checked")
				}
				golden(t, want, res)
			})
		}
	}
}

// golden compares a run's summary and windows with the file at path, or
// writes them there with -rewrite.
func golden(t *testing.T, path string, res *simulator.Result) {
	t.Helper()
	var b bytes.Buffer
	if err := report.Summary(&b, res); err != nil {
		t.Fatal(err)
	}
	if err := report.Windows(&b, res); err != nil {
		t.Fatal(err)
	}
	if *rewrite {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (write it with -rewrite)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("the output differs from %s (rewrite it with -rewrite if the change is meant):\n got:\n%s\nwant:\n%s", path, got, want)
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

// TestSweep runs 50 random scenarios, and the same under the
// next-generation protocol (as "sim sweep --protocol next" does), and
// expects no violation. The long sweeps are "regroup sim sweep --seeds
// 1000" and "regroup sim sweep --seeds 1000 --protocol next"
// (docs/simulator.md).
func TestSweep(t *testing.T) {
	for _, proto := range []fsm.Protocol{fsm.Classic, fsm.Next} {
		for seed := range uint64(50) {
			sc, err := scenario.Parse(fmt.Sprintf("random-%d", seed), scenario.Random(seed))
			if err != nil {
				t.Fatal(err)
			}
			flag := ""
			if proto == fsm.Next {
				sc.SetProtocol(fsm.Next)
				flag = " --protocol next"
			}
			res, err := simulator.Run(sc, simulator.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Violations) > 0 {
				t.Errorf("%v, seed %d: %v\nreplay with: go run ./cmd/regroup sim run --random %d%s --trace", proto, seed, res.Violations, seed, flag)
			}
		}
	}
}

// TestDriftBeyondMargin: members whose clocks run up to 40% slow keep
// believing in a lease the coordinator already ended; cut off from it,
// they hold partitions that others were given, and the checker says so,
// under either protocol. Within the margin (5%) nothing overlaps.
func TestDriftBeyondMargin(t *testing.T) {
	for _, tc := range []struct {
		drift, protocol string
		seed            int
		bad             bool
	}{{"40%", "classic", 1, true}, {"5%", "classic", 1, false}, {"40%", "next", 8, true}, {"5%", "next", 8, false}} {
		sc, err := scenario.Parse("drift", fmt.Sprintf(`
seed %d
topic orders partitions=32
group g session=10s drift=%s protocol=%s
at 0s join m1..m8
at 40s partition m1..m4 for=30s
`, tc.seed, tc.drift, tc.protocol))
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
			t.Errorf("%s, drift %s: %d overlaps (violations %v)", tc.protocol, tc.drift, overlaps, res.Violations)
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

// TestNotProcessing checks the partition-seconds not processed against
// analytic expectations. A partition stops being processed when its owner
// freezes, and starts again when the member it was given to is assigned
// it: after a pause longer than the session timeout, the paused member's
// partitions are not processed from the pause until the rebalance that
// expired it, whereas unowned counts only the end of that, after its lease.
// A revocation stops processing for the callback's duration (200 ms here):
// so eager's excess over unowned is the partitions it revoked times 200 ms,
// and a crash (which revokes nothing) costs only unowned time. Windows add
// up to the totals.
func TestNotProcessing(t *testing.T) {
	sc := load(t, "testdata/gc-pause-long.sim")
	sc.Expects = nil
	res, err := simulator.Run(sc, simulator.Options{Since: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Metrics
	var expired simulator.Rebalance
	for _, r := range m.RebalanceLog {
		if r.CauseKind == "member-expired" {
			expired = r
		}
	}
	// m4 owns 6 of the 64 partitions; the 6 revoked in the follow-up to
	// its return spend 200 ms in OnRevoked. Within 0.25 p·s: assignments
	// reach the members a few milliseconds after the rebalance, and the
	// revoked partitions wait about 20 ms for their new owner.
	want := 6*(expired.End-40*time.Second).Seconds() + 6*0.2
	got, _ := m.Value(scenario.MetricNotProcessing, 20*time.Second, "")
	unowned, _ := m.Value(scenario.MetricUnowned, 20*time.Second, "")
	if math.Abs(got-want) > 0.25 {
		t.Errorf("25 s pause: %.2f partition-seconds not processed since 20s, want 6 x (%v - 40s) + 6 x 0.2s = %.2f", got, expired.End, want)
	}
	if unowned > got/4 {
		t.Errorf("25 s pause: unowned %.2f is more than a quarter of not processing %.2f: the pause is not counted", unowned, got)
	}
	sum := func(ws []float64) (s float64) {
		for _, w := range ws {
			s += w
		}
		return s
	}
	if len(m.NotProcessingWindows) != int((m.Simulated+m.Window-1)/m.Window) ||
		math.Abs(sum(m.NotProcessingWindows)-m.NotProcessingSeconds) > 1e-6 || math.Abs(sum(m.UnownedWindows)-m.UnownedSeconds) > 1e-6 {
		t.Errorf("windows %v (%v each) do not add up to %.3f and %.3f", m.NotProcessingWindows, m.Window, m.NotProcessingSeconds, m.UnownedSeconds)
	}

	for _, v := range []simulator.Variant{
		{Protocol: assignor.Eager, Assignor: "cooperative-sticky", Membership: "dynamic"},
		{Protocol: assignor.Cooperative, Assignor: "cooperative-sticky", Membership: "dynamic"},
	} {
		for _, file := range []string{"testdata/one-crash.sim", "testdata/rolling-restart.sim"} {
			sc := load(t, file)
			sc.Expects = nil
			v.Apply(sc)
			res, err := simulator.Run(sc, simulator.Options{})
			if err != nil {
				t.Fatal(err)
			}
			m := res.Metrics
			want := m.UnownedSeconds + float64(m.Revoked)*0.2
			if math.Abs(m.NotProcessingSeconds-want) > 0.01 {
				t.Errorf("%s %v: not processing %.3f, want unowned %.3f + %d revoked x 0.2s = %.3f", file, v, m.NotProcessingSeconds, m.UnownedSeconds, m.Revoked, want)
			}
		}
	}
}

// TestDisturbances: in a rolling restart of 50 members (one every 10 s,
// down 2 s), each restart is one disturbance. Dynamic members cost two
// rebalances each under eager (the leave and the join) and three under
// cooperative (the follow-up round); static members none. From 20 s on,
// the static group's partitions wait only for their member to come back:
// 4 partitions, down 2 s and rejoining, per restart. Metrics.From leaves out
// the initial join, and needs the time measured.
func TestDisturbances(t *testing.T) {
	for _, tc := range []struct {
		v          simulator.Variant
		rebalances float64
	}{
		{simulator.Variant{Protocol: assignor.Eager, Assignor: "cooperative-sticky", Membership: "dynamic"}, 2},
		{simulator.Variant{Protocol: assignor.Cooperative, Assignor: "cooperative-sticky", Membership: "dynamic"}, 3},
		{simulator.Variant{Protocol: assignor.Cooperative, Assignor: "cooperative-sticky", Membership: "static"}, 0},
	} {
		sc := load(t, "testdata/rolling-restart.sim")
		sc.Expects = nil
		tc.v.Apply(sc)
		res, err := simulator.Run(sc, simulator.Options{Since: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := res.Metrics.From(25 * time.Second); err == nil {
			t.Errorf("From a time that was not measured gave no error")
		}
		m, err := res.Metrics.From(20 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		st := m.Stats()
		if st.Count != 50 || st.RebalancesMean != tc.rebalances || m.RebalanceMax >= 6*time.Second {
			t.Errorf("%v: %d disturbances, %.2f rebalances each, longest rebalance %v; want 50, %.0f each, and no initial join", tc.v, st.Count, st.RebalancesMean, m.RebalanceMax, tc.rebalances)
		}
		if tc.v.Membership == "static" {
			// 200 partitions x 2 s down, the rejoin's round trips, and 200
			// revocations of 200 ms.
			if lo, hi := 400.0+40, 410.0+40; m.NotProcessingSeconds < lo || m.NotProcessingSeconds > hi {
				t.Errorf("static: %.1f partition-seconds not processed from 20s, want %.0f to %.0f", m.NotProcessingSeconds, lo, hi)
			}
		}
	}
}
