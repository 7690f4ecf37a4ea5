package assignor

// complete is the exact step of the general path, taken only when the
// balancer's plan moves a validly owned partition: it searches for a
// balanced plan (see Balanced) that keeps every validly owned partition
// with its owner and places only the others (the free ones), and if it
// finds one, owner becomes that plan. The balancer's free steps are local
// and miss such a plan where the members' loads must shift in several
// places at once; a cooperative follow-up round always has one (the first
// round's target), so there it saves a third round.
//
// The search is over the members' loads. Given every load, the plan exists
// exactly when every member holding an owned partition of a topic has at
// most one more than each subscriber of that topic, and the free
// partitions can be dealt (a flow from topics to members) so that each
// member reaches its load taking only topics whose subscribers all have at
// least its load minus one. The search keeps an interval of loads per
// member, narrows them by those rules and by the total (see narrow), checks
// the relaxed flow, and fixes one member's load at a time, depth first,
// nearest to the balancer's loads first. It is deterministic, and bounded
// by completeWork; without a plan in that bound the balancer's plan stands.
func (b *balancer) complete() bool {
	pr := b.pr
	c := &completer{pr: pr, b: b, work: completeWork}
	n := len(pr.members)
	c.own = make([]int32, n)
	c.free = make([]int32, len(pr.topics))
	c.fixed = make([]bool, len(pr.subs))
	for t := range pr.topics {
		b.setSlots(int32(t))
		for g := pr.base[t]; g < pr.base[t+1]; g++ {
			if m := b.claims[g]; m >= 0 {
				c.own[m]++
				c.fixed[b.slot[m]] = true
			} else {
				c.free[t]++
				c.nfree++
			}
		}
	}
	lo, hi := make([]int32, n), make([]int32, n)
	for m := range n {
		lo[m], hi[m] = c.own[m], c.own[m]
		for _, t := range pr.memberSubs(m) {
			hi[m] += c.free[t]
		}
	}
	c.ref = b.load
	c.net = newNetwork(len(pr.topics) + n + 2)
	x := c.search(lo, hi)
	if x == nil {
		return false
	}
	c.apply(x)
	return true
}

// completeWork bounds complete's work, in flow edges scanned and member
// topic pairs looked at: a few milliseconds.
const completeWork = 1 << 22

type completer struct {
	pr    *problem
	b     *balancer
	own   []int32 // validly owned partitions of each member
	free  []int32 // free partitions of each topic
	nfree int32
	fixed []bool  // per slot: the member owns a partition of the topic
	ref   []int32 // the balancer's loads: tried first
	work  int
	net   *network
}

// search returns the free partitions per slot of a balanced plan with
// loads within lo and hi, or nil. It modifies lo and hi.
func (c *completer) search(lo, hi []int32) []int32 {
	if !c.narrow(lo, hi) {
		return nil
	}
	x, ok := c.flow(lo, hi)
	if !ok {
		return nil
	}
	pick := -1
	for m := range lo {
		if lo[m] < hi[m] && (pick < 0 || hi[m]-lo[m] < hi[pick]-lo[pick]) {
			pick = m
		}
	}
	if pick < 0 {
		return x
	}
	// Values nearest the balancer's load first, lower first on a tie.
	r := min(max(c.ref[pick], lo[pick]), hi[pick])
	for d := int32(0); r-d >= lo[pick] || r+d <= hi[pick]; d++ {
		for _, v := range [2]int32{r - d, r + d} {
			if v < lo[pick] || v > hi[pick] || d == 0 && v != r-d {
				continue
			}
			if c.work <= 0 {
				return nil
			}
			lo2, hi2 := append([]int32(nil), lo...), append([]int32(nil), hi...)
			lo2[pick], hi2[pick] = v, v
			if x := c.search(lo2, hi2); x != nil {
				return x
			}
		}
	}
	return nil
}

