package assignor

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

var churnLong = flag.Bool("churn.long", false, "run TestChurnRandomSubscriptions over 200 seeds of 100 rebalances")

// churnGroup is a group whose members come and go and change their
// subscriptions: Kafka's random-subscription assignor tests, over many
// rebalances.
type churnGroup struct {
	r      *rand.Rand
	in     *Input
	topics []string
	next   int // number of the next member to join
}

// newChurnGroup returns a group of 5 to 29 members over 10 to 39 topics,
// most of 1 to 8 partitions and a quarter of 8 to 63.
func newChurnGroup(seed uint64) *churnGroup {
	r := rand.New(rand.NewPCG(seed, 17))
	g := &churnGroup{r: r, in: &Input{Topics: map[string]int32{}, Generation: 1}}
	for i := range 10 + r.IntN(30) {
		name := fmt.Sprintf("t%02d", i)
		n := 1 + r.IntN(8)
		if r.IntN(4) == 0 {
			n = 8 + r.IntN(56)
		}
		g.in.Topics[name] = int32(n)
		g.topics = append(g.topics, name)
	}
	for range 5 + r.IntN(25) {
		g.join()
	}
	return g
}

// subscription returns a random subset of the topics, each taken with one
// probability between 0.1 and 0.7, and never empty.
func (g *churnGroup) subscription() []string {
	p := 0.1 + 0.6*g.r.Float64()
	var subs []string
	for _, t := range g.topics {
		if g.r.Float64() < p {
			subs = append(subs, t)
		}
	}
	if len(subs) == 0 {
		subs = []string{g.topics[g.r.IntN(len(g.topics))]}
	}
	return subs
}

func (g *churnGroup) join() {
	g.in.Members = append(g.in.Members, Member{ID: fmt.Sprintf("m%04d", g.next), Topics: g.subscription(), Generation: -1})
	g.next++
}

// advance is the next rebalance after plan p: every member reports what p
// gave it, then up to two members leave, up to two join and up to two
// change their subscriptions.
func (g *churnGroup) advance(p Plan) {
	g.in = feedBack(g.in, p, g.in.Generation)
	for k := g.r.IntN(3); k > 0 && len(g.in.Members) > 1; k-- {
		i := g.r.IntN(len(g.in.Members))
		g.in.Members = slices.Delete(g.in.Members, i, i+1)
	}
	for k := g.r.IntN(3); k > 0; k-- {
		g.join()
	}
	for k := g.r.IntN(3); k > 0; k-- {
		g.in.Members[g.r.IntN(len(g.in.Members))].Topics = g.subscription()
	}
}

// rebalance runs a on in, and for a cooperative assignor feeds each plan
// back until nobody revokes. It returns the last plan and the number of
// rounds, and fails if a plan is invalid, a round gives a partition to a
// new owner while another member revokes it, or four rounds do not
// converge.
func rebalance(a Assignor, in *Input) (Plan, int, error) {
	cur := in
	for rounds := 1; ; rounds++ {
		p, err := a.Assign(cur)
		if err != nil {
			return nil, rounds, err
		}
		if err := Check(cur, p); err != nil {
			return nil, rounds, fmt.Errorf("round %d: %w", rounds, err)
		}
		if !withholds(a) {
			return p, rounds, nil
		}
		added, revoked := transfers(cur, p)
		for _, k := range slices.SortedFunc(maps.Keys(added), cmpTP) {
			if from, ok := revoked[k]; ok {
				return nil, rounds, fmt.Errorf("round %d gives %v to %s while %s revokes it", rounds, k, added[k], from)
			}
		}
		if len(revoked) == 0 {
			return p, rounds, nil
		}
		if rounds == 4 {
			return nil, rounds, errors.New("no convergence in 4 rounds")
		}
		cur = feedBack(cur, p, cur.Generation)
	}
}

func cmpTP(a, b tp) int {
	if c := strings.Compare(a.topic, b.topic); c != 0 {
		return c
	}
	return int(a.p - b.p)
}

