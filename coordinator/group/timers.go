package group

import (
	"time"
)

// timerEntry asks for member's session to be checked at at.
type timerEntry struct {
	at     time.Time
	member *member
}

// Before orders session checks by time, for the group's timer heap. A
// member has at most one live entry in the heap, the one whose time equals
// its timerAt; entries of removed members or superseded times are skipped
// when popped. Heartbeats move a session deadline later without touching
// the heap: the entry fires early, finds the deadline moved, and is pushed
// again.
func (e timerEntry) Before(o timerEntry) bool { return e.at.Before(o.at) }

// live reports whether e is its member's live entry.
func (e timerEntry) live() bool { return !e.member.removed && e.at.Equal(e.member.timerAt) }

// schedule makes sure m's session is checked no later than its deadline
// (or, in a next-generation group, its revocation deadline if earlier).
func (g *Group) schedule(m *member) {
	at := m.sessionDeadline
	if !m.revokeBy.IsZero() && m.revokeBy.Before(at) {
		at = m.revokeBy
	}
	if m.timerAt.IsZero() || at.Before(m.timerAt) {
		g.timers.Push(timerEntry{at: at, member: m})
		m.timerAt = at
	}
}

// dueSessions pops and returns the members whose session check is due.
func (g *Group) dueSessions(now time.Time) []*member {
	var due []*member
	for len(g.timers) > 0 && !g.timers[0].at.After(now) {
		e := g.timers.Pop()
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
		g.timers.Pop()
	}
	at(g.pending.nextDeadline(g.cfg.PendingMemberTimeout))
	at(g.assignAt)
	at(g.holdCheck)
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