// narrow tightens lo and hi by the rules that every plan keeping the owned
// partitions must meet: a member holding an owned partition of a topic has
// at most one more than each subscriber of it, and the loads add up to the
// partitions. It reports false if an interval empties.
func (c *completer) narrow(lo, hi []int32) bool {
	pr, b := c.pr, c.b
	total := pr.total
	for changed := true; changed; {
		changed = false
		for t := range pr.topics {
			minHi, maxLo := int32(-1), int32(-1)
			for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
				m := b.subs[i]
				if minHi < 0 || hi[m] < minHi {
					minHi = hi[m]
				}
				if c.fixed[b.slotOf[i]] && lo[m] > maxLo {
					maxLo = lo[m]
				}
			}
			c.work -= int(b.subOff[t+1] - b.subOff[t])
			for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
				m := b.subs[i]
				if c.fixed[b.slotOf[i]] && hi[m] > minHi+1 {
					hi[m], changed = minHi+1, true
				}
				if lo[m] < maxLo-1 {
					lo[m], changed = maxLo-1, true
				}
			}
		}
		var sumLo, sumHi int32
		for m := range lo {
			if lo[m] > hi[m] {
				return false
			}
			sumLo += lo[m]
			sumHi += hi[m]
		}
		if sumLo > total || sumHi < total {
			return false
		}
		for m := range lo {
			if h := total - (sumLo - lo[m]); hi[m] > h {
				hi[m], changed = h, true
			}
			if l := total - (sumHi - hi[m]); lo[m] < l {
				lo[m], changed = l, true
			}
		}
	}
	return true
}

// flow deals the free partitions to members between their bounds, each
// taking only topics whose subscribers may all have at least its least
// load minus one. With every load fixed this is exact. It returns the
// partitions per slot and whether all could be dealt.
func (c *completer) flow(lo, hi []int32) ([]int32, bool) {
	pr, b := c.pr, c.b
	nt, n := len(pr.topics), len(pr.members)
	src, sink := nt+n, nt+n+1
	f := c.net
	f.reset()
	for t := range pr.topics {
		if c.free[t] == 0 {
			continue
		}
		f.add(src, t, c.free[t], 0)
		minHi := int32(-1)
		for _, m := range b.subscribers(int32(t)) {
			if minHi < 0 || hi[m] < minHi {
				minHi = hi[m]
			}
		}
		for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
			if m := b.subs[i]; lo[m] <= minHi+1 && hi[m] > c.own[m] {
				f.add(t, nt+int(m), c.free[t], 0)
			}
		}
	}
	sinks := make([]int, n)
	var need int32
	for m := range n {
		sinks[m] = f.add(nt+m, sink, lo[m]-c.own[m], 0)
		need += lo[m] - c.own[m]
	}
	if got := f.maxflow(src, sink, &c.work); got < need {
		return nil, false
	}
	for m := range n {
		f.cap[sinks[m]] += hi[m] - lo[m]
	}
	if got := f.maxflow(src, sink, &c.work); need+got < c.nfree {
		return nil, false
	}
	x := make([]int32, len(pr.subs))
	for t := range pr.topics {
		for e := f.head[t]; e >= 0; e = f.next[e] {
			if to := f.to[e]; to >= nt && to < nt+n && e%2 == 0 {
				x[pr.slot(int32(to-nt), int32(t))] += f.cap[e^1]
			}
		}
	}
	return x, true
}

// apply makes owner the plan: owned partitions with their owners, each
// slot taking x[slot] free partitions of its topic, where the balancer put
// them if it can, else to members in order.
func (c *completer) apply(x []int32) {
	pr, b := c.pr, c.b
	for t := range pr.topics {
		b.setSlots(int32(t))
		var rest []int32
		for g := pr.base[t]; g < pr.base[t+1]; g++ {
			if m := b.claims[g]; m >= 0 {
				b.owner[g] = m
				continue
			}
			if m := b.owner[g]; m >= 0 && x[b.slot[m]] > 0 {
				x[b.slot[m]]--
				continue
			}
			rest = append(rest, g)
		}
		for _, m := range b.subscribers(int32(t)) {
			for k := b.slot[m]; x[k] > 0; x[k]-- {
				b.owner[rest[0]] = m
				rest = rest[1:]
			}
		}
	}
	clear(b.load)
	for _, m := range b.owner {
		if m >= 0 {
			b.load[m]++
		}
	}
}
