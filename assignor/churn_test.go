package assignor

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/regroup-dev/regroup/internal/churn"
)

var churnLong = flag.Bool("churn.long", false, "run TestChurnRandomSubscriptions over 200 seeds of 100 rebalances")

// churnGroup is the churn workload of internal/churn as assignor inputs:
// each rebalance's members report what the previous plan gave them.
type churnGroup struct {
	g  *churn.Group
	in *Input
}

// newChurnGroup returns the group of seed (see churn.New), every member
// new.
func newChurnGroup(seed uint64) *churnGroup {
	g := churn.New(seed)
	return &churnGroup{g: g, in: churnInput(g, nil, 0)}
}

// churnInput returns g's next rebalance after plan p of generation gen:
// the members in p report what it gave them, the others are new.
func churnInput(g *churn.Group, p Plan, gen int32) *Input {
	in := &Input{Topics: g.Topics, Generation: gen + 1}
	for _, m := range g.Members {
		am := Member{ID: m.ID, Topics: m.Topics, Generation: -1}
		if got, ok := p[m.ID]; ok {
			am.Owned, am.Generation = ownedOf(got), gen
		}
		in.Members = append(in.Members, am)
	}
	return in
}

// advance is the next rebalance after plan p: members leave, join and
// change their subscriptions (churn.Group.Advance), and the others report
// what p gave them.
func (c *churnGroup) advance(p Plan) {
	c.g.Advance()
	c.in = churnInput(c.g, p, c.in.Generation)
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

// fixedCase is a recorded input of a test below, with the most owned
// partitions a plan for it may move.
type fixedCase struct {
	Name  string
	Moves int
	Input *Input
}

// forFixedCases checks every sticky assignor's plan p for each case of the
// JSON file path: it must be valid and move at most the case's Moves owned
// partitions (why says why no more), and pass check.
func forFixedCases(t *testing.T, path, why string, check func(a Assignor, c fixedCase, p Plan) error) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []fixedCase
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
				if n := moved(c.Input, p); n > c.Moves {
					err = fmt.Errorf("%d owned partitions moved or revoked, want at most %d: %s", n, c.Moves, why)
				}
			}
			if err == nil {
				err = check(a, c, p)
			}
			if err != nil {
				t.Errorf("%s: %v", c.Name, err)
			}
		}
	})
}

// TestSecondRoundKeepsOwned: cooperative follow-up rounds from
// TestChurnRandomSubscriptions (testdata/second-rounds.json) in which the
// balancer's free steps alone revoked a partition and a third round
// followed, though the first round's target keeps every owned partition
// balanced. Both assignors must keep every owned partition, balanced.
func TestSecondRoundKeepsOwned(t *testing.T) {
	forFixedCases(t, "testdata/second-rounds.json", "a balanced plan keeps them all", func(_ Assignor, c fixedCase, p Plan) error {
		if err := Complete(c.Input, p); err != nil {
			return err
		}
		return Balanced(c.Input, p)
	})
}

// TestFewestMoves: rebalances of the churn workload (bench/peers, 30 seeds
// x 57 rebalances; testdata/fewest-moves.json) in which the balancer
// reached balanced loads by hand-overs through several members where one
// would do, moving owned partitions that a plan with the same loads keeps.
// Both assignors must move no more than the recorded number, the fewest at
// those loads, and stay valid, balanced and within two rounds.
func TestFewestMoves(t *testing.T) {
	forFixedCases(t, "testdata/fewest-moves.json", "the fewest at the plan's loads", func(a Assignor, c fixedCase, _ Plan) error {
		final, rounds, err := rebalance(a, c.Input)
		switch {
		case err != nil:
			return err
		case !withholds(a):
			return checkRebalance(c.Input, final, rounds)
		case rounds > 2:
			return fmt.Errorf("took %d rounds", rounds)
		}
		if err := Balanced(c.Input, final); err != nil {
			return err
		}
		return Complete(c.Input, final)
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
