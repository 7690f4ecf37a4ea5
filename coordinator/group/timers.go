package group

import (
	"container/heap"
	"time"
)

// timerEntry asks for member's session to be checked at at.
type timerEntry struct {
	at     time.Time
	member string
}

// timerHeap orders session checks by time. A member has at most one live
// entry, the one whose time equals its timerAt; entries of removed members
// or superseded times are skipped when popped. Heartbeats move a session
// deadline later without touching the heap: the entry fires early, finds
// the deadline moved, and is pushed again.
type timerHeap []timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// schedule makes sure m's session is checked no later than its deadline.
func (g *Group) schedule(m *member) {
	if m.timerAt.IsZero() || m.sessionDeadline.Before(m.timerAt) {
		heap.Push(&g.timers, timerEntry{at: m.sessionDeadline, member: m.id})
		m.timerAt = m.sessionDeadline
	}
}

// dueSessions pops and returns the members whose session check is due.
func (g *Group) dueSessions(now time.Time) []*member {
	var due []*member
	for len(g.timers) > 0 && !g.timers[0].at.After(now) {
		e := heap.Pop(&g.timers).(timerEntry)
		m := g.members[e.member]
		if m == nil || !e.at.Equal(m.timerAt) {
			continue
		}
		m.timerAt = time.Time{}
		due = append(due, m)
	}
	return due
}

// NextDeadline returns when the driver must call Tick next, or the zero
// time if nothing is scheduled. It drops timer entries of removed members.
func (g *Group) NextDeadline() time.Time {
	var next time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for len(g.timers) > 0 {
		e := g.timers[0]
		if m := g.members[e.member]; m != nil && e.at.Equal(m.timerAt) {
			at(e.at)
			break
		}
		heap.Pop(&g.timers)
	}
	for _, exp := range g.pending {
		at(exp)
	}
	switch g.state {
	case PreparingRebalance:
		at(g.delayDeadline)
		at(g.joinDeadline)
	case CompletingRebalance:
		at(g.syncDeadline)
	case Stable:
		at(g.syncDeadline)
		at(g.strandCheck)
		for _, m := range g.waiters() {
			if m.syncReq != 0 {
				at(m.deliverAt)
			}
		}
	case Empty:
		at(g.emptySince.Add(g.cfg.EmptyRetention))
	}
	return next
}
