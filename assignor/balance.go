package assignor

import "slices"

// balancer moves partitions between members of unequal subscriptions until
// the balance rule of Balanced holds, moving as few previously owned
// partitions as it can.
//
// A partition sitting with the member that owned it before (claims) is
// owned; any other is fluid, and moving it costs nothing. The balancer
// repeats these steps until the rule holds:
//
//  1. Free moves: topic by topic, a fluid partition moves from its
//     most-loaded holder to the topic's least-loaded subscriber while their
//     loads differ by two or more.
//  2. A free chain: when no free move is left, a member d holding a fluid
//     partition hands it to a member that hands a fluid partition on, and so
//     on, to a member with at least two fewer partitions than d (one
//     partition per hop; only the ends change load). This lets a member
//     that received new partitions of one topic give one of those up
//     instead of an owned partition of another topic.
//  3. A lift (while owned partitions stay put): a member below its floor
//     (see floors: fewer partitions than any plan keeping every owned
//     partition can give it) gets one by a fluid chain from a member above
//     its own floor, from one with at least as many partitions if there is
//     one. Until a paid step, no other step takes a member below its floor.
//  4. Level chains, a bounded number of times: a fluid chain that raises
//     the least-loaded member that a holder two above could give to
//     (relieve), or one that lowers the most-loaded holder of a topic
//     with a subscriber two below (shed, only where moves can be paid);
//     either may leave the sum of squared loads as it was.
//  5. A paid step: only if none of the above applies, the first topic that
//     still breaks the rule moves partitions, owned ones too, from its
//     most-loaded holders to its least-loaded subscribers.
//
// Free moves, free chains and paid steps lower the sum of squared loads;
// lifts lower the members' total shortfall below their floors, which
// none of the others raises; level chains are bounded. So this ends.
// Then restore
// hands a moved partition back to its previous owner wherever that alone
// keeps the rule, until none can go back: no partition ends away from a
// previous owner that could hold it.
type balancer struct {
	pr     *problem
	owner  []int32
	claims []int32 // nil: nobody owned anything before
	load   []int32
	subOff []int32 // subscribers of topic t: subs[subOff[t]:subOff[t+1]]
	subs   []int32
	slotOf []int32 // parallel to subs: the subscriber's slot for the topic (see problem.slot)
	order  []int32 // topics, fewest subscribers first
	slot   []int32 // scratch: each subscriber's slot for the topic at hand
	// stacks hold each slot's partitions: owned ones at the bottom (the
	// first owned[k]), fluid ones on top, so that a member gives fluid
	// partitions first. nil until the first move.
	stacks [][]int32
	owned  []int32
	paid   int // owned partitions away from their owner
	// floor is each member's floor (see floors) while only fluid
	// partitions move; nil when nothing owned is kept for sure.
	floor []int32
}

func (pr *problem) newBalancer(owner, claims, load []int32) *balancer {
	b := &balancer{pr: pr, owner: owner, claims: claims, load: load}
	b.subOff, b.subs = pr.subscribers()
	b.slotOf = make([]int32, len(b.subs))
	next := slices.Clone(b.subOff[:len(pr.topics)])
	for m := range pr.members {
		for i, t := range pr.memberSubs(m) {
			b.slotOf[next[t]] = pr.subOff[m] + int32(i)
			next[t]++
		}
	}
	b.order = make([]int32, len(pr.topics))
	for t := range b.order {
		b.order[t] = int32(t)
	}
	slices.SortFunc(b.order, func(x, y int32) int {
		nx, ny := b.subOff[x+1]-b.subOff[x], b.subOff[y+1]-b.subOff[y]
		if nx != ny {
			return int(nx - ny)
		}
		return int(x - y)
	})
	b.slot = make([]int32, len(pr.members))
	return b
}

// slot returns the index of member m's subscription to topic t in pr.subs,
// which numbers the (member, subscribed topic) pairs.
func (pr *problem) slot(m, t int32) int32 {
	i, _ := slices.BinarySearch(pr.memberSubs(int(m)), t)
	return pr.subOff[m] + int32(i)
}

