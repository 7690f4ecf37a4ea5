package assignor

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// staticGroup is n static members with instance ids "inst-..." (not in the
// order of their member ids) on one topic of p partitions.
func staticGroup(n int, p int32) *Input {
	in := uniform(n, p, "topic")
	for i := range in.Members {
		in.Members[i].InstanceID = fmt.Sprintf("inst-%06d", i*7919%100003)
	}
	return in
}

// byInstanceID rekeys a plan by instance id (member id for dynamic ones).
func byInstanceID(in *Input, p Plan) map[string]map[string][]int32 {
	out := map[string]map[string][]int32{}
	for _, m := range in.Members {
		k := m.InstanceID
		if k == "" {
			k = m.ID
		}
		out[k] = p[m.ID]
	}
	return out
}

// relabel gives every static member a new random member id and reports
// random owned partitions in random generations.
func relabel(r *rand.Rand, in *Input) *Input {
	out := cloneInput(in)
	for i := range out.Members {
		m := &out.Members[i]
		if m.InstanceID != "" {
			m.ID = fmt.Sprintf("x%08d-%d", r.IntN(1e8), i)
		}
		m.Generation = int32(r.IntN(3))
		m.Owned = nil
		for topic, n := range in.Topics {
			if n > 0 && r.IntN(2) == 0 {
				m.Owned = append(m.Owned, tps(topic, int32(r.IntN(int(n)))))
			}
		}
	}
	return out
}

// TestStaticSamePlanWhateverMemberIDsAndOwned: the plan a group settles on
// depends only on instance ids and topics; with nothing owned, the first
// round is already that plan.
func TestStaticSamePlanWhateverMemberIDsAndOwned(t *testing.T) {
	a := mustLookup(t, "static")
	r := rand.New(rand.NewPCG(5, 5))
	for seed := uint64(0); seed < 40; seed++ {
		o := genOptions{members: 20, topics: 4, partitions: 30, equal: seed%2 == 0, instances: true}
		in := randomInput(rand.New(rand.NewPCG(seed, 9)), o)
		for i := range in.Members {
			in.Members[i].InstanceID = fmt.Sprintf("inst-%03d", i)
		}
		want := byInstanceID(in, settle(t, a, in))
		first, err := a.Assign(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := byInstanceID(in, first); !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: nothing owned, yet round 1 differs from the settled plan", seed)
		}
		for k := 0; k < 3; k++ {
			other := relabel(r, in)
			if got := byInstanceID(other, settle(t, a, other)); !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d: new member ids and owned partitions changed the plan\nwant %v\ngot  %v", seed, want, got)
			}
		}
	}
}

// TestStaticFullRestart: every member restarts with a new member id and
// the coordinator reports what its instance owned; nothing moves, in one
// round.
func TestStaticFullRestart(t *testing.T) {
	a := mustLookup(t, "static")
	in := staticGroup(50, 1000)
	before := settle(t, a, in)
	restarted := rejoin(in, before)
	for i := range restarted.Members {
		restarted.Members[i].ID = fmt.Sprintf("restarted-%03d", (i*37)%50)
	}
	first, err := a.Assign(restarted)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(byInstanceID(in, before), byInstanceID(restarted, first)) {
		t.Fatal("a full restart changed the plan")
	}
	if _, revoked := transfers(restarted, first); len(revoked) > 0 {
		t.Fatalf("a full restart revokes %d partitions", len(revoked))
	}
}

// TestStaticMovesNearMinimum measures the partitions moved when one member
// leaves or joins a balanced group against the minimum (the leaver's
// partitions; floor(P/(N+1))). With many partitions per member the draft
// stays within twice the minimum; with ten per member it does not (see
// docs/benchmarks.md), and the bound recorded here keeps it from getting
// worse.
func TestStaticMovesNearMinimum(t *testing.T) {
	a := mustLookup(t, "static")
	cases := []struct {
		members int
		parts   int32
		bound   float64
	}{
		{10, 1_000, 2}, {20, 2_000, 2}, {50, 5_000, 2}, {100, 10_000, 2},
		{10, 100, 2}, {100, 1_000, 4}, {1_000, 10_000, 7},
	}
	for _, c := range cases {
		in := staticGroup(c.members, c.parts)
		base := converged(t, a, in)
		leaver := in.Members[c.members/2].ID
		left, err := a.Assign(without(in, leaver))
		if err != nil {
			t.Fatal(err)
		}
		joiner := Member{ID: "new", InstanceID: "inst-new", Topics: topicList("topic"), Generation: -1}
		joined, err := a.Assign(with(in, joiner))
		if err != nil {
			t.Fatal(err)
		}
		leave, leaveMin := movedFrom(base, left, in.Topics), size(base, leaver)
		join, joinMin := movedFrom(base, joined, in.Topics), int(c.parts)/(c.members+1)
		t.Logf("%dx%d: leave moved %d (min %d), join moved %d (min %d)", c.members, c.parts, leave, leaveMin, join, joinMin)
		if float64(leave) > c.bound*float64(leaveMin) || float64(join) > c.bound*float64(joinMin) {
			t.Errorf("%dx%d: leave moved %d (min %d), join moved %d (min %d): more than %.0fx", c.members, c.parts, leave, leaveMin, join, joinMin, c.bound)
		}
	}
}

// TestInstanceOrderSurvivesRestart: range, roundrobin and static order
// static members by instance id, so new member ids change nothing.
func TestInstanceOrderSurvivesRestart(t *testing.T) {
	for _, name := range []string{"range", "roundrobin", "static"} {
		a := mustLookup(t, name)
		t.Run(name, func(t *testing.T) {
			in := staticGroup(7, 20)
			in.Topics["other"] = 5
			for i := range in.Members {
				in.Members[i].Topics = topicList("topic", "other")
			}
			in.Members = append(in.Members, mem("dynamic", topicList("topic", "other"), -1))
			before, err := a.Assign(in)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			after := relabel(r, in)
			for i := range after.Members {
				after.Members[i].Owned = nil
			}
			p, err := a.Assign(after)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(byInstanceID(in, before), byInstanceID(after, p)) {
				t.Fatalf("restart with new member ids changed the plan\nbefore %v\nafter  %v", byInstanceID(in, before), byInstanceID(after, p))
			}
		})
	}
}
