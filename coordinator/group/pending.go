package group

import (
	"slices"
	"time"

	"github.com/regroup-dev/regroup/internal/minheap"
)

// pendingIDs are the member ids minted for first JoinGroups (MEMBER_ID_REQUIRED)
// that no second JoinGroup has used yet (KIP-394). Kafka keeps such an id
// for the session timeout its requester asked for, and lets it hold the join
// barrier all that time; one request then stalls a group's rebalances for
// up to 30 minutes. Here an id is valid for at most
// Config.PendingMemberTimeout, and holds a barrier only if it was minted
// during that join phase (a real member's second join follows its first
// within a round trip, and one minted earlier starts or joins the rebalance
// itself), and only until Config.PendingMemberTimeout after every member
// has rejoined, however many ids keep arriving. Lookups are map reads and
// expiry pops a heap: no operation scans the ids.
type pendingIDs struct {
	ids     map[string]pendingID
	expiry  minheap.Heap[pendingExpiry] // may hold entries of ids since used
	phase   int                         // the join phase in progress; see newPhase
	holding int                         // ids minted in this join phase
	readyAt time.Time                   // when every member had rejoined in this phase, or zero
}

type pendingID struct {
	expires  time.Time
	phase    int    // the join phase it was minted in, or -1 outside one
	identity string // who asked for it: only that identity may use it
}

type pendingExpiry struct {
	at time.Time
	id string
}

// Before orders expiries by time, for the heap.
func (e pendingExpiry) Before(o pendingExpiry) bool { return e.at.Before(o.at) }

func newPendingIDs() pendingIDs { return pendingIDs{ids: map[string]pendingID{}} }

func (p *pendingIDs) len() int { return len(p.ids) }

func (p *pendingIDs) has(id string) bool {
	_, ok := p.ids[id]
	return ok
}

// add records id, minted for identity and valid until expires; inJoin says
// whether it was minted during a join phase, where it may hold the barrier.
func (p *pendingIDs) add(id, identity string, expires time.Time, inJoin bool) {
	e := pendingID{expires: expires, phase: -1, identity: identity}
	if inJoin {
		e.phase = p.phase
		p.holding++
	}
	p.ids[id] = e
	p.expiry.Push(pendingExpiry{at: expires, id: id})
}

// owner returns the identity id was minted for.
func (p *pendingIDs) owner(id string) string { return p.ids[id].identity }

// take removes id and reports whether it was pending.
func (p *pendingIDs) take(id string) bool {
	e, ok := p.ids[id]
	if !ok {
		return false
	}
	delete(p.ids, id)
	if e.phase == p.phase {
		p.holding--
	}
	return true
}

// expire drops the ids that expired by now.
func (p *pendingIDs) expire(now time.Time) {
	for len(p.expiry) > 0 && !p.expiry[0].at.After(now) {
		x := p.expiry.Pop()
		if e, ok := p.ids[x.id]; ok && e.expires.Equal(x.at) {
			p.take(x.id)
		}
	}
}

// newPhase starts a join phase: the ids minted before it hold no barrier.
func (p *pendingIDs) newPhase() {
	p.phase++
	p.holding = 0
	p.readyAt = time.Time{}
}

// holdBarrier reports whether pending ids hold a join barrier that every
// member has joined at now: ids minted in this phase, for at most wait
// after the first time every member had joined.
func (p *pendingIDs) holdBarrier(now time.Time, wait time.Duration) bool {
	if p.holding == 0 {
		return false
	}
	if p.readyAt.IsZero() {
		p.readyAt = now
	}
	return now.Before(p.readyAt.Add(wait))
}

// nextDeadline is the next expiry, and, while ids hold the barrier of a
// group whose members have all joined, the end of that hold.
func (p *pendingIDs) nextDeadline(wait time.Duration) time.Time {
	for len(p.expiry) > 0 {
		if e, ok := p.ids[p.expiry[0].id]; ok && e.expires.Equal(p.expiry[0].at) {
			break
		}
		p.expiry.Pop()
	}
	var next time.Time
	if len(p.expiry) > 0 {
		next = p.expiry[0].at
	}
	if p.holding > 0 && !p.readyAt.IsZero() {
		if end := p.readyAt.Add(wait); next.IsZero() || end.Before(next) {
			next = end
		}
	}
	return next
}

// sorted returns the ids, sorted.
func (p *pendingIDs) sorted() []string {
	ids := make([]string, 0, len(p.ids))
	for id := range p.ids {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
