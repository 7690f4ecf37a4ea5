package group

import "fmt"

// CheckNextCounts checks a next-generation group's bookkeeping against
// its members: the count of members that have not converged, and the
// state it implies.
func (g *Group) CheckNextCounts() error {
	if !g.next {
		return nil
	}
	n := 0
	for _, m := range g.order {
		settled := m.absent || (m.epoch == g.assignEpoch && m.assigned.equal(m.target) && m.owned.equal(m.assigned))
		if settled != m.settled {
			return fmt.Errorf("member %s is marked settled=%v but is settled=%v", m.id, m.settled, settled)
		}
		if !settled {
			n++
		}
	}
	if n != g.unsettled {
		return fmt.Errorf("the group counts %d unsettled members, there are %d", g.unsettled, n)
	}
	return nil
}