// checkRebalance reports the first way in which final, reached from in in
// rounds, breaks the placement rule: it must be valid, complete and
// balanced (Balanced), take at most two rounds, and leave no partition
// away from a previous owner that could keep it. A previous owner x could
// keep partition k, now with y, if the plan stays balanced when k goes
// back to x alone, or when it goes back in exchange for a partition that x
// did not own before and y may take.
func checkRebalance(in *Input, final Plan, rounds int) error {
	if err := Check(in, final); err != nil {
		return err
	}
	if err := Complete(in, final); err != nil {
		return err
	}
	if err := Balanced(in, final); err != nil {
		return err
	}
	if rounds > 2 {
		return fmt.Errorf("took %d rounds, more than two", rounds)
	}
	subs := map[string]map[string]bool{}
	for _, m := range in.Members {
		subs[m.ID] = map[string]bool{}
		for _, t := range m.Topics {
			subs[m.ID][t] = true
		}
	}
	valid := validOwners(in)
	now := ownerMap(final)
	for _, k := range slices.SortedFunc(maps.Keys(valid), cmpTP) {
		x, y := valid[k], now[k]
		if y == x || y == "" {
			continue
		}
		back := handOver(final, k, y, x)
		if Balanced(in, back) == nil {
			return fmt.Errorf("%v moved from %s to %s, but %s could keep it: the plan is balanced with it back", k, x, y, x)
		}
		for _, q := range slices.SortedFunc(maps.Keys(ownerMap(Plan{x: final[x]})), cmpTP) {
			if valid[q] == x || !subs[y][q.topic] {
				continue
			}
			if Balanced(in, handOver(back, q, x, y)) == nil {
				return fmt.Errorf("%v moved from %s to %s, but %s could keep it: the plan is balanced with it back in exchange for %v", k, x, y, x, q)
			}
		}
	}
	return nil
}

// handOver returns a copy of p in which partition k goes from member from
// to member to; p is not modified.
func handOver(p Plan, k tp, from, to string) Plan {
	out := maps.Clone(p)
	out[from] = maps.Clone(p[from])
	out[from][k.topic] = slices.DeleteFunc(slices.Clone(p[from][k.topic]), func(q int32) bool { return q == k.p })
	out[to] = maps.Clone(p[to])
	out[to][k.topic] = append(slices.Clone(p[to][k.topic]), k.p)
	slices.Sort(out[to][k.topic])
	return out
}

// movedWithin fails if p moves a validly owned partition of in that target
// leaves with its owner.
func movedWithin(in *Input, p, target Plan) error {
	now, want := ownerMap(p), ownerMap(target)
	valid := validOwners(in)
	for _, k := range slices.SortedFunc(maps.Keys(valid), cmpTP) {
		if id := valid[k]; now[k] != id && want[k] == id {
			return fmt.Errorf("%v moved from %s to %q, but the target keeps it there", k, id, now[k])
		}
	}
	return nil
}

// TestChurnRandomSubscriptions: groups with random subscriptions over many
// topics of different sizes go through rebalance after rebalance (joins,
// leaves, subscription changes). Every sticky plan must pass
// checkRebalance. cooperative-sticky computes the same target and reaches
// it in rounds: the target must pass checkRebalance with the number of
// rounds taken, and the plan reached must be valid, complete and balanced
// and move no partition that the target keeps (the second round may
// place the moved ones elsewhere, even back). -churn.long runs more.
func TestChurnRandomSubscriptions(t *testing.T) {
	seeds, steps := 12, 40
	if raceEnabled || testing.Short() {
		seeds, steps = 5, 30
	}
	if *churnLong {
		seeds, steps = 200, 100
	}
	target := mustLookup(t, "sticky")
	forSticky(t, func(t *testing.T, a Assignor) {
		moves, twoRounds := 0, 0
		for seed := uint64(1); seed <= uint64(seeds); seed++ {
			g := newChurnGroup(seed)
			for step := range steps {
				final, rounds, err := rebalance(a, g.in)
				if err == nil && withholds(a) {
					var want Plan
					if want, err = target.Assign(g.in); err == nil {
						err = checkRebalance(g.in, want, rounds)
					}
					if err == nil {
						err = Balanced(g.in, final)
					}
					if err == nil {
						err = Complete(g.in, final)
					}
					if err == nil {
						err = movedWithin(g.in, final, want)
					}
				} else if err == nil {
					err = checkRebalance(g.in, final, rounds)
				}
				if err != nil {
					t.Fatalf("seed %d, rebalance %d: %v\ninput: %s", seed, step, err, describe(g.in))
				}
				moves += moved(g.in, final)
				if rounds == 2 {
					twoRounds++
				}
				g.advance(final)
			}
		}
		t.Logf("%d rebalances: %d partitions moved, %d took two rounds", seeds*steps, moves, twoRounds)
	})
}

