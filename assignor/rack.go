package assignor

// rackAware reports whether racks can matter: partition racks are given and
// some member has a rack.
func (pr *problem) rackAware() bool {
	if len(pr.in.PartitionRacks) == 0 {
		return false
	}
	for _, m := range pr.members {
		if m.Rack != "" {
			return true
		}
	}
	return false
}

// rackFill gives each unowned partition, in partition order, to a member
// that still needs partitions (need[m] > 0) and sits in one of the
// partition's racks: the first such member in member order. Partitions with
// no such member stay unowned.
func (pr *problem) rackFill(owner, need []int32) {
	rackIx := map[string]int{}
	var rackMembers [][]int32
	for m, mem := range pr.members {
		if mem.Rack == "" {
			continue
		}
		r, ok := rackIx[mem.Rack]
		if !ok {
			r = len(rackMembers)
			rackIx[mem.Rack] = r
			rackMembers = append(rackMembers, nil)
		}
		rackMembers[r] = append(rackMembers[r], int32(m))
	}
	next := make([]int, len(rackMembers))
	for t, name := range pr.topics {
		racks := pr.in.PartitionRacks[name]
		for p := int32(0); p < pr.count[t] && int(p) < len(racks); p++ {
			g := pr.base[t] + p
			if owner[g] >= 0 {
				continue
			}
			best := int32(-1)
			for _, rack := range racks[p] {
				r, ok := rackIx[rack]
				if !ok {
					continue
				}
				ms := rackMembers[r]
				for next[r] < len(ms) && need[ms[next[r]]] == 0 {
					next[r]++
				}
				if next[r] < len(ms) && (best < 0 || ms[next[r]] < best) {
					best = ms[next[r]]
				}
			}
			if best >= 0 {
				owner[g] = best
				need[best]--
			}
		}
	}
}
