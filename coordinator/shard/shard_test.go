package shard_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/regroup-dev/regroup/coordinator/shard"
)

// moves counts the shards whose leader differs between leaders and plan
// (a shard with no leader before counts).
func moves(leaders, plan []string) int {
	moved := 0
	for i, p := range plan {
		if i >= len(leaders) || leaders[i] != p {
			moved++
		}
	}
	return moved
}

// fewestMoves is the least number of moves any balanced plan needs: it
// tries every way of giving the n%k larger shares, and for each counts the
// shards that must move (those without a live leader, and each leader's
// shards beyond its share).
func fewestMoves(n int, live, leaders []string) int {
	names := slices.Clone(live)
	slices.Sort(names)
	names = slices.Compact(names)
	k := len(names)
	leading := map[string]int{}
	orphans := 0
	for i := range n {
		l := ""
		if i < len(leaders) {
			l = leaders[i]
		}
		if slices.Contains(names, l) {
			leading[l]++
		} else {
			orphans++
		}
	}
	best := -1
	for mask := 0; mask < 1<<k; mask++ {
		larger := 0
		for j := range k {
			if mask&(1<<j) != 0 {
				larger++
			}
		}
		if larger != n%k {
			continue
		}
		m := orphans
		for j, c := range names {
			share := n / k
			if mask&(1<<j) != 0 {
				share++
			}
			m += max(leading[c]-share, 0)
		}
		if best < 0 || m < best {
			best = m
		}
	}
	return best
}

// checkPlan returns why plan is not a correct plan for n shards, the live
// coordinators and the current leaders, or nil: every shard led by a live
// coordinator, each leading n/k or n/k+1 shards, and no more moves than
// the fewest a balanced plan needs.
func checkPlan(n int, live, leaders, plan []string) error {
	if len(plan) != n {
		return fmt.Errorf("the plan has %d shards, want %d", len(plan), n)
	}
	names := slices.Clone(live)
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		for i, p := range plan {
			if p != "" {
				return fmt.Errorf("shard %d led by %q with no live coordinator", i, p)
			}
		}
		return nil
	}
	count := map[string]int{}
	for i, p := range plan {
		if !slices.Contains(names, p) {
			return fmt.Errorf("shard %d led by %q, which is not live", i, p)
		}
		count[p]++
	}
	k := len(names)
	for _, c := range names {
		if count[c] < n/k || count[c] > (n+k-1)/k {
			return fmt.Errorf("%s leads %d shards, want %d or %d", c, count[c], n/k, (n+k-1)/k)
		}
	}
	if got, want := moves(leaders, plan), fewestMoves(n, live, leaders); got != want {
		return fmt.Errorf("the plan moves %d shards, the fewest is %d", got, want)
	}
	return nil
}

// TestPlanInvariants: on random clusters (up to 8 live coordinators of
// 12, up to 130 shards, leaders live, gone or none), every plan is
// correct (checkPlan), does not depend on the order of the live
// coordinators, and a correct plan is left as it is.
func TestPlanInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pool := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}
	for c := range 20000 {
		n := 1 + r.IntN(130)
		live := slices.Clone(pool[:r.IntN(9)])
		r.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		leaders := make([]string, r.IntN(n+1))
		for i := range leaders {
			if x := r.IntN(len(pool) + 2); x < len(pool) {
				leaders[i] = pool[x]
			}
		}
		plan := shard.Plan(n, live, leaders)
		if err := checkPlan(n, live, leaders, plan); err != nil {
			t.Fatalf("case %d: n=%d live=%v leaders=%v: %v\nplan %v", c, n, live, leaders, err, plan)
		}
		reordered := slices.Clone(live)
		slices.Reverse(reordered)
		if again := shard.Plan(n, reordered, leaders); !slices.Equal(again, plan) {
			t.Fatalf("case %d: the plan depends on the order of the live coordinators:\n%v\n%v", c, plan, again)
		}
		if len(live) > 0 {
			if again := shard.Plan(n, live, plan); !slices.Equal(again, plan) {
				t.Fatalf("case %d: a correct plan is changed:\n%v\n%v", c, plan, again)
			}
		}
	}
}

// TestCheckPlanCatchesBadPlans: the invariant check fails on plans that
// lead a shard by a coordinator that is gone, unbalance the shares, or
// move a shard that could have stayed.
func TestCheckPlanCatchesBadPlans(t *testing.T) {
	live := []string{"a", "b", "c"}
	leaders := []string{"a", "a", "b", "b", "c", "c"}
	if err := checkPlan(6, live, leaders, leaders); err != nil {
		t.Fatalf("a correct plan is refused: %v", err)
	}
	for _, bad := range [][]string{
		{"a", "a", "b", "b", "c", "x"}, // x is not live
		{"a", "a", "a", "b", "c", "c"}, // a leads 3, b 1
		{"b", "a", "a", "b", "c", "c"}, // balanced, but moves 2 shards for nothing
	} {
		if err := checkPlan(6, live, leaders, bad); err == nil {
			t.Errorf("checkPlan accepts %v", bad)
		}
	}
}

