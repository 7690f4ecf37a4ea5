package simulator

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/member/fsm"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// testSim parses text and sets up its run, not started.
func testSim(t *testing.T, text string) *sim {
	t.Helper()
	sc, err := scenario.Parse(t.Name(), text)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSim(sc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLivenessCheck: with a liveness bound shorter than the initial
// rebalance, the run reports one liveness violation; with the real bound,
// none.
func TestLivenessCheck(t *testing.T) {
	for _, tc := range []struct {
		bound time.Duration
		want  int
	}{{time.Second, 1}, {0, 0}} {
		s := testSim(t, "topic orders partitions=8\nat 0s join m1..m3\nrun until=1m\n")
		if tc.bound > 0 {
			s.bound = int64(tc.bound)
		}
		res, err := s.run()
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, v := range res.Violations {
			if v.Kind == "liveness" {
				got++
			}
		}
		if got != tc.want || len(res.Violations) != got {
			t.Errorf("bound %v: violations %v, want %d liveness violations", tc.bound, res.Violations, tc.want)
		}
	}
}

// TestClockConversion: toGlobal returns the first virtual instant at which
// a drifting clock reads at least the given time.
func TestClockConversion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		p := &process{rate: (rng.Float64()*2 - 1) * 0.5}
		if rng.IntN(4) == 0 {
			p.rate = 0
		}
		l := rng.Int64N(int64(2 * time.Hour))
		g := p.toGlobal(l)
		if p.localNow(g) < l || (g > 0 && p.localNow(g-1) >= l) {
			t.Fatalf("rate %v: toGlobal(%d) = %d, local there %d, one earlier %d", p.rate, l, g, p.localNow(g), p.localNow(g-1))
		}
	}
}

// TestT975 compares the expansion of Student's t beyond the table with
// published values.
func TestT975(t *testing.T) {
	for df, want := range map[int]float64{30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980, 1000: 1.962} {
		if got := t975(df); math.Abs(got-want) > 0.001 {
			t.Errorf("t975(%d) = %.4f, want %.3f", df, got, want)
		}
	}
}

// epochs is a member machine whose generation the test sets.
type epochs struct {
	fsm.Machine
	gen int32
}

func (e *epochs) Generation() int32 { return e.gen }

// TestNextEpochCheck: a next-generation member's epoch may start again
// from 0 (it rejoins after being fenced or removed), but an epoch it was
// given never goes back: 3, 0, 5 passes; then 4 is a generation violation.
func TestNextEpochCheck(t *testing.T) {
	s := testSim(t, "topic orders partitions=8\ngroup g protocol=next\nat 0s join m1\nrun until=1s\n")
	m := &epochs{}
	p := &process{node: s.nodes[0], inc: 1, fsm: m, maxGen: -1, leaderGen: -1}
	for i, gen := range []int32{3, 0, 5, 5, 4} {
		m.gen = gen
		s.checkMember(p)
		if want := i == 4; (len(s.violations) > 0) != want {
			t.Fatalf("after epochs %v: violations %v", []int32{3, 0, 5, 5, 4}[:i+1], s.violations)
		}
	}
	if v := s.violations[0]; v.Kind != "generation" || !strings.Contains(v.Detail, "from generation 5 to 4") {
		t.Errorf("violation %v", v)
	}
}
