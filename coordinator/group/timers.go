package group

import (
	"time"
)

// timerEntry asks for member's session to be checked at at.
type timerEntry struct {
	at     time.Time
	member *member
}

// timerHeap orders session checks by time. A member has at most one live
// entry, the one whose time equals its timerAt; entries of removed members
// or superseded times are skipped when popped. Heartbeats move a session
// deadline later without touching the heap: the entry fires early, finds
// the deadline moved, and is pushed again. push and pop are
// container/heap's algorithm, typed: no entry is boxed.
type timerHeap []timerEntry

func (h timerHeap) less(i, j int) bool { return h[i].at.Before(h[j].at) }

func (h *timerHeap) push(e timerEntry) {
	*h = append(*h, e)
	s := *h
	for j := len(s) - 1; ; {
		i := (j - 1) / 2 // parent
		if i == j || !s.less(j, i) {
			break
		}
		s[i], s[j] = s[j], s[i]
		j = i
	}
}

func (h *timerHeap) pop() timerEntry {
	s := *h
	n := len(s) - 1
	s[0], s[n] = s[n], s[0]
	for i := 0; ; {
		j1 := 2*i + 1
		if j1 >= n || j1 < 0 {
			break
		}
		j := j1 // left child
		if j2 := j1 + 1; j2 < n && s.less(j2, j1) {
			j = j2
		}
		if !s.less(j, i) {
			break
		}
		s[i], s[j] = s[j], s[i]
		i = j
	}
	e := s[n]
	*h = s[:n]
	return e
}

// live reports whether e is its member's live entry.
func (e timerEntry) live() bool { return !e.member.removed && e.at.Equal(e.member.timerAt) }

// schedule makes sure m's session is checked no later than its deadline.
func (g *Group) schedule(m *member) {
	if m.timerAt.IsZero() || m.sessionDeadline.Before(m.timerAt) {
		g.timers.push(timerEntry{at: m.sessionDeadline, member: m})
		m.timerAt = m.sessionDeadline
	}
}

// dueSessions pops and returns the members whose session check is due.
func (g *Group) dueSessions(now time.Time) []*member {
	var due []*member
	for len(g.timers) > 0 && !g.timers[0].at.After(now) {
		e := g.timers.pop()
		if !e.live() {
			continue
		}
		e.member.timerAt = time.Time{}
		due = append(due, e.member)
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
		if e := g.timers[0]; e.live() {
			at(e.at)
			break
		}
		g.timers.pop()
	}
	if len(g.pending) > 0 {
		for _, exp := range g.pending {
			at(exp)
		}
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