func (b *balancer) subscribers(t int32) []int32 {
	return b.subs[b.subOff[t]:b.subOff[t+1]]
}

// setSlots points b.slot at each subscriber's slot for topic t.
func (b *balancer) setSlots(t int32) {
	for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
		b.slot[b.subs[i]] = b.slotOf[i]
	}
}

// buildStacks fills the stacks from owner, each part ascending.
func (b *balancer) buildStacks() {
	pr := b.pr
	size := make([]int32, len(pr.subs)+1)
	for t := range pr.topics {
		b.setSlots(int32(t))
		for _, m := range b.owner[pr.base[t]:pr.base[t+1]] {
			if m >= 0 {
				size[b.slot[m]+1]++
			}
		}
	}
	for k := range pr.subs {
		size[k+1] += size[k]
	}
	arena := make([]int32, size[len(pr.subs)])
	b.stacks = make([][]int32, len(pr.subs))
	b.owned = make([]int32, len(pr.subs))
	for k := range b.stacks {
		b.stacks[k] = arena[size[k]:size[k]:size[k+1]]
	}
	for t := range pr.topics {
		b.setSlots(int32(t))
		for pass := 0; pass < 2; pass++ {
			for g := pr.base[t]; g < pr.base[t+1]; g++ {
				m := b.owner[g]
				before := b.claims != nil && b.claims[g] == m
				if m >= 0 && before == (pass == 0) {
					k := b.slot[m]
					b.stacks[k] = append(b.stacks[k], g)
					if before {
						b.owned[k]++
					}
				}
			}
		}
	}
}

// gives reports whether slot k can give a partition: a fluid one, or any
// when paid.
func (b *balancer) gives(k int32, paid bool) bool {
	n := int32(len(b.stacks[k]))
	return n > b.owned[k] || paid && n > 0
}

// move gives the top partition of slot ks (member from) to slot kd (member
// to), of the same topic.
func (b *balancer) move(ks, kd, from, to int32) {
	b.put(kd, to, b.take(ks, len(b.stacks[ks])-1))
	b.load[from]--
	b.load[to]++
}

// take removes and returns the partition at index i of slot k's stack: the
// top, or any fluid one.
func (b *balancer) take(k int32, i int) int32 {
	st := b.stacks[k]
	last := len(st) - 1
	g := st[i]
	st[i] = st[last]
	b.stacks[k] = st[:last]
	if int32(last) < b.owned[k] {
		b.owned[k]--
		b.paid++
	}
	return g
}

// put gives partition g to slot k of member m: below the fluid ones if m
// owned it before.
func (b *balancer) put(k, m, g int32) {
	st := append(b.stacks[k], g)
	if b.claims != nil && b.claims[g] == m {
		o := b.owned[k]
		st[o], st[len(st)-1] = st[len(st)-1], st[o]
		b.owned[k]++
		b.paid--
	}
	b.stacks[k] = st
	b.owner[g] = m
}

// run balances: free moves, free chains, paid steps, then restore (see
// balancer).
func (b *balancer) run() { b.balance(true) }

// balance is run; without pay it stops instead of taking a paid step and
// reports whether the rule holds.
func (b *balancer) balance(pay bool) bool {
	if !b.unbalanced() {
		return true
	}
	b.buildStacks()
	// Without owned partitions a paid step costs nothing: no floors.
	owns := b.claims != nil && slices.ContainsFunc(b.owned, func(k int32) bool { return k > 0 })
	b.floor = nil
	if owns {
		b.floor = b.floors()
	}
	n := len(b.pr.members)
	load := b.load
	low := newMemberHeap(n, func(x, y int32) bool {
		return load[x] < load[y] || load[x] == load[y] && x < y
	})
	high := newMemberHeap(n, func(x, y int32) bool {
		return load[x] > load[y] || load[x] == load[y] && x < y
	})
	relief := len(b.pr.members)
	for {
		for moved := true; moved; {
			moved = false
			for _, t := range b.order {
				if b.balanceTopic(t, low, high, false) {
					moved = true
				}
			}
		}
		if !b.unbalanced() {
			break
		}
		if b.chain() {
			continue
		}
		if b.floor != nil && b.lift() {
			continue
		}
		if relief > 0 && (b.claims != nil && b.shed() || b.relieve()) {
			relief--
			continue
		}
		if !pay {
			return false
		}
		b.floor = nil
		for _, t := range b.order {
			if b.balanceTopic(t, low, high, true) {
				break
			}
		}
	}
	if b.paid > 0 {
		b.restore()
	}
	return true
}