// TestPlanMembershipChanges: 64 shards on three coordinators; a fourth
// joins and takes 16, moved from the others; one leaves and only its
// shards move.
func TestPlanMembershipChanges(t *testing.T) {
	const n = 64
	three := shard.Plan(n, []string{"a", "b", "c"}, nil)
	count := func(plan []string) map[string]int {
		m := map[string]int{}
		for _, p := range plan {
			m[p]++
		}
		return m
	}
	if c := count(three); c["a"] != 22 || c["b"] != 21 || c["c"] != 21 {
		t.Fatalf("three coordinators lead %v, want 22, 21 and 21", c)
	}
	four := shard.Plan(n, []string{"a", "b", "c", "d"}, three)
	if c := count(four); c["a"] != 16 || c["b"] != 16 || c["c"] != 16 || c["d"] != 16 {
		t.Fatalf("four coordinators lead %v, want 16 each", c)
	}
	if m := moves(three, four); m != 16 {
		t.Fatalf("a fourth coordinator moved %d shards, want the 16 it takes", m)
	}
	withoutB := shard.Plan(n, []string{"a", "c", "d"}, four)
	for i := range n {
		if four[i] != "b" && withoutB[i] != four[i] {
			t.Fatalf("shard %d moved from %s to %s when b left", i, four[i], withoutB[i])
		}
	}
	if c := count(withoutB); c["b"] != 0 || c["a"]+c["c"]+c["d"] != n {
		t.Fatalf("after b left: %v", c)
	}
}

// TestOfIsStableAndSpread: a group's shard depends only on its id and the
// number of shards, and 10,000 group ids spread over 64 shards within a
// third of the mean.
func TestOfIsStableAndSpread(t *testing.T) {
	const n, groups = 64, 10000
	counts := make([]int, n)
	for g := range groups {
		id := fmt.Sprintf("group-%d", g)
		s := shard.Of(id, n)
		if s != shard.Of(id, n) || s < 0 || s >= n {
			t.Fatalf("Of(%q, %d) = %d, then %d", id, n, s, shard.Of(id, n))
		}
		counts[s]++
	}
	mean := groups / n
	for s, c := range counts {
		if c < mean*2/3 || c > mean*4/3 {
			t.Fatalf("shard %d has %d of %d groups (mean %d)", s, c, groups, mean)
		}
	}
}

// TestAct covers every case of a coordinator's action on one shard.
func TestAct(t *testing.T) {
	settled := func(v shard.View) shard.View { v.Settled, v.Fresh = true, true; return v }
	for _, c := range []struct {
		v    shard.View
		want shard.Action
		why  string
	}{
		{shard.View{Me: "a", Planned: "a"}, shard.Campaign, "planned here, no leader"},
		{shard.View{Me: "a", Planned: "a", Leader: "b"}, shard.Campaign, "planned here, its leader dead: fail over at once"},
		{shard.View{Me: "a", Planned: "a", Leader: "b", LeaderLive: true}, shard.Keep, "planned here, led by a live one: not on a fresh plan"},
		{settled(shard.View{Me: "a", Planned: "a", Leader: "b", LeaderLive: true}), shard.Campaign, "planned here for a while: queue behind b"},
		{shard.View{Me: "a", Planned: "a", Leader: "a", Running: true, LeaderLive: true}, shard.Keep, "leads what is planned for it"},
		{shard.View{Me: "a", Planned: "a", Running: true}, shard.Keep, "campaigning for it already"},
		{shard.View{Me: "a", Planned: "b", Running: true}, shard.Withdraw, "campaigning for another's shard"},
		{shard.View{Me: "a", Planned: "b", Leader: "c", Running: true, LeaderLive: true}, shard.Withdraw, "queued behind c for b's shard"},
		{settled(shard.View{Me: "a", Planned: "b", Leader: "a", Running: true, LeaderLive: true}), shard.Keep, "leads b's shard: b does not campaign yet"},
		{settled(shard.View{Me: "a", Planned: "b", Leader: "a", Running: true, LeaderLive: true, PlannedCampaigns: true}), shard.Withdraw, "leads b's shard, b campaigns: hand over"},
		{shard.View{Me: "a", Planned: "b", Leader: "a", Running: true, LeaderLive: true, PlannedCampaigns: true, Fresh: true}, shard.Keep, "b campaigns, but the plan is new"},
		{shard.View{Me: "a", Planned: "b", Leader: "a", Running: true, LeaderLive: true, PlannedCampaigns: true, Settled: true}, shard.Keep, "b campaigns, but the view is old"},
		{shard.View{Me: "a", Planned: "b", Leader: "b", PlannedCampaigns: true, LeaderLive: true}, shard.Keep, "nothing to do with it"},
		{settled(shard.View{Me: "a", Planned: "", Leader: "a", Running: true, LeaderLive: true}), shard.Keep, "no live coordinator planned: keep leading"},
	} {
		if got := shard.Act(c.v); got != c.want {
			t.Errorf("%s: Act(%+v) = %v, want %v", c.why, c.v, got, c.want)
		}
	}
}
