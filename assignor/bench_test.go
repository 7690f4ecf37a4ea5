package assignor

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchSizes are members x partitions of one topic.
var benchSizes = []struct{ members, partitions int }{
	{10, 100}, {100, 1_000}, {1_000, 10_000}, {2_000, 100_000}, {2_000, 1_000_000},
}

// scenario is one benchmark case: the inputs of its rounds (one for eager
// assignors, until convergence for cooperative ones), the balanced plan it
// starts from, and the fewest partitions that must move.
type scenario struct {
	rounds []*Input
	before Plan
	min    int
}

// joined returns in with one more member, id, owning nothing and
// subscribing to the first member's topics.
func joined(in *Input, id string) *Input {
	out := cloneInput(in)
	m := Member{ID: id, Topics: append([]string(nil), in.Members[0].Topics...), Generation: -1}
	out.Members = append(out.Members, m)
	return out
}

// buildScenario prepares kind ("fresh", "leave" or "join") for assignor a
// on the fresh input base.
func buildScenario(tb testing.TB, a Assignor, base *Input, kind string) scenario {
	var sc scenario
	first := base
	if kind != "fresh" {
		balanced := converged(tb, a, base)
		sc.before = balanced
		stable := feedBack(base, balanced, base.Generation)
		switch kind {
		case "leave":
			leaver := stable.Members[len(stable.Members)/2]
			for _, parts := range balanced[leaver.ID] {
				sc.min += len(parts)
			}
			stable.Members = append(stable.Members[:len(stable.Members)/2:len(stable.Members)/2], stable.Members[len(stable.Members)/2+1:]...)
			first = stable
		case "join":
			var total int
			for _, n := range base.Topics {
				total += int(n)
			}
			sc.min = total / (len(base.Members) + 1)
			first = joined(stable, "zz-new")
		}
	}
	sc.rounds = []*Input{first}
	cur := first
	for {
		p, err := a.Assign(cur)
		if err != nil {
			tb.Fatal(err)
		}
		_, revoked := transfers(cur, p)
		if len(revoked) == 0 || !withholds(a) {
			break
		}
		if len(sc.rounds) == 4 {
			tb.Fatalf("%s did not converge", a.Name())
		}
		cur = feedBack(cur, p, cur.Generation)
		sc.rounds = append(sc.rounds, cur)
	}
	return sc
}

// converged returns the plan a converges to from a fresh input.
func converged(tb testing.TB, a Assignor, in *Input) Plan {
	p, err := a.Assign(in)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		next := feedBack(in, p, in.Generation)
		q, err := a.Assign(next)
		if err != nil {
			tb.Fatal(err)
		}
		if _, revoked := transfers(next, q); len(revoked) == 0 && i > 0 {
			return q
		}
		in, p = next, q
	}
	return p
}

// movedFrom counts the partitions whose owner differs between two plans,
// counting those of a member missing from after.
func movedFrom(before, after Plan, topics map[string]int32) int {
	n := 0
	for t, count := range topics {
		owner := make([]string, count)
		for id, m := range before {
			for _, q := range m[t] {
				owner[q] = id
			}
		}
		for id, m := range after {
			for _, q := range m[t] {
				if owner[q] != "" && owner[q] != id {
					n++
				}
				owner[q] = ""
			}
		}
		for _, id := range owner {
			if id != "" {
				n++
			}
		}
	}
	return n
}

// runScenario times every round of sc and reports the custom metrics.
func runScenario(b *testing.B, a Assignor, sc scenario) {
	b.ReportAllocs()
	var last Plan
	var elapsed time.Duration
	for b.Loop() {
		for _, in := range sc.rounds {
			p, err := a.Assign(in)
			if err != nil {
				b.Fatal(err)
			}
			last = p
		}
	}
	elapsed = b.Elapsed()
	rounds := len(sc.rounds)
	b.ReportMetric(float64(rounds), "rounds")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)/float64(rounds)/1e6, "ms/round")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)/1e6, "ms/all-rounds")
	if sc.before != nil {
		b.ReportMetric(float64(movedFrom(sc.before, last, sc.rounds[0].Topics)), "moved")
		b.ReportMetric(float64(sc.min), "min-moved")
	}
	b.ReportMetric(float64(spread(last)), "max-min")
}

// BenchmarkAssign times every assignor on one topic with equal
// subscriptions: a fresh group, one member leaving a balanced group, and
// one member joining one.
func BenchmarkAssign(b *testing.B) {
	for _, name := range Names() {
		a := mustLookup(b, name)
		for _, kind := range []string{"fresh", "leave", "join"} {
			for _, size := range benchSizes {
				b.Run(fmt.Sprintf("%s/%s/%dx%d", name, kind, size.members, size.partitions), func(b *testing.B) {
					sc := buildScenario(b, a, uniform(size.members, int32(size.partitions), "topic"), kind)
					runScenario(b, a, sc)
				})
			}
		}
	}
}

// unequalInput is 800 members with random subscriptions over 50 topics of
// 800 partitions each.
func unequalInput(seed uint64) *Input {
	r := rand.New(rand.NewPCG(seed, 3))
	in := &Input{Topics: map[string]int32{}, Generation: 1}
	var topics []string
	for t := 0; t < 50; t++ {
		name := fmt.Sprintf("t%02d", t)
		topics = append(topics, name)
		in.Topics[name] = 800
	}
	for i := 0; i < 800; i++ {
		m := Member{ID: fmt.Sprintf("c%04d", i), Generation: -1}
		for _, t := range topics {
			if r.IntN(2) == 0 {
				m.Topics = append(m.Topics, t)
			}
		}
		if len(m.Topics) == 0 {
			m.Topics = []string{topics[r.IntN(len(topics))]}
		}
		in.Members = append(in.Members, m)
	}
	return in
}

// BenchmarkAssignUnequal times the unequal-subscription case: 800 members,
// 50 topics of 800 partitions, random subscriptions.
func BenchmarkAssignUnequal(b *testing.B) {
	for _, name := range Names() {
		a := mustLookup(b, name)
		for _, kind := range []string{"fresh", "leave", "join"} {
			b.Run(fmt.Sprintf("%s/%s/800x50x800", name, kind), func(b *testing.B) {
				sc := buildScenario(b, a, unequalInput(1), kind)
				runScenario(b, a, sc)
			})
		}
	}
}