// unbalanced reports whether some topic has a holder with two or more
// partitions more than one of its subscribers.
func (b *balancer) unbalanced() bool {
	pr := b.pr
	for t := range pr.topics {
		lo := int32(-1)
		for _, m := range b.subscribers(int32(t)) {
			if lo < 0 || b.load[m] < lo {
				lo = b.load[m]
			}
		}
		if b.stacks != nil {
			for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
				if len(b.stacks[b.slotOf[i]]) > 0 && b.load[b.subs[i]] >= lo+2 {
					return true
				}
			}
			continue
		}
		for _, m := range b.owner[pr.base[t]:pr.base[t+1]] {
			if m >= 0 && b.load[m] >= lo+2 {
				return true
			}
		}
	}
	return false
}

// balanceTopic moves partitions of topic t from its most-loaded holder to
// its least-loaded subscriber while their loads differ by two or more:
// fluid partitions only, or any when paid. It reports whether it moved any.
func (b *balancer) balanceTopic(t int32, low, high *memberHeap, paid bool) bool {
	subs := b.subscribers(t)
	lo, hi := int32(-1), int32(-1)
	b.setSlots(t)
	for _, m := range subs {
		l := b.load[m]
		if lo < 0 || l < lo {
			lo = l
		}
		if b.gives(b.slot[m], paid) && b.spare(m) && l > hi {
			hi = l
		}
	}
	if hi < lo+2 {
		return false
	}
	low.reset()
	high.reset()
	for _, m := range subs {
		low.push(m)
		if b.gives(b.slot[m], paid) && b.spare(m) {
			high.push(m)
		}
	}
	for len(high.items) > 0 {
		from, to := high.items[0], low.items[0]
		if b.load[from] < b.load[to]+2 {
			break
		}
		b.move(b.slot[from], b.slot[to], from, to)
		if b.gives(b.slot[from], paid) && b.spare(from) {
			high.fix(from)
		} else {
			high.remove(from)
		}
		low.fix(from)
		low.fix(to)
		switch {
		case high.has(to):
			high.fix(to)
		case b.gives(b.slot[to], paid) && b.spare(to):
			high.push(to)
		}
	}
	return true
}

// chain finds a free chain (see balancer) and moves one partition along
// each of its hops. It reports whether it found one.
//
// It searches backwards from the least-loaded members, level by level:
// from every member with load L it follows, in reverse, each hand-over of
// a fluid partition to it, and stops at the first member reached that has
// L+2 or more. A member first reached while searching from load L cannot
// reach a member with less, so no chain is missed.
func (b *balancer) chain() bool {
	n := int32(len(b.pr.members))
	byLoad := make([]int32, n)
	for m := range byLoad {
		byLoad[m] = int32(m)
	}
	slices.SortFunc(byLoad, func(x, y int32) int {
		if b.load[x] != b.load[y] {
			return int(b.load[x] - b.load[y])
		}
		return int(x - y)
	})
	s := b.newSearch()
	for i := 0; i < len(byLoad); {
		level := b.load[byLoad[i]]
		for ; i < len(byLoad) && b.load[byLoad[i]] == level; i++ {
			s.start(byLoad[i])
		}
		if s.run(func(d int32) bool { return b.load[d] >= level+2 && b.spare(d) }) {
			return true
		}
	}
	return false
}

