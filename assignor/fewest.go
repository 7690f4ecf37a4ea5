package assignor

// keepMost is the last step of the general path when the plan moves a
// validly owned partition and complete found no plan keeping them all: at
// the plan's loads, it finds the placement that keeps the most owned
// partitions, and takes it if it keeps more.
//
// With every member's load fixed, the plan is balanced exactly when each
// topic's partitions go only to its subscribers with at most one more than
// the topic's least-loaded subscriber, so the choice is a transportation
// problem: a minimum-cost flow from topics to members (each member taking
// its load), in which a partition that stays with its owner costs -1 and
// any other 0. The balancer reaches its loads by local steps that can
// route a partition through several members where one hand-over would
// do; the flow keeps the loads and undoes such detours. It then hands
// moved partitions back where that alone keeps the rule (restore), which
// changes the loads, and solves again, until nothing more is kept.
func (b *balancer) keepMost() {
	for b.keepMostAt() {
		b.buildStacks()
		b.restore()
	}
}

// keepMostWork bounds one keepMostAt, in flow edges scanned.
const keepMostWork = 1 << 22

// keepMostAt makes owner the placement at the current loads that keeps
// the most owned partitions, if it keeps more than owner does, and reports
// whether it did.
func (b *balancer) keepMostAt() bool {
	pr := b.pr
	nt, n := len(pr.topics), len(pr.members)
	load := b.load
	minSub := make([]int32, nt)
	for t := range pr.topics {
		minSub[t] = -1
		for _, m := range b.subscribers(int32(t)) {
			if minSub[t] < 0 || load[m] < minSub[t] {
				minSub[t] = load[m]
			}
		}
	}
	allowed := func(m, t int32) bool { return load[m] <= minSub[t]+1 }
	// own[k]: partitions of slot k's topic that its member validly owns.
	own := make([]int32, len(pr.subs))
	kept := 0
	for t := range pr.topics {
		b.setSlots(int32(t))
		for g := pr.base[t]; g < pr.base[t+1]; g++ {
			if c := b.claims[g]; c >= 0 {
				own[b.slot[c]]++
				if b.owner[g] == c {
					kept++
				}
			}
		}
	}
	// A member keeps at most its load, and only owned partitions of topics
	// it may hold: if the plan keeps that much, no placement keeps more.
	bound := 0
	for m := range n {
		var c int32
		for i, t := range pr.memberSubs(m) {
			if allowed(int32(m), t) {
				c += own[pr.subOff[m]+int32(i)]
			}
		}
		bound += int(min(c, load[m]))
	}
	if kept >= bound {
		return false
	}
	src, sink := nt+n, nt+n+1
	f := newNetwork(nt + n + 2)
	keepEdge := make([]int, len(pr.subs))
	otherEdge := make([]int, len(pr.subs))
	for k := range keepEdge {
		keepEdge[k], otherEdge[k] = -1, -1
	}
	for t := range pr.topics {
		f.add(src, t, pr.count[t], 0)
		for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
			m, k := b.subs[i], b.slotOf[i]
			if !allowed(m, int32(t)) {
				continue
			}
			if own[k] > 0 {
				keepEdge[k] = f.add(t, nt+int(m), own[k], -1)
			}
			otherEdge[k] = f.add(t, nt+int(m), pr.count[t], 0)
		}
	}
	for m := range n {
		f.add(nt+m, sink, load[m], 0)
	}
	work := keepMostWork
	got, cost := f.minCostFlow(src, sink, &work)
	if got < pr.total || int(-cost) <= kept {
		return false
	}
	// Rebuild owner: each member keeps as many of its owned partitions of a
	// topic as its keep edge carries, then takes the others its edges
	// carry, where the plan put them if it can, else in partition order.
	for t := range pr.topics {
		b.setSlots(int32(t))
		keepLeft := make(map[int32]int32)
		take := make(map[int32]int32)
		for _, m := range b.subscribers(int32(t)) {
			k := b.slot[m]
			if e := keepEdge[k]; e >= 0 {
				keepLeft[m] = f.flow(e)
			}
			if e := otherEdge[k]; e >= 0 {
				take[m] = f.flow(e)
			}
		}
		var rest []int32
		for g := pr.base[t]; g < pr.base[t+1]; g++ {
			if c := b.claims[g]; c >= 0 && keepLeft[c] > 0 {
				keepLeft[c]--
				b.owner[g] = c
				continue
			}
			b.owner[g] = -1 - b.owner[g] // remember the plan's holder
			rest = append(rest, g)
		}
		var left []int32
		for _, g := range rest {
			if m := -1 - b.owner[g]; m >= 0 && take[m] > 0 {
				take[m]--
				b.owner[g] = m
				continue
			}
			left = append(left, g)
		}
		for _, m := range b.subscribers(int32(t)) {
			for ; take[m] > 0; take[m]-- {
				b.owner[left[0]] = m
				left = left[1:]
			}
		}
	}
	return true
}
