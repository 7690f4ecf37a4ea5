// Package shard places groups on coordinators: a group belongs to the
// shard its id hashes to (Of), and each shard is led by one of the live
// coordinators, chosen by Plan so that each leads about as many shards as
// the others and a change of membership moves as few shards as it can.
// Both are pure functions: drivers campaign for the shards Plan gives
// their coordinator and resign the others, and the simulator calls the
// same functions.
package shard

import (
	"cmp"
	"hash/fnv"
	"slices"
)

// Of returns the shard, in [0, n), that group id belongs to: FNV-1a of the
// id, modulo n. It never changes for a given n, so n is fixed for a
// cluster's life. It panics if n is not positive.
func Of(id string, n int) int {
	if n <= 0 {
		panic("shard: Of needs a positive number of shards")
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}

// Plan returns the coordinator each of n shards should be led by, given
// the live coordinators and each shard's current leader (leaders[i], ""
// for none; a shorter slice means none for the rest). Every shard gets a
// live coordinator; each leads n/k or n/k+1 shards (k live ones); and the
// plan moves the fewest shards that satisfy that: a shard whose leader is
// live stays unless its leader leads more than its share, and the larger
// shares go to the coordinators that lead the most already. The result
// depends only on the set of live coordinators and on leaders, not on
// their order. With no live coordinator every shard is "".
func Plan(n int, live []string, leaders []string) []string {
	plan := make([]string, n)
	names := slices.Clone(live)
	slices.Sort(names)
	names = slices.Compact(names)
	if n <= 0 || len(names) == 0 {
		return plan
	}
	leading := make(map[string]int, len(names))
	for _, c := range names {
		leading[c] = 0
	}
	for i := range n {
		if l := leaderOf(leaders, i); l != "" {
			if _, ok := leading[l]; ok {
				leading[l]++
			}
		}
	}
	share := shares(n, names, leading)

	// Keep the shards of live leaders within their share, lowest first.
	kept := make(map[string]int, len(names))
	for i := range n {
		l := leaderOf(leaders, i)
		if _, ok := share[l]; ok && kept[l] < share[l] {
			plan[i] = l
			kept[l]++
		}
	}
	// The others go, lowest first, to the coordinator furthest below its
	// share (the first by name among equals).
	for i := range n {
		if plan[i] != "" {
			continue
		}
		best := ""
		for _, c := range names {
			if best == "" || share[c]-kept[c] > share[best]-kept[best] {
				best = c
			}
		}
		plan[i] = best
		kept[best]++
	}
	return plan
}

// shares gives each of names (sorted) its number of shards: n/k each, and
// one more to the n%k that lead the most shards now (the first by name
// among equals), which keeps the most shards where they are.
func shares(n int, names []string, leading map[string]int) map[string]int {
	k := len(names)
	byLoad := slices.Clone(names)
	slices.SortStableFunc(byLoad, func(a, b string) int { return cmp.Compare(leading[b], leading[a]) })
	share := make(map[string]int, k)
	for i, c := range byLoad {
		share[c] = n / k
		if i < n%k {
			share[c]++
		}
	}
	return share
}

func leaderOf(leaders []string, i int) string {
	if i < len(leaders) {
		return leaders[i]
	}
	return ""
}

// Action is what a coordinator does about one shard; see Act.
type Action int

// The actions of Act.
const (
	// Keep: nothing to do.
	Keep Action = iota
	// Campaign for the shard: the plan gives it to this coordinator.
	Campaign
	// Withdraw the campaign for the shard, or hand it over if this
	// coordinator leads it: the plan gives it to another one.
	Withdraw
)

// View is what a coordinator knows of one shard when it decides what to
// do about it (Act).
type View struct {
	// Me is the coordinator deciding, Planned the one the plan gives the
	// shard, Leader the one that leads it now ("" for none).
	Me, Planned, Leader string
	// Running: Me campaigns for the shard or leads it.
	Running bool
	// PlannedCampaigns: Planned campaigns for the shard.
	PlannedCampaigns bool
	// LeaderLive: Leader is a live coordinator.
	LeaderLive bool
	// Settled: the plan has named Planned for the shard for a while (the
	// driver says how long): processes read the registry and the
	// elections at different moments, and a plan made from a view another
	// has not reached yet lasts less.
	Settled bool
	// Fresh: Me is announced as live and its view of every shard's
	// election is recent, so that its plan rests on what is true now.
	Fresh bool
}

// Act returns what a coordinator does about one shard, from its view v.
// It campaigns for a shard planned for it: at once if no live coordinator
// leads it (a failover), and only on a settled plan if one does. It
// withdraws at once from a campaign for a shard planned for another. A
// shard it leads it hands over only on a settled plan and a fresh view,
// and once the planned leader campaigns, so that the successor is elected
// the moment it resigns and the shard is without a leader only while the
// successor loads it. Two processes with different views therefore do not
// swap shards that need not move.
func Act(v View) Action {
	switch {
	case v.Planned == v.Me && !v.Running:
		if v.LeaderLive && v.Leader != v.Me && !v.Settled {
			return Keep
		}
		return Campaign
	case v.Planned != v.Me && v.Running:
		if v.Leader == v.Me && !(v.PlannedCampaigns && v.Settled && v.Fresh) {
			return Keep
		}
		return Withdraw
	}
	return Keep
}