// relieve is the free step of last resort: the least-loaded member y that
// a holder with two or more partitions more could give to gets one
// partition, by a chain of fluid hand-overs from a member d with more than
// y that can spare one (no topic d subscribes to has a holder above d).
// The chain may leave the sum of squared loads as it was, so run allows
// it a bounded number of times. It reports whether it found one.
func (b *balancer) relieve() bool {
	pr := b.pr
	maxHold := make([]int32, len(pr.topics))
	y := int32(-1)
	for t := range pr.topics {
		maxHold[t] = -1
		for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
			if l := b.load[b.subs[i]]; len(b.stacks[b.slotOf[i]]) > 0 && l > maxHold[t] {
				maxHold[t] = l
			}
		}
		for _, m := range b.subscribers(int32(t)) {
			if maxHold[t] >= b.load[m]+2 && (y < 0 || b.load[m] < b.load[y] || b.load[m] == b.load[y] && m < y) {
				y = m
			}
		}
	}
	if y < 0 {
		return false
	}
	s := b.newSearch()
	s.start(y)
	return s.run(func(d int32) bool {
		if b.load[d] <= b.load[y] || !b.spare(d) {
			return false
		}
		for _, t := range pr.memberSubs(int(d)) {
			if maxHold[t] > b.load[d] {
				return false
			}
		}
		return true
	})
}

// shed is relieve's counterpart from above: a member h that holds a
// partition of a topic with a subscriber two or more below h (the first in
// member order from which a chain exists) hands a fluid partition on, by a
// chain of fluid hand-overs, to a member e below h that can hold one more:
// every topic e then holds has no subscriber below e's old load. Members
// on the chain keep their loads and take only partitions of topics they
// may hold. It reports whether it found one.
func (b *balancer) shed() bool {
	pr := b.pr
	minSub := make([]int32, len(pr.topics))
	for t := range pr.topics {
		minSub[t] = -1
		for _, m := range b.subscribers(int32(t)) {
			if minSub[t] < 0 || b.load[m] < minSub[t] {
				minSub[t] = b.load[m]
			}
		}
	}
	n := len(pr.members)
	prev := make([]int32, n)
	from := make([]int32, n)
	for h := int32(0); h < int32(n); h++ {
		violating := false
		for i, t := range pr.memberSubs(int(h)) {
			if len(b.stacks[pr.subOff[h]+int32(i)]) > 0 && b.load[h] >= minSub[t]+2 {
				violating = true
			}
		}
		if violating && b.spare(h) && b.shedFrom(h, minSub, prev, from) {
			return true
		}
	}
	return false
}

// shedFrom searches the chain of shed from h, given each topic's least
// subscriber load; prev and from are scratch, one entry per member.
func (b *balancer) shedFrom(h int32, minSub, prev, from []int32) bool {
	pr := b.pr
	lh := b.load[h]
	for m := range prev {
		prev[m] = -1
	}
	prev[h] = h
	absorbs := func(e, u int32) bool {
		le := b.load[e]
		if le >= lh || minSub[u] < le {
			return false
		}
		for i, v := range pr.memberSubs(int(e)) {
			if len(b.stacks[pr.subOff[e]+int32(i)]) > 0 && minSub[v] < le {
				return false
			}
		}
		return true
	}
	queue := []int32{h}
	for q := 0; q < len(queue); q++ {
		m := queue[q]
		for i, u := range pr.memberSubs(int(m)) {
			k := pr.subOff[m] + int32(i)
			if !b.gives(k, false) {
				continue
			}
			for _, e := range b.subscribers(u) {
				if prev[e] >= 0 {
					continue
				}
				prev[e], from[e] = m, k
				if absorbs(e, u) {
					for x := e; x != h; x = prev[x] {
						b.move(from[x], pr.slot(x, pr.subs[from[x]]), prev[x], x)
					}
					return true
				}
				if minSub[u] >= b.load[e]-1 {
					queue = append(queue, e)
				} else {
					prev[e] = -1
				}
			}
		}
	}
	return false
}

