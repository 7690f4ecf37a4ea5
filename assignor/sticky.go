package assignor

import (
	"fmt"
	"slices"
)

func init() {
	register("sticky", func() Assignor { return &sticky{name: "sticky"} })
	register("cooperative-sticky", func() Assignor {
		return &sticky{name: "cooperative-sticky", cooperative: true}
	})
}

// sticky is the "sticky" and "cooperative-sticky" assignor.
//
// Both compute the same target: balanced (see Balanced), keeping every valid
// owned partition that balance allows. Ownership is resolved first (see
// problem.claims): the highest generation wins a double claim, a tie leaves
// the partition to nobody.
//
// With equal subscriptions (Kafka's "constrained" path) every member gets
// floor(P/N) or ceil(P/N) partitions, exactly P mod N of them the larger
// quota. Members owning at least ceil(P/N) take the larger quotas first (in
// member id order) and each member keeps owned partitions up to its quota,
// spread over topics as it held them (see revokeSurplus). Where partitions
// and members carry racks, each unassigned partition then goes to a member
// below its quota in one of the partition's racks, if any; the rest are
// dealt, in (topic, partition) order, round-robin to the members below their
// quotas in member id order, which spreads every topic evenly over a fresh
// group. This moves exactly the partitions that balance requires to move.
// All of it is a few passes over flat arrays indexed by partition.
//
// With unequal subscriptions (the "general" path) the rule is Kafka's:
// a member may hold two or more partitions more than another only if it
// holds no partition of a topic the other subscribes to. Every valid owned
// partition is kept, the unowned ones go one by one to the least-loaded
// subscriber (topics with the fewest subscribers first), and the balancer
// (see balancer) restores the rule, moving partitions that are not with
// their previous owner (free) rather than owned ones (paid): free moves
// within a topic, then free chains across topics, lifts of members below
// the floor that keeping every owned partition implies and level chains,
// and a paid move only when no free one helps. If the free steps alone
// cannot restore the rule, the fill starts
// again, each partition going to a subscriber that can take it without
// breaking the rule where one exists (see balancer.safeFill), before any
// paid move. Finally every moved partition whose previous owner could hold
// it again, alone or in exchange for a partition that owner did not own
// before, goes back. No partition thus ends away from a previous owner that
// could keep it within the rule. If an owned partition still ends away
// from its owner, an exact search (see balancer.complete) looks for a
// balanced plan that keeps every owned partition and places only the
// others, and takes it if there is one; if there is none, the plan's
// loads stay and the partitions are placed anew to keep the most owned
// ones at those loads (see balancer.keepMost), since the balancer's chains
// may hand a partition through several members where one hand-over
// would do.
//
// cooperative-sticky then withholds, for this round, every partition that
// the target gives to someone other than a member that still claims it, and
// every partition claimed twice in one generation: its claimants revoke it
// and the follow-up round, in which nobody claims it, hands it over. The
// follow-up round's owned partitions are all in the first round's target,
// so a plan that keeps them exists; where the free steps miss it, the
// exact search finds it (within its work bound), so the follow-up round
// revokes nothing and no third round follows (none in
// TestChurnRandomSubscriptions, with or without -churn.long).
type sticky struct {
	name        string
	cooperative bool
}

func (s *sticky) Name() string { return s.name }

func (s *sticky) Protocols() []RebalanceProtocol {
	if s.cooperative {
		return []RebalanceProtocol{Eager, Cooperative}
	}
	return []RebalanceProtocol{Eager}
}

func (s *sticky) Assign(in *Input) (Plan, error) {
	pr, err := newProblem(in, byID)
	if err != nil {
		return nil, err
	}
	claims := pr.claims()
	owner := holders(claims)
	if pr.equalSubscriptions() {
		pr.constrained(owner)
	} else {
		pr.general(owner, claims)
	}
	if s.cooperative {
		pr.withholdTransfers(owner, claims)
	}
	return pr.plan(owner), nil
}

// constrained turns the kept ownership in owner into a balanced assignment,
// for members that all subscribe to the same topics.
func (pr *problem) constrained(owner []int32) {
	n := int32(len(pr.members))
	if n == 0 || pr.total == 0 {
		return
	}
	minQ, extra := pr.total/n, pr.total%n
	maxQ := minQ
	if extra > 0 {
		maxQ++
	}
	have := make([]int32, n)
	for _, m := range owner {
		if m >= 0 {
			have[m]++
		}
	}
	quota := make([]int32, n)
	for m := range quota {
		quota[m] = minQ
		if extra > 0 && have[m] >= maxQ {
			quota[m] = maxQ
			extra--
		}
	}
	pr.revokeSurplus(owner, have, quota)
	need := quota // reused: quota is not needed after this
	for m := range need {
		q := quota[m]
		need[m] = q - min(have[m], q)
		if extra > 0 && q == minQ {
			need[m]++
			extra--
		}
	}
	if pr.rackAware() {
		pr.rackFill(owner, need)
	}
	ring := make([]int32, 0, n)
	for m := range need {
		if need[m] > 0 {
			ring = append(ring, int32(m))
		}
	}
	i := 0
	for g := range owner {
		if owner[g] >= 0 {
			continue
		}
		if i == len(ring) {
			ring, i = slices.DeleteFunc(ring, func(m int32) bool { return need[m] == 0 }), 0
			if len(ring) == 0 {
				panic(fmt.Sprintf("assignor: constrained fill ran out of quota at partition %d of %d with %d members", g, pr.total, n))
			}
		}
		m := ring[i]
		owner[g] = m
		need[m]--
		i++
		for i < len(ring) && need[ring[i]] == 0 {
			i++
		}
	}
}

