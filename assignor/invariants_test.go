package assignor

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// withholds reports whether the assignor follows the cooperative rule, so
// that one round may leave partitions unassigned.
func withholds(a Assignor) bool { return Supports(a, Cooperative) }

// verify runs the invariant suite for assignor a on in and returns the
// final plan: for a cooperative assignor the plan it converges to when each
// plan is fed back as the owned set with the next generation.
//
// Every assignor: the input is not modified; the plan is valid (Check);
// the same input shuffled gives the same plan. Eager assignors: every
// partition is assigned. Cooperative ones: no round gives a partition to a
// new owner while another member still claims it, and the plans converge
// within 4 rounds to a complete plan. Balance: range per topic, roundrobin
// with equal subscriptions, sticky, cooperative-sticky and static by
// Balanced. Stickiness (sticky, cooperative-sticky): with equal
// subscriptions exactly the minimum moves; otherwise no partitions of one
// topic move both from a to b and from b to a, a member giving a partition
// away ends with no fewer than the receiver minus one, and feeding the plan
// back changes nothing.
func verify(t testing.TB, a Assignor, in *Input, seed uint64) Plan {
	t.Helper()
	before := cloneInput(in)
	plan, err := a.Assign(in)
	if err != nil {
		t.Fatalf("%s: %v", a.Name(), err)
	}
	if !reflect.DeepEqual(before, in) {
		t.Fatalf("%s modified its input", a.Name())
	}
	if err := Check(in, plan); err != nil {
		t.Fatalf("%s: %v\ninput: %s", a.Name(), err, describe(in))
	}
	r := rand.New(rand.NewPCG(seed, 7))
	for i := 0; i < 2; i++ {
		again, err := a.Assign(shuffled(r, in))
		if err != nil {
			t.Fatalf("%s on shuffled input: %v", a.Name(), err)
		}
		if !reflect.DeepEqual(plan, again) {
			t.Fatalf("%s: shuffled input gave another plan\nfirst:  %v\nsecond: %v\ninput: %s", a.Name(), plan, again, describe(in))
		}
	}
	final := plan
	if withholds(a) {
		final, _ = converge(t, a, in, plan)
	} else if err := Complete(in, plan); err != nil {
		t.Fatalf("%s: %v\ninput: %s", a.Name(), err, describe(in))
	}
	checkBalance(t, a, in, final)
	if a.Name() == "sticky" || a.Name() == "cooperative-sticky" {
		checkSticky(t, a, in, final)
	}
	return final
}

// converge feeds plans back until a round revokes nothing, checking the
// cooperative rule in every round, and returns the last plan and the
// number of rounds (assignments) it took.
func converge(t testing.TB, a Assignor, in *Input, plan Plan) (Plan, int) {
	t.Helper()
	cur := in
	for round := 1; ; round++ {
		added, revoked := transfers(cur, plan)
		for k, id := range added {
			if from, ok := revoked[k]; ok {
				t.Fatalf("%s round %d gives %v to %s while %s revokes it\ninput: %s", a.Name(), round, k, id, from, describe(cur))
			}
		}
		if len(revoked) == 0 {
			if err := Complete(cur, plan); err != nil {
				t.Fatalf("%s round %d revokes nothing but: %v", a.Name(), round, err)
			}
			return plan, round
		}
		if round == 4 {
			t.Fatalf("%s did not converge in 4 rounds\ninput: %s", a.Name(), describe(in))
		}
		cur = feedBack(cur, plan, cur.Generation)
		var err error
		if plan, err = a.Assign(cur); err != nil {
			t.Fatal(err)
		}
		if err := Check(cur, plan); err != nil {
			t.Fatalf("%s round %d: %v", a.Name(), round+1, err)
		}
	}
}

// transfers returns the existing partitions that p adds to a member that
// did not report owning them, and those a member holds but p does not give
// it (revoked), each with the member. A member shown with partitions it
// does not hold (Member.NotHeld) revokes nothing.
func transfers(in *Input, p Plan) (added, revoked map[tp]string) {
	added, revoked = map[tp]string{}, map[tp]string{}
	for _, m := range in.Members {
		owned := map[tp]bool{}
		if m.NotHeld {
			m.Owned = nil // it holds none of them
		}
		for _, o := range m.Owned {
			for _, q := range o.Partitions {
				if q >= 0 && q < in.Topics[o.Topic] {
					owned[tp{o.Topic, q}] = true
				}
			}
		}
		now := map[tp]bool{}
		for t, parts := range p[m.ID] {
			for _, q := range parts {
				now[tp{t, q}] = true
				if !owned[tp{t, q}] {
					added[tp{t, q}] = m.ID
				}
			}
		}
		for k := range owned {
			if !now[k] {
				revoked[k] = m.ID
			}
		}
	}
	return added, revoked
}

