package assignor

// network is a flow network for Dinic's algorithm, with a cost on every
// edge for minCostFlow (zero where only the amount matters: maxflow);
// edge e's reverse is e^1. complete checks with it that free partitions
// can be dealt, keepMost places partitions to keep the most owned ones.
type network struct {
	head, next, to  []int
	cap, cost, orig []int32
	dist            []int32 // minCostFlow's costs from the source
	inQueue         []bool
	level, iter     []int
	queue           []int
	// costed: only edges on shortest paths (by dist) carry flow, as
	// minCostFlow's phases need; maxflow uses every edge with capacity.
	costed bool
}

func newNetwork(nodes int) *network {
	f := &network{head: make([]int, nodes), dist: make([]int32, nodes), inQueue: make([]bool, nodes),
		level: make([]int, nodes), iter: make([]int, nodes)}
	f.reset()
	return f
}

// reset removes every edge.
func (f *network) reset() {
	for i := range f.head {
		f.head[i] = -1
	}
	f.next, f.to, f.cap, f.cost, f.orig = f.next[:0], f.to[:0], f.cap[:0], f.cost[:0], f.orig[:0]
}

// add adds an edge from u to v of capacity c and the given cost per unit,
// and returns its index.
func (f *network) add(u, v int, c, cost int32) int {
	e := len(f.to)
	f.to = append(f.to, v, u)
	f.cap = append(f.cap, c, 0)
	f.orig = append(f.orig, c, 0)
	f.cost = append(f.cost, cost, -cost)
	f.next = append(f.next, f.head[u], f.head[v])
	f.head[u], f.head[v] = e, e+1
	return e
}

// flow returns the flow on edge e (for an edge whose capacity was not
// changed after add).
func (f *network) flow(e int) int32 { return f.orig[e] - f.cap[e] }

// maxflow pushes as much more flow from s to t as it can, whatever the
// costs, and returns how much; each edge scanned costs one unit of work,
// and it stops when work runs out.
func (f *network) maxflow(s, t int, work *int) int32 {
	f.costed = false
	var total int32
	for *work > 0 && f.levels(s, t, work) {
		total += f.blocking(s, t, work)
	}
	return total
}

// minCostFlow sends as much flow from s to t as it can at the least cost
// and returns the flow and its cost: successive shortest paths, each
// phase finding the costs from s (Bellman-Ford, queued) and then blocking
// flows (Dinic's) along the edges on shortest paths. Each edge scanned
// costs one unit of work; it stops when work runs out.
func (f *network) minCostFlow(s, t int, work *int) (flow int32, cost int64) {
	const inf = int32(1 << 30)
	f.costed = true
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
			d := f.blocking(s, t, work)
			flow += d
			cost += int64(d) * int64(f.dist[t])
		}
	}
	return flow, cost
}

// usable reports whether edge e from u may carry more flow in this phase.
func (f *network) usable(u, e int) bool {
	return f.cap[e] > 0 && (!f.costed || f.dist[f.to[e]] == f.dist[u]+f.cost[e])
}

// levels numbers the nodes by hops from s over usable edges and reports
// whether t is reached.
func (f *network) levels(s, t int, work *int) bool {
	for i := range f.level {
		f.level[i] = -1
	}
	f.level[s] = 0
	f.queue = append(f.queue[:0], s)
	for q := 0; q < len(f.queue); q++ {
		u := f.queue[q]
		for e := f.head[u]; e >= 0; e = f.next[e] {
			*work--
			if v := f.to[e]; f.level[v] < 0 && f.usable(u, e) {
				f.level[v] = f.level[u] + 1
				f.queue = append(f.queue, v)
			}
		}
	}
	return f.level[t] >= 0
}

// blocking pushes flow along the levels until no path is left, and
// returns how much.
func (f *network) blocking(s, t int, work *int) int32 {
	copy(f.iter, f.head)
	var total int32
	for {
		d := f.push(s, t, 1<<30, work)
		if d == 0 {
			return total
		}
		total += d
	}
}

func (f *network) push(u, t int, limit int32, work *int) int32 {
	if u == t {
		return limit
	}
	for ; f.iter[u] >= 0; f.iter[u] = f.next[f.iter[u]] {
		e := f.iter[u]
		*work--
		v := f.to[e]
		if f.level[v] == f.level[u]+1 && f.usable(u, e) {
			if d := f.push(v, t, min(limit, f.cap[e]), work); d > 0 {
				f.cap[e] -= d
				f.cap[e^1] += d
				return d
			}
		}
	}
	return 0
}
