package assignor

// repair is the free step the others miss, taken once per balance when
// they are stuck: it makes the fluid chain (from a member to another,
// either way) or exchange (a fluid partition for one of another topic)
// that lowers the violation (see violation) most, even where it raises
// the sum of squared loads, and returns true; failing that, a few times
// (repairSideways), one that leaves the violation as it was but reaches
// loads and holdings not seen before (seen, by signature). A member two
// below a topic's owned holder may need a partition that only a member at
// its own load can spare, and that member one from elsewhere. Only chains
// that end at a member two or more below a holder of a topic it
// subscribes to, or start at such a holder, are tried. Each evaluation
// costs work, and none is made once work runs out.
func (b *balancer) repair(work *int, seen map[uint64]bool) bool {
	r := &repairer{b: b, work: work, ext: make([]int32, len(b.pr.subs)), w: b.newWalk()}
	r.cost = len(b.pr.subs) + len(b.pr.topics)
	v := r.violation()
	if v == 0 {
		return false
	}
	seen[r.signature()] = true
	cands := r.chains()
	var best, side *chainMove
	for i := range cands {
		c := &cands[i]
		switch {
		case c.v < v && (best == nil || c.v < best.v):
			best = c
		case c.v == v && side == nil && !seen[c.sig]:
			side = c
		}
	}
	if best == nil && len(seen) <= repairSideways {
		best = side
	}
	if best == nil {
		return false
	}
	r.apply(best.path)
	return true
}

// repairer evaluates chains for repair on the balancer as it would be
// after hypothetical hops: ext adds to each slot's partitions (fluid ones).
type repairer struct {
	b    *balancer
	work *int
	cost int
	ext  []int32
	w    *walk
}

// chainMove is a chain of hops and the violation after it.
type chainMove struct {
	v    int64
	sig  uint64
	path []hop
}

// hop hands the top fluid partition of slot from (member giver) to slot to
// (member taker), of the same topic.
type hop struct{ from, to, giver, taker int32 }

// shift makes (sign 1) or unmakes (sign -1) path's hops hypothetically.
func (r *repairer) shift(path []hop, sign int32) {
	for _, h := range path {
		r.ext[h.from] -= sign
		r.ext[h.to] += sign
		r.b.load[h.giver] -= sign
		r.b.load[h.taker] += sign
	}
}

// apply makes path's hops, each only if its giver still has a fluid
// partition to give.
func (r *repairer) apply(path []hop) {
	b := r.b
	for _, h := range path {
		if b.gives(h.from, false) {
			b.move(h.from, h.to, h.giver, h.taker)
		}
	}
}

// chains lists the chains worth evaluating from the hypothetical state,
// each with the violation after it, in a deterministic order.
func (r *repairer) chains() []chainMove {
	b := r.b
	n := int32(len(b.pr.members))
	low, high := r.violators()
	var out []chainMove
	try := func(path []hop) {
		if *r.work <= 0 {
			return
		}
		*r.work -= r.cost
		r.shift(path, 1)
		v, sig := r.violation(), r.signature()
		r.shift(path, -1)
		out = append(out, chainMove{v: v, sig: sig, path: path})
	}
	for y := int32(0); y < n; y++ {
		if low[y] && *r.work > 0 {
			*r.work -= r.cost
			r.w.from(r, y, false)
			for _, d := range r.w.reached {
				try(r.w.path(d))
			}
		}
	}
	for d := int32(0); d < n; d++ {
		if high[d] && *r.work > 0 {
			*r.work -= r.cost
			r.w.from(r, d, true)
			for _, y := range r.w.reached {
				try(r.w.path(y))
			}
			r.exchanges(d, try)
		}
	}
	return out
}

// exchanges offers to try every exchange of a fluid partition of d for a
// fluid partition of another topic of a member that subscribes to the
// first: loads stay, the topics held change.
func (r *repairer) exchanges(d int32, try func([]hop)) {
	b := r.b
	pr := b.pr
	for i, t := range pr.memberSubs(int(d)) {
		kd := pr.subOff[d] + int32(i)
		if !r.fluid(kd) {
			continue
		}
		for j := b.subOff[t]; j < b.subOff[t+1]; j++ {
			z, kz := b.subs[j], b.slotOf[j]
			if z == d {
				continue
			}
			for i2, u := range pr.memberSubs(int(z)) {
				kzu := pr.subOff[z] + int32(i2)
				if u == t || !r.fluid(kzu) || !pr.subscribes(int(d), u) {
					continue
				}
				try([]hop{{from: kd, to: kz, giver: d, taker: z}, {from: kzu, to: pr.slot(d, u), giver: z, taker: d}})
			}
		}
	}
}

// count is slot k's partitions; fluid says whether it can give one.
func (r *repairer) count(k int32) int32 { return int32(len(r.b.stacks[k])) + r.ext[k] }