// revokeSurplus unassigns the partitions of members holding more than their
// quota. A member keeps its partitions in the order (rank within its topic,
// topic): first the lowest-numbered partition of every topic it holds, then
// the second, and so on, so that what it keeps stays spread over topics as
// what it held was.
func (pr *problem) revokeSurplus(owner, have, quota []int32) {
	var over []int32
	for m := range have {
		if have[m] > quota[m] {
			over = append(over, int32(m))
		}
	}
	if len(over) == 0 {
		return
	}
	nt := int32(len(pr.topics))
	held := make([]int32, len(over)*len(pr.topics)) // held[k*nt+t]: partitions of topic t of over[k]
	slot := make([]int32, len(have))
	for i := range slot {
		slot[i] = -1
	}
	for k, m := range over {
		slot[m] = int32(k)
	}
	for t := int32(0); t < nt; t++ {
		for _, m := range owner[pr.base[t]:pr.base[t+1]] {
			if m >= 0 && slot[m] >= 0 {
				held[slot[m]*nt+t]++
			}
		}
	}
	// Member over[k] keeps every partition of rank < cut[k] in its topic,
	// and those of rank cut[k] in the first tie[k] topics that have one.
	cut := make([]int32, len(over))
	tie := make([]int32, len(over))
	for k, m := range over {
		h := held[int32(k)*nt : int32(k+1)*nt]
		below := func(r int32) int32 {
			var s int32
			for _, c := range h {
				s += min(c, r)
			}
			return s
		}
		lo, hi := int32(0), quota[m]
		for lo < hi {
			mid := (lo + hi + 1) / 2
			if below(mid) <= quota[m] {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		cut[k], tie[k] = lo, quota[m]-below(lo)
	}
	rank := make([]int32, len(over))
	for t := int32(0); t < nt; t++ {
		clear(rank)
		for g := pr.base[t]; g < pr.base[t+1]; g++ {
			m := owner[g]
			if m < 0 || slot[m] < 0 {
				continue
			}
			k := slot[m]
			r := rank[k]
			rank[k]++
			switch {
			case r < cut[k]:
			case r == cut[k] && tie[k] > 0:
				tie[k]--
			default:
				owner[g] = unclaimed
			}
		}
	}
}

// general turns the kept ownership in owner into an assignment that
// satisfies the balance rule, for members with unequal subscriptions. claims
// tells which partitions each member owned before.
func (pr *problem) general(owner, claims []int32) {
	load := make([]int32, len(pr.members))
	for _, m := range owner {
		if m >= 0 {
			load[m]++
		}
	}
	b := pr.newBalancer(owner, claims, load)
	h := newMemberHeap(len(pr.members), func(x, y int32) bool {
		return load[x] < load[y] || load[x] == load[y] && x < y
	})
	for _, t := range b.order {
		h.reset()
		for g := pr.base[t]; g < pr.base[t+1]; g++ {
			if owner[g] >= 0 {
				continue
			}
			if len(h.items) == 0 {
				for _, m := range b.subscribers(t) {
					h.push(m)
				}
			}
			m := h.items[0]
			owner[g] = m
			load[m]++
			h.fix(m)
		}
	}
	if !b.balance(false) {
		b.refill(claims)
	}
	for g, c := range claims {
		if c >= 0 && owner[g] != c {
			if !b.complete() {
				b.keepMost()
			}
			return
		}
	}
}

// refill starts the general path again from the owned partitions alone,
// dealing the others by safeFill, and balances paying for moves.
func (b *balancer) refill(claims []int32) {
	owner, load := b.owner, b.load
	clear(load)
	for g, c := range claims {
		owner[g] = max(c, unclaimed)
		if c >= 0 {
			load[c]++
		}
	}
	b.stacks, b.owned, b.paid = nil, nil, 0
	b.safeFill()
	b.balance(true)
}

// safeFill gives each unowned partition, topics with the fewest
// subscribers first, to a subscriber that can take one more without
// holding two or more partitions more than a subscriber of a topic it
// holds, the least-loaded such one (else the least-loaded subscriber).
func (b *balancer) safeFill() {
	pr := b.pr
	held := make([]int32, len(pr.subs))
	minSub := make([]int32, len(pr.topics))
	for t := range pr.topics {
		b.setSlots(int32(t))
		for _, m := range b.owner[pr.base[t]:pr.base[t+1]] {
			if m >= 0 {
				held[b.slot[m]]++
			}
		}
	}
	lowest := func(t int32) int32 {
		lo := int32(-1)
		for _, m := range b.subscribers(t) {
			if lo < 0 || b.load[m] < lo {
				lo = b.load[m]
			}
		}
		return lo
	}
	for t := range pr.topics {
		minSub[t] = lowest(int32(t))
	}
	risky := func(m, t int32) bool {
		for i, u := range pr.memberSubs(int(m)) {
			if (u == t || held[pr.subOff[m]+int32(i)] > 0) && b.load[m] > minSub[u] {
				return true
			}
		}
		return false
	}
	for _, t := range b.order {
		for g := pr.base[t]; g < pr.base[t+1]; g++ {
			if b.owner[g] >= 0 {
				continue
			}
			best, bestRisky := int32(-1), true
			for _, m := range b.subscribers(t) {
				r := risky(m, t)
				if best < 0 || !r && bestRisky || r == bestRisky && b.load[m] < b.load[best] {
					best, bestRisky = m, r
				}
			}
			b.owner[g] = best
			held[pr.slot(best, t)]++
			b.load[best]++
			for _, u := range pr.memberSubs(int(best)) {
				if minSub[u] == b.load[best]-1 {
					minSub[u] = lowest(u)
				}
			}
		}
	}
}
