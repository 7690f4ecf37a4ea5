package fsm

import (
	"fmt"
	"slices"
	"time"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// base is what both member machines (the classic protocol's Member and the
// next-generation protocol's NextMember) share: the configuration, request
// and callback ids, the partitions owned with the lease over them, and the
// pacing of retries (pacing.go). Each machine embeds one, so that the lease
// rule below and the retry rules are written once.
type base struct {
	cfg    Config
	nextID uint64

	owned []Partition // sorted, see comparePartitions
	lease time.Time   // ownership ends here unless renewed

	// The retries of the machine's calls: consecutive failures, and when
	// the next attempt may go.
	failures int
	retryAt  time.Time

	// stopping: Stop was called; done: the member has finished (stopped,
	// or failed).
	stopping, done bool

	// refusals counts the calls shed (COORDINATOR_OVERLOADED) since a call
	// last succeeded; the first of them was reported.
	refusals int

	// losses counts the times the member lost partitions; lostUnreported
	// counts the partitions lost that no answered call has reported yet
	// (each machine says when a call reports them).
	losses         int
	lostUnreported int32

	// transit is how much longer than the coordinator held it the last
	// answered held call took, round trip (to be reported while
	// transitKnown), and transitEstimate what the member expects of the
	// next (see noteTransit).
	transit, transitEstimate time.Duration
	transitKnown             bool
}

func (b *base) id() uint64 {
	b.nextID++
	return b.nextID
}

// ending returns the state of a member that is stopping or has finished,
// or false.
func (b *base) ending() (State, bool) {
	switch {
	case b.done && b.stopping:
		return Stopped, true
	case b.done:
		return Failed, true
	case b.stopping:
		return Stopping, true
	}
	return 0, false
}

// soonest starts the search for a machine's next deadline: none once the
// member has finished, else the lease's end if it owns partitions.
func (b *base) soonest() deadline {
	var d deadline
	if !b.done && len(b.owned) > 0 {
		d.at(b.lease)
	}
	return d
}

// deadline is the earliest of the times given to at (zero: none yet).
type deadline struct{ t time.Time }

func (d *deadline) at(t time.Time) {
	if !t.IsZero() && (d.t.IsZero() || t.Before(d.t)) {
		d.t = t
	}
}

// Assignment returns the partitions the member owns, sorted.
func (b *base) Assignment() []Partition { return slices.Clone(b.owned) }

// Lease returns when the member's ownership ends unless renewed (the zero
// time before it owns anything).
func (b *base) Lease() time.Time { return b.lease }

// The lease rule. The member owns a partition until its lease ends: the
// send time of the last request the coordinator answered successfully (the
// answer proves that the coordinator refreshed the member's session no
// earlier than that) plus the session timeout, less the safety margin.
// renew moves the lease on; leaseEnded declares everything lost once it has
// run out; revokeDeadline and holdWithinLease keep revocations and held
// calls within it; withinLease (pacing.go) keeps retries within it.

// renew extends the lease: the coordinator answered a request emitted at
// sent successfully.
func (b *base) renew(sent time.Time) {
	if l := sent.Add(b.cfg.SessionTimeout - b.cfg.Margin); l.After(b.lease) {
		b.lease = l
	}
}

// leaseEnded declares everything owned lost (OnLost, at the lease's end)
// once the lease has ended, and reports whether it did.
func (b *base) leaseEnded(now time.Time, out *Output) bool {
	if len(b.owned) == 0 || now.Before(b.lease) {
		return false
	}
	out.Events = append(out.Events, Event{Kind: EventLost, Detail: fmt.Sprintf("lease ended: no request sent in the last %v succeeded; every partition is lost", b.cfg.SessionTimeout-b.cfg.Margin)})
	b.lose(now, out, b.lease)
	return true
}

// lose emits OnLost for everything owned, with the instant ownership ended
// as its (already past) deadline.
func (b *base) lose(now time.Time, out *Output, at time.Time) {
	if len(b.owned) == 0 {
		return
	}
	if at.After(now) {
		at = now
	}
	out.Callbacks = append(out.Callbacks, Callback{ID: b.id(), Kind: Lost, Partitions: b.owned, Deadline: at})
	b.lostUnreported += int32(len(b.owned))
	b.owned = nil
	b.losses++
}

// revokeDeadline is how long a revocation may take: until the rebalance's
// deadline (the rebalance timeout less the margin from now, or announced,
// if the coordinator announced an earlier one) or the lease's end,
// whichever comes first.
func (b *base) revokeDeadline(now, announced time.Time) time.Time {
	d := now.Add(b.cfg.RebalanceTimeout - b.cfg.Margin)
	if !announced.IsZero() && announced.Before(d) {
		d = announced
	}
	if len(b.owned) > 0 && b.lease.Before(d) {
		d = b.lease
	}
	return d
}

// holdWithinLease limits how long the coordinator may hold a call to half
// the time left on the lease while the member owns partitions, so that the
// answer renewing the lease arrives before the lease ends (the coordinator
// renews the session when the call arrives, but the member learns of it
// only from the answer).
func (b *base) holdWithinLease(now time.Time, h time.Duration) time.Duration {
	if len(b.owned) > 0 {
		h = min(h, b.lease.Sub(now)/2)
	}
	return max(h, 0)
}

// ownedLists appends what the member owns to lists, one list per topic;
// first is used for the first one.
func (b *base) ownedLists(first *regroupv1.TopicPartitions, lists []*regroupv1.TopicPartitions) []*regroupv1.TopicPartitions {
	for i := 0; i < len(b.owned); {
		t := b.owned[i].Topic
		end := i + 1
		for end < len(b.owned) && b.owned[end].Topic == t {
			end++
		}
		ps := make([]int32, 0, end-i)
		for ; i < end; i++ {
			ps = append(ps, b.owned[i].Partition)
		}
		tp := first
		if len(lists) > 0 {
			tp = &regroupv1.TopicPartitions{}
		}
		tp.Topic, tp.Partitions = t, ps
		lists = append(lists, tp)
	}
	return lists
}