func checkBalance(t testing.TB, a Assignor, in *Input, p Plan) {
	t.Helper()
	switch a.Name() {
	case "range":
		for topic, n := range in.Topics {
			lo, hi := -1, -1
			for _, m := range in.Members {
				if !subscribesTo(m, topic) || n <= 0 {
					continue
				}
				c := len(p[m.ID][topic])
				if lo < 0 || c < lo {
					lo = c
				}
				if c > hi {
					hi = c
				}
			}
			if hi-lo > 1 {
				t.Fatalf("range: topic %s spread %d..%d", topic, lo, hi)
			}
		}
	case "roundrobin":
		if equalSubs(in) && spread(p) > 1 {
			t.Fatalf("roundrobin: equal subscriptions but spread %d", spread(p))
		}
	default:
		if err := Balanced(in, p); err != nil {
			t.Fatalf("%s: %v\ninput: %s", a.Name(), err, describe(in))
		}
	}
}

func subscribesTo(m Member, topic string) bool {
	for _, t := range m.Topics {
		if t == topic {
			return true
		}
	}
	return false
}

func checkSticky(t testing.TB, a Assignor, in *Input, final Plan) {
	t.Helper()
	if equalSubs(in) {
		if got, want := moved(in, final), minMoves(in); got != want {
			t.Fatalf("%s moved %d partitions, the minimum is %d\ninput: %s", a.Name(), got, want, describe(in))
		}
	} else {
		checkNoReverseMoves(t, a, in, final)
	}
	next := feedBack(in, final, in.Generation)
	again, err := a.Assign(next)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, final) {
		t.Fatalf("%s: feeding back its balanced plan changed it\nplan: %v\nthen: %v", a.Name(), final, again)
	}
}

// checkNoReverseMoves fails if partitions of one topic move both from a to
// b and from b to a, or if a member that gives a partition away ends with
// two or more fewer partitions than the receiver.
func checkNoReverseMoves(t testing.TB, a Assignor, in *Input, final Plan) {
	t.Helper()
	now := ownerMap(final)
	c := counts(final)
	type move struct{ topic, from, to string }
	seen := map[move]tp{}
	for k, from := range validOwners(in) {
		to, ok := now[k]
		if !ok || to == from {
			continue
		}
		if back, ok := seen[move{k.topic, to, from}]; ok {
			t.Fatalf("%s moves %v from %s to %s and %v back\ninput: %s", a.Name(), k, from, to, back, describe(in))
		}
		seen[move{k.topic, from, to}] = k
		if _, member := c[from]; member && c[from] < c[to]-1 {
			t.Fatalf("%s moves %v from %s (ends with %d) to %s (ends with %d)\ninput: %s", a.Name(), k, from, c[from], to, c[to], describe(in))
		}
	}
}

// describe prints an input compactly for failure messages.
func describe(in *Input) string {
	s := fmt.Sprintf("gen %d topics %v", in.Generation, in.Topics)
	for _, m := range in.Members {
		s += fmt.Sprintf("\n  %s inst=%q gen=%d topics=%v owned=%v not-held=%v rack=%q", m.ID, m.InstanceID, m.Generation, m.Topics, m.Owned, m.NotHeld, m.Rack)
	}
	return s
}

// TestInvariantsRandom runs the invariant suite for every assignor over
// random groups evolving through rounds of joins, leaves, subscription and
// topic changes, stale generations and double claims.
func TestInvariantsRandom(t *testing.T) {
	seeds := 150
	if raceEnabled || testing.Short() {
		seeds = 30
	}
	shapes := []genOptions{
		{members: 8, topics: 3, partitions: 12, equal: true},
		{members: 25, topics: 5, partitions: 30, equal: true, instances: true},
		{members: 10, topics: 4, partitions: 10},
		{members: 30, topics: 6, partitions: 40, instances: true},
		{members: 12, topics: 3, partitions: 20, equal: true, racks: true},
		{members: 12, topics: 4, partitions: 20, racks: true},
	}
	for _, name := range Names() {
		a := mustLookup(t, name)
		t.Run(name, func(t *testing.T) {
			for seed := uint64(1); seed <= uint64(seeds); seed++ {
				o := shapes[seed%uint64(len(shapes))]
				r := rand.New(rand.NewPCG(seed, 1))
				in := randomInput(r, o)
				for round := 0; round < 6; round++ {
					final := verify(t, a, in, seed*100+uint64(round))
					in = evolve(r, in, final, o)
				}
			}
		})
	}
}