// search walks fluid hand-overs backwards from its start members.
type search struct {
	b        *balancer
	next     []int32 // the member a member hands to; itself for a start; -1 unreached
	from     []int32 // the slot it hands from
	expanded []bool  // per topic
	queue    []int32
}

func (b *balancer) newSearch() *search {
	n := len(b.pr.members)
	s := &search{b: b, next: make([]int32, n), from: make([]int32, n), expanded: make([]bool, len(b.pr.topics))}
	for m := range s.next {
		s.next[m] = -1
	}
	return s
}

// start adds m as a chain's end, unless it was reached already.
func (s *search) start(m int32) {
	if s.next[m] < 0 {
		s.next[m] = m
		s.queue = append(s.queue, m)
	}
}

// run extends the search until it reaches a member d with found(d), then
// moves one partition along each hop from d to the end and reports true.
func (s *search) run(found func(d int32) bool) bool {
	b := s.b
	pr := b.pr
	for q := 0; q < len(s.queue); q++ {
		for _, t := range pr.memberSubs(int(s.queue[q])) {
			if s.expanded[t] {
				continue
			}
			s.expanded[t] = true
			for j := b.subOff[t]; j < b.subOff[t+1]; j++ {
				d, k := b.subs[j], b.slotOf[j]
				if s.next[d] >= 0 || !b.gives(k, false) {
					continue
				}
				s.next[d], s.from[d] = s.queue[q], k
				if found(d) {
					for m := d; s.next[m] != m; m = s.next[m] {
						b.move(s.from[m], pr.slot(s.next[m], pr.subs[s.from[m]]), m, s.next[m])
					}
					return true
				}
				s.queue = append(s.queue, d)
			}
		}
	}
	s.queue = s.queue[:0]
	return false
}

// restore hands moved partitions back to their previous owners wherever
// the balance rule allows, until none can go back: partition g of topic t,
// moved from x to y, goes back alone, or in exchange for a fluid partition
// of x that y can take.
//
// Going back alone (x gains one, y loses one) keeps the rule exactly when
// load[y] >= load[x]+1, every topic x then holds has no subscriber below
// load[x], and no topic y subscribes to has a holder above load[y]. An
// exchange changes no load; it keeps the rule exactly when no subscriber of
// t is below load[x]-1 and no subscriber of the exchanged partition's topic
// below load[y]-1. Each pass computes the per-topic minima and maxima
// exactly and keeps them safe (never too lenient) as partitions go back;
// the last pass, which hands back nothing, judges every partition on exact
// values. Every hand-back lowers the number of owned partitions away from
// their owner, so this ends.
func (b *balancer) restore() {
	pr := b.pr
	var moved, topic []int32
	for t := range pr.topics {
		for g := pr.base[t]; g < pr.base[t+1]; g++ {
			if c := b.claims[g]; c >= 0 && b.owner[g] != c {
				moved = append(moved, g)
				topic = append(topic, int32(t))
			}
		}
	}
	minSub := make([]int32, len(pr.topics))
	maxHold := make([]int32, len(pr.topics))
	for back := true; back; {
		back = false
		for t := range pr.topics {
			minSub[t], maxHold[t] = -1, -1
			for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
				l := b.load[b.subs[i]]
				if minSub[t] < 0 || l < minSub[t] {
					minSub[t] = l
				}
				if len(b.stacks[b.slotOf[i]]) > 0 && l > maxHold[t] {
					maxHold[t] = l
				}
			}
		}
		for j, g := range moved {
			if g < 0 || b.owner[g] == b.claims[g] {
				continue
			}
			x, y, t := b.claims[g], b.owner[g], topic[j]
			ky, kx := pr.slot(y, t), pr.slot(x, t)
			switch {
			case b.canReturn(x, y, t, minSub, maxHold):
				b.put(kx, x, b.take(ky, slices.Index(b.stacks[ky], g)))
				b.load[x]++
				b.load[y]--
				for _, s := range pr.memberSubs(int(y)) {
					minSub[s] = min(minSub[s], b.load[y])
				}
				for i, s := range pr.memberSubs(int(x)) {
					if len(b.stacks[pr.subOff[x]+int32(i)]) > 0 {
						maxHold[s] = max(maxHold[s], b.load[x])
					}
				}
			case minSub[t] >= b.load[x]-1:
				fx, fy := b.exchangeSlots(x, y, minSub)
				if fx < 0 {
					continue
				}
				b.put(kx, x, b.take(ky, slices.Index(b.stacks[ky], g)))
				b.put(fy, y, b.take(fx, len(b.stacks[fx])-1))
				maxHold[t] = max(maxHold[t], b.load[x])
				maxHold[pr.subs[fy]] = max(maxHold[pr.subs[fy]], b.load[y])
			default:
				continue
			}
			moved[j] = -1
			back = true
		}
	}
}

