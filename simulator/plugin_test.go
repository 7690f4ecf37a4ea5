package simulator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/simulator"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// firstTaker is a plug-in assignor for TestPluggedInAssignor: it gives
// every partition to the member whose id sorts first, eagerly.
type firstTaker struct{}

func (firstTaker) Name() string { return "first-taker" }
func (firstTaker) Protocols() []assignor.RebalanceProtocol {
	return []assignor.RebalanceProtocol{assignor.Eager}
}
func (firstTaker) Assign(in *assignor.Input) (assignor.Plan, error) {
	plan := assignor.Plan{}
	for i, m := range in.Members {
		plan[m.ID] = map[string][]int32{}
		if i > 0 {
			continue
		}
		for t, n := range in.Topics {
			for p := range n {
				plan[m.ID][t] = append(plan[m.ID][t], p)
			}
		}
	}
	return plan, nil
}

func init() { assignor.Register("first-taker", func() assignor.Assignor { return firstTaker{} }) }

// TestPluggedInAssignor: an assignor registered through the Go API runs in
// a scenario and as a compared variant; its plans are the ones the members
// get (one member owns everything).
func TestPluggedInAssignor(t *testing.T) {
	vs, skipped, err := simulator.Variants([]string{"eager", "cooperative"}, []string{"first-taker"}, nil)
	if err != nil || len(vs) != 1 || len(skipped) != 1 {
		t.Fatalf("variants %v, skipped %v, %v: want the eager one, and the cooperative one skipped", vs, skipped, err)
	}
	res, trace := runText(t, "plug", "topic orders partitions=12\ngroup g assignors=first-taker\nat 0s join m1..m4\n")
	owners := 0
	for _, owned := range res.Assignment {
		if len(owned) > 0 {
			owners++
			if len(owned) != 12 {
				t.Errorf("the owner owns %v, want all 12 partitions", owned)
			}
		}
	}
	if !res.OK() || owners != 1 || !strings.Contains(trace, "protocol first-taker") {
		t.Errorf("ok %v, %d owners (%v), want one, chosen by first-taker", res.OK(), owners, res.Assignment)
	}
}

// TestAssignTime: a leader whose assignor takes 2 s sends its plan 2 s
// later, so the rebalance after a crash takes 2 s more than its few round
// trips; as a swept parameter it does the same.
func TestAssignTime(t *testing.T) {
	took := func(sc *scenario.Scenario) time.Duration {
		sc.Expects = nil
		res, err := simulator.Run(sc, simulator.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Metrics.RebalanceLog {
			if r.CauseKind == "member-expired" {
				return r.End - r.Start
			}
		}
		t.Fatalf("no rebalance after the crash: %v", res.Metrics.RebalanceLog)
		return 0
	}
	base := took(load(t, "testdata/one-crash.sim"))
	sc := load(t, "testdata/one-crash.sim")
	if err := sc.Set("assign-time", "2s"); err != nil {
		t.Fatal(err)
	}
	if slow := took(sc); (slow - base - 2*time.Second).Abs() > 50*time.Millisecond {
		t.Errorf("the rebalance took %v with a 2 s assignor and %v without, want 2 s more (within the network's delays)", slow, base)
	}
}

// TestReplay: one-crash.sim's events as a trace, replayed on its setup,
// give the same run, event for event (the same trace hash); the ownership
// time series covers what the members owned, and processing lies within
// ownership.
func TestReplay(t *testing.T) {
	events, err := scenario.FromTrace(strings.NewReader("time,event,member,duration\n60,crash,m3,\n0s,join,m1..m10,\n"))
	if err != nil {
		t.Fatal(err)
	}
	replayed, err := scenario.Parse("one-crash.sim", "seed 7\ntopic orders partitions=64\ngroup g assignors=cooperative-sticky session=10s\n"+events)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := traceHash(t, load(t, "testdata/one-crash.sim"))
	if got, _ := traceHash(t, replayed); got != want {
		t.Errorf("the replayed trace gives another run: trace %s, want %s", got, want)
	}

	res, err := simulator.Run(replayed, simulator.Options{Timeline: true})
	if err != nil {
		t.Fatal(err)
	}
	owned := map[int32][]simulator.Ownership{}
	for _, o := range res.Timeline.Ownership {
		if o.Kind == "owned" {
			owned[o.Partition] = append(owned[o.Partition], o)
		}
	}
	if len(owned) != 64 {
		t.Fatalf("ownership of %d partitions, want 64", len(owned))
	}
	for _, o := range res.Timeline.Ownership {
		switch o.Kind {
		case "owned":
			if o.Member == "m3" && o.To != 60*time.Second {
				t.Errorf("m3 owned %s/%d until %v, want its crash at 60s", o.Topic, o.Partition, o.To)
			}
		case "processing":
			within := false
			for _, w := range owned[o.Partition] {
				within = within || w.Member == o.Member && w.From <= o.From && o.To <= w.To
			}
			if !within {
				t.Errorf("%+v is not within an interval in which %s owned the partition", o, o.Member)
			}
		}
	}
}