// TestSecondRoundKeepsOwned: cooperative follow-up rounds from
// TestChurnRandomSubscriptions (testdata/second-rounds.json) in which the
// balancer's free steps alone revoked a partition and a third round
// followed, though the first round's target keeps every owned partition
// balanced. Both assignors must keep every owned partition, balanced.
func TestSecondRoundKeepsOwned(t *testing.T) {
	data, err := os.ReadFile("testdata/second-rounds.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name  string
		Input *Input
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	forSticky(t, func(t *testing.T, a Assignor) {
		for _, c := range cases {
			p, err := a.Assign(c.Input)
			if err == nil {
				err = Check(c.Input, p)
			}
			if err == nil {
				if n := moved(c.Input, p); n > 0 {
					err = fmt.Errorf("%d owned partitions moved or revoked; a balanced plan keeps them all", n)
				}
			}
			if err == nil {
				err = Complete(c.Input, p)
			}
			if err == nil {
				err = Balanced(c.Input, p)
			}
			if err != nil {
				t.Errorf("%s: %v", c.Name, err)
			}
		}
	})
}

// TestCheckRebalanceCatchesBadPlans feeds checkRebalance plans that break
// each part of the rule.
func TestCheckRebalanceCatchesBadPlans(t *testing.T) {
	// c1 and c2 own two partitions of a each, c2 also the one of b.
	in := group(map[string]int32{"a": 4, "b": 1},
		mem("c1", topicList("a"), 1, tps("a", 0, 1)),
		mem("c2", topicList("a", "b"), 1, tps("a", 2, 3), tps("b", 0)))
	good := Plan{"c1": {"a": {0, 1}}, "c2": {"a": {2, 3}, "b": {0}}}
	// c1 and c2 own one partition of a and one of b each.
	swapIn := group(map[string]int32{"a": 2, "b": 2},
		mem("c1", topicList("a", "b"), 1, tps("a", 0), tps("b", 0)),
		mem("c2", topicList("a", "b"), 1, tps("a", 1), tps("b", 1)))
	for _, c := range []struct {
		name   string
		in     *Input
		plan   Plan
		rounds int
		want   string // "" for no error
	}{
		{"good", in, good, 1, ""},
		{"good in two rounds", in, good, 2, ""},
		{"three rounds", in, good, 3, "3 rounds"},
		{"three-round sequence", in, nil, 0, "3 rounds"},
		{"invalid", in, Plan{"c1": {"a": {0, 1}, "b": {0}}, "c2": {"a": {2, 3}}}, 1, "does not subscribe"},
		{"incomplete", in, Plan{"c1": {"a": {0, 1}}, "c2": {"a": {2, 3}}}, 1, "unassigned"},
		{"unbalanced", in, Plan{"c1": {"a": {0}}, "c2": {"a": {1, 2, 3}, "b": {0}}}, 1, "unbalanced"},
		{"needless move", in, Plan{"c1": {"a": {0, 1, 2}}, "c2": {"a": {3}, "b": {0}}}, 1, "a-2 moved from c2 to c1, but c2 could keep it"},
		{"needless exchange", swapIn, Plan{"c1": {"a": {0, 1}}, "c2": {"b": {0, 1}}}, 1, "in exchange for"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.plan == nil {
				// c2 revokes a-3; c1 takes it but revokes a-0; c2 takes
				// a-0: balanced, but in three rounds.
				c.plan, c.rounds = threeRounds(t, c.in, []Plan{
					{"c1": {"a": {0, 1}}, "c2": {"a": {2}, "b": {0}}},
					{"c1": {"a": {1, 3}}, "c2": {"a": {2}, "b": {0}}},
					{"c1": {"a": {1, 3}}, "c2": {"a": {0, 2}, "b": {0}}},
				})
			}
			err := checkRebalance(c.in, c.plan, c.rounds)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("good plan refused: %v", err)
			case c.want != "" && err == nil:
				t.Fatalf("bad plan accepted, want an error containing %q", c.want)
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q, want one containing %q", err, c.want)
			}
		})
	}
}

// scripted is a cooperative assignor that returns its plans in turn.
type scripted struct{ plans []Plan }

func (s *scripted) Name() string { return "scripted" }

func (s *scripted) Protocols() []RebalanceProtocol { return []RebalanceProtocol{Eager, Cooperative} }

func (s *scripted) Assign(*Input) (Plan, error) {
	p := s.plans[0]
	s.plans = s.plans[1:]
	return p, nil
}

// threeRounds runs plans through rebalance from in, and fails unless they
// make a valid cooperative sequence of three rounds.
func threeRounds(t *testing.T, in *Input, plans []Plan) (Plan, int) {
	t.Helper()
	final, rounds, err := rebalance(&scripted{plans}, in)
	if err != nil || rounds != 3 {
		t.Fatalf("scripted sequence: %d rounds, %v; want 3 valid rounds", rounds, err)
	}
	return final, rounds
}