func (r *repairer) fluid(k int32) bool { return r.count(k) > r.b.owned[k] }

// violation sums, over topics, how far each holder is above the topic's
// least-loaded subscriber plus one and how far each subscriber is below
// the topic's most-loaded holder minus one: zero exactly when the rule
// holds.
func (r *repairer) violation() int64 {
	b := r.b
	var v int64
	for t := range b.pr.topics {
		lo, hi := r.extremes(int32(t))
		if hi < lo+2 {
			continue
		}
		for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
			l := b.load[b.subs[i]]
			if r.count(b.slotOf[i]) > 0 && l > lo+1 {
				v += int64(l - lo - 1)
			}
			if l < hi-1 {
				v += int64(hi - 1 - l)
			}
		}
	}
	return v
}

// extremes returns topic t's least subscriber load and greatest holder
// load (-1 without holders).
func (r *repairer) extremes(t int32) (lo, hi int32) {
	b := r.b
	lo, hi = -1, -1
	for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
		l := b.load[b.subs[i]]
		if lo < 0 || l < lo {
			lo = l
		}
		if r.count(b.slotOf[i]) > 0 && l > hi {
			hi = l
		}
	}
	return lo, hi
}

// violators returns the members below a holder of a topic they subscribe
// to by two or more (low), and the holders of a topic with a subscriber
// two or more below them (high).
func (r *repairer) violators() (low, high []bool) {
	b := r.b
	low = make([]bool, len(b.pr.members))
	high = make([]bool, len(b.pr.members))
	for t := range b.pr.topics {
		lo, hi := r.extremes(int32(t))
		for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
			m, l := b.subs[i], b.load[b.subs[i]]
			if l+2 <= hi {
				low[m] = true
			}
			if l >= lo+2 && r.count(b.slotOf[i]) > 0 {
				high[m] = true
			}
		}
	}
	return low, high
}

// walk is a breadth-first search over fluid hand-overs from one member,
// forwards (whom it can hand to, and on) or backwards (who can hand to
// it).
type walk struct {
	b        *balancer
	prev     []int32 // the member one hop nearer the start; -1 unreached
	hopOf    []hop   // the hop between a member and prev
	expanded []bool  // per topic
	reached  []int32
}

func (b *balancer) newWalk() *walk {
	n := len(b.pr.members)
	w := &walk{b: b, prev: make([]int32, n), hopOf: make([]hop, n), expanded: make([]bool, len(b.pr.topics))}
	return w
}

// from searches from member s; reached lists the members found, s not
// included, nearest first.
func (w *walk) from(r *repairer, s int32, forward bool) {
	b := w.b
	pr := b.pr
	for m := range w.prev {
		w.prev[m] = -1
	}
	clear(w.expanded)
	w.prev[s] = s
	w.reached = w.reached[:0]
	queue := []int32{s}
	for q := 0; q < len(queue); q++ {
		x := queue[q]
		for i, t := range pr.memberSubs(int(x)) {
			kx := pr.subOff[x] + int32(i)
			if forward && !r.fluid(kx) {
				continue
			}
			if !forward {
				if w.expanded[t] {
					continue
				}
				w.expanded[t] = true
			}
			for j := b.subOff[t]; j < b.subOff[t+1]; j++ {
				z, kz := b.subs[j], b.slotOf[j]
				if w.prev[z] >= 0 {
					continue
				}
				if forward {
					w.hopOf[z] = hop{from: kx, to: kz, giver: x, taker: z}
				} else {
					if !r.fluid(kz) {
						continue
					}
					w.hopOf[z] = hop{from: kz, to: kx, giver: z, taker: x}
				}
				w.prev[z] = x
				w.reached = append(w.reached, z)
				queue = append(queue, z)
			}
		}
	}
}

// path returns the hops between the start and m, in the order they can be
// made: from the giving end.
func (w *walk) path(m int32) []hop {
	var out []hop
	for x := m; w.prev[x] != x; x = w.prev[x] {
		out = append(out, w.hopOf[x])
	}
	return out
}

// repairSideways bounds the chains repair makes that leave the violation
// as it was, in one balance.
const repairSideways = 8

// repairWork bounds the evaluation work of repair in one balance, in
// member-topic pairs looked at: about a millisecond.
const repairWork = 1 << 20

// signature hashes the hypothetical loads and partitions per slot (FNV-1a).
func (r *repairer) signature() uint64 {
	h := uint64(14695981039346656037)
	mix := func(x int32) {
		h ^= uint64(uint32(x))
		h *= 1099511628211
	}
	for _, l := range r.b.load {
		mix(l)
	}
	for k := range r.ext {
		mix(r.count(int32(k)))
	}
	return h
}
