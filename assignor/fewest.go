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
	f := newCostNet(nt + n + 2)
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

// costNet is a flow network with edge costs for minCostFlow; edge e's
// reverse is e^1.
type costNet struct {
	head, next, to []int
	cap, cost      []int32
	orig           []int32
	dist           []int32
	inQueue        []bool
	level, iter    []int
	queue          []int
}

func newCostNet(nodes int) *costNet {
	f := &costNet{head: make([]int, nodes), dist: make([]int32, nodes), inQueue: make([]bool, nodes), level: make([]int, nodes), iter: make([]int, nodes)}
	for i := range f.head {
		f.head[i] = -1
	}
	return f
}

// add adds an edge from u to v and returns its index.
func (f *costNet) add(u, v int, c, cost int32) int {
	e := len(f.to)
	f.to = append(f.to, v, u)
	f.cap = append(f.cap, c, 0)
	f.orig = append(f.orig, c, 0)
	f.cost = append(f.cost, cost, -cost)
	f.next = append(f.next, f.head[u], f.head[v])
	f.head[u], f.head[v] = e, e+1
	return e
}

// flow returns the flow on edge e.
func (f *costNet) flow(e int) int32 { return f.orig[e] - f.cap[e] }

// minCostFlow sends as much flow from s to t as it can at the least cost
// and returns the flow and its cost: successive shortest paths, each
// phase finding the costs from s (Bellman-Ford, queued) and then a
// blocking flow (Dinic's) along the edges on shortest paths. Each edge
// scanned costs one unit of work; it stops when work runs out.
func (f *costNet) minCostFlow(s, t int, work *int) (flow int32, cost int64) {
	const inf = int32(1 << 30)
	for *work > 0 {
		for i := range f.dist {
			f.dist[i] = inf
		}
		f.dist[s] = 0
		f.queue = append(f.queue[:0], s)
		f.inQueue[s] = true
		for q := 0; q < len(f.queue); q++ {
			u := f.queue[q]
			f.inQueue[u] = false
			for e := f.head[u]; e >= 0; e = f.next[e] {
				*work--
				if v := f.to[e]; f.cap[e] > 0 && f.dist[u]+f.cost[e] < f.dist[v] {
					f.dist[v] = f.dist[u] + f.cost[e]
					if !f.inQueue[v] {
						f.inQueue[v] = true
						f.queue = append(f.queue, v)
					}
				}
			}
			if *work <= 0 {
				return flow, cost
			}
		}
		if f.dist[t] == inf {
			return flow, cost
		}
		for *work > 0 && f.levels(s, t, work) {
			copy(f.iter, f.head)
			for {
				d := f.push(s, t, 1<<30, work)
				if d == 0 {
					break
				}
				flow += d
				cost += int64(d) * int64(f.dist[t])
			}
		}
	}
	return flow, cost
}

// tight reports whether edge e from u lies on a shortest path.
func (f *costNet) tight(u, e int) bool {
	return f.cap[e] > 0 && f.dist[f.to[e]] == f.dist[u]+f.cost[e]
}

// levels numbers the nodes by hops from s over tight edges and reports
// whether t is reached.
func (f *costNet) levels(s, t int, work *int) bool {
	for i := range f.level {
		f.level[i] = -1
	}
	f.level[s] = 0
	f.queue = append(f.queue[:0], s)
	for q := 0; q < len(f.queue); q++ {
		u := f.queue[q]
		for e := f.head[u]; e >= 0; e = f.next[e] {
			*work--
			if v := f.to[e]; f.level[v] < 0 && f.tight(u, e) {
				f.level[v] = f.level[u] + 1
				f.queue = append(f.queue, v)
			}
		}
	}
	return f.level[t] >= 0
}

func (f *costNet) push(u, t int, limit int32, work *int) int32 {
	if u == t {
		return limit
	}
	for ; f.iter[u] >= 0; f.iter[u] = f.next[f.iter[u]] {
		e := f.iter[u]
		*work--
		v := f.to[e]
		if f.level[v] == f.level[u]+1 && f.tight(u, e) {
			if d := f.push(v, t, min(limit, f.cap[e]), work); d > 0 {
				f.cap[e] -= d
				f.cap[e^1] += d
				return d
			}
		}
	}
	return 0
}