// canReturn reports whether handing a partition of topic t from y back to
// x keeps the balance rule (see restore).
func (b *balancer) canReturn(x, y, t int32, minSub, maxHold []int32) bool {
	pr := b.pr
	lx, ly := b.load[x], b.load[y]
	if ly < lx+1 {
		return false
	}
	for i, s := range pr.memberSubs(int(x)) {
		if (s == t || len(b.stacks[pr.subOff[x]+int32(i)]) > 0) && minSub[s] < lx {
			return false
		}
	}
	for _, s := range pr.memberSubs(int(y)) {
		if maxHold[s] > ly {
			return false
		}
	}
	return true
}

// exchangeSlots finds a topic s that both x and y subscribe to, of which x
// holds a fluid partition and which y may hold (no subscriber below
// load[y]-1), and returns x's and y's slots for it, or -1, -1.
func (b *balancer) exchangeSlots(x, y int32, minSub []int32) (int32, int32) {
	pr := b.pr
	xs := pr.memberSubs(int(x))
	for i, s := range pr.memberSubs(int(y)) {
		j, ok := slices.BinarySearch(xs, s)
		if !ok || minSub[s] < b.load[y]-1 {
			continue
		}
		if kx := pr.subOff[x] + int32(j); b.gives(kx, false) {
			return kx, pr.subOff[y] + int32(i)
		}
	}
	return -1, -1
}

// memberHeap is a binary heap of member indices with positions, so that a
// member's key can change in place.
type memberHeap struct {
	items []int32
	pos   []int32 // index in items, or -1
	less  func(x, y int32) bool
}

func newMemberHeap(n int, less func(x, y int32) bool) *memberHeap {
	h := &memberHeap{pos: make([]int32, n), less: less}
	for i := range h.pos {
		h.pos[i] = -1
	}
	return h
}

func (h *memberHeap) has(m int32) bool { return h.pos[m] >= 0 }

func (h *memberHeap) reset() {
	for _, m := range h.items {
		h.pos[m] = -1
	}
	h.items = h.items[:0]
}

func (h *memberHeap) push(m int32) {
	h.pos[m] = int32(len(h.items))
	h.items = append(h.items, m)
	h.up(int(h.pos[m]))
}

func (h *memberHeap) remove(m int32) {
	i := int(h.pos[m])
	last := len(h.items) - 1
	h.swap(i, last)
	h.items = h.items[:last]
	h.pos[m] = -1
	if i < last {
		h.down(i)
		h.up(i)
	}
}

// fix restores the heap after m's key changed.
func (h *memberHeap) fix(m int32) {
	i := int(h.pos[m])
	h.down(i)
	h.up(int(h.pos[m]))
}

func (h *memberHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.pos[h.items[i]] = int32(i)
	h.pos[h.items[j]] = int32(j)
}

func (h *memberHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(h.items[i], h.items[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *memberHeap) down(i int) {
	n := len(h.items)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && h.less(h.items[c+1], h.items[c]) {
			c++
		}
		if !h.less(h.items[c], h.items[i]) {
			return
		}
		h.swap(i, c)
		i = c
	}
}
