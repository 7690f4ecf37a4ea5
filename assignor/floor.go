package assignor

// floors returns, for each member, the fewest partitions it can end with
// when only fluid partitions move: its owned ones, and no fewer than one
// below any member that keeps an owned partition of a topic it subscribes
// to, as the balance rule requires of every plan that keeps them all.
func (b *balancer) floors() []int32 {
	pr := b.pr
	floor := make([]int32, len(pr.members))
	for m := range pr.members {
		for k := pr.subOff[m]; k < pr.subOff[m+1]; k++ {
			floor[m] += b.owned[k]
		}
	}
	for raised := true; raised; {
		raised = false
		for t := range pr.topics {
			top := int32(-1)
			for i := b.subOff[t]; i < b.subOff[t+1]; i++ {
				if b.owned[b.slotOf[i]] > 0 {
					top = max(top, floor[b.subs[i]])
				}
			}
			for _, m := range b.subscribers(int32(t)) {
				if floor[m] < top-1 {
					floor[m] = top - 1
					raised = true
				}
			}
		}
	}
	return floor
}

// spare reports whether member m may give a partition away: it would not
// drop below its floor.
func (b *balancer) spare(m int32) bool {
	return b.floor == nil || b.load[m] > b.floor[m]
}

// lift raises a member below its floor by one partition, by a chain of
// fluid hand-overs from a member above its own floor: from one with at
// least as many partitions as the member it raises if it can, else from
// any. One search starts from every member below its floor. It reports
// whether it found one.
func (b *balancer) lift() bool {
	for _, even := range []bool{true, false} {
		s := b.newSearch()
		for y := range b.pr.members {
			if b.load[y] < b.floor[y] {
				s.start(int32(y))
			}
		}
		if len(s.queue) == 0 {
			return false
		}
		if s.run(func(d int32) bool {
			if !b.spare(d) {
				return false
			}
			y := d
			for s.next[y] != y {
				y = s.next[y]
			}
			return !even || b.load[d] >= b.load[y]+1
		}) {
			return true
		}
	}
	return false
}
