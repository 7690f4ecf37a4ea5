package fsm

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/regroup-dev/regroup"
)

// The pacing of a member's calls, shared by both machines: how long a held
// call is held (spreadPeriod), when a probe goes beside an overdue one
// (heartbeatSlack, probeGap), and how long to wait before a retry (backoff,
// shed, retryLater), always within the lease (withinLease).

// spreadPeriod is how long the member's next held call (a heartbeat, or a
// next-generation Reconcile) is held, or how long it waits after an answer
// that came at once: the interval h less a random part of it, which spreads
// a group's calls over the interval. Answers that reach many members at
// once (a join or sync barrier, a rebalance notice, a new target
// assignment, a coordinator that failed or moved) align their calls, and
// with a fixed period they would stay aligned for good, every member
// calling in the same instant of every interval. So the first period after
// such an answer (any but a held call's, answered after its hold: spread
// false) loses up to the whole interval, uniformly, and the next ones (spread
// true) up to a tenth of it, which keeps the spread without adding more than
// a twentieth to the call rate. Periods only get shorter than the
// interval, so the lease a member holds at worst (session less margin less
// two intervals, RidesFailover) is unchanged. Without Jitter the period is
// the interval.
func (b *base) spreadPeriod(h time.Duration, spread bool) time.Duration {
	if b.cfg.Jitter == nil {
		return h
	}
	part := h / 10
	if !spread {
		part = h
	}
	return h - time.Duration(b.cfg.Jitter()*float64(part))
}

// heartbeatSlack is how long past its hold a held call's answer may take
// before a probe goes out beside it: a tenth of the session, between 200 ms
// and 1 s.
func heartbeatSlack(session time.Duration) time.Duration {
	return min(max(session/10, 200*time.Millisecond), time.Second)
}

// slack is how long past its hold a held call's answer may take before a
// probe goes beside it (sent at now, held for hold): heartbeatSlack, plus
// twice the transit the member's answers have lately taken
// (transitEstimate), at most a tenth of the session (a probe is also how
// a member finds a new leader after a failover, and the new leader's
// session for it runs from its start), and, while the member owns
// partitions, no more than leaves the probe's answer the expected transit
// to come back before the lease ends. A coordinator short of CPU answers every call late, and
// a probe that goes before the answer can come is one more call in the
// queue that made it late: with a fixed slack, every member would probe
// every interval once transits pass it, doubling the load of an
// overloaded coordinator. As the lease runs out the added part shrinks,
// so that a probe still goes while the lease can be saved.
func (b *base) slack(now time.Time, hold time.Duration) time.Duration {
	d := heartbeatSlack(b.cfg.SessionTimeout)
	extra := min(2*b.transitEstimate, b.cfg.SessionTimeout/10)
	if len(b.owned) > 0 && b.lease.After(now) {
		extra = min(extra, max(b.lease.Sub(now)-hold-d-b.transitEstimate, 0))
	}
	return d + extra
}

// probeGap is how long a probe waits for its answer before the next probe
// goes: the slack, doubled for every probe already sent (probes) for the
// same held call, within the lease (withinLease). A coordinator that is
// slow rather than gone (overloaded: its calls queue behind one another)
// still answers, and a call it answers after the member gave up on it is
// work wasted; probes every slack would add a call per member and slack to
// the queue that made them late. Within the lease, the gaps shrink as it
// runs out, so a probe still goes while the lease can be saved.
func (b *base) probeGap(now time.Time, probes int) time.Duration {
	d := b.slack(now, 0)
	for i := 0; i < probes && d < b.cfg.SessionTimeout; i++ {
		d *= 2
	}
	return b.withinLease(now, d)
}

// backoff returns the delay before retry number n (1-based) at now: the
// minimum backoff doubled per retry up to the maximum, within the lease
// (withinLease), less a random part of up to half. Retries come faster as
// the lease runs out, so that a coordinator that is back, or a new leader,
// is found while the lease can still be saved.
func (b *base) backoff(now time.Time, n int) time.Duration {
	d := b.cfg.MinBackoff
	for i := 1; i < n && d < b.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = b.withinLease(now, min(d, b.cfg.MaxBackoff))
	if b.cfg.Jitter != nil {
		d = d/2 + time.Duration(b.cfg.Jitter()*float64(d/2))
	}
	return d
}

// withinLease limits a wait before a retry: while the member owns
// partitions, none runs past a quarter of the time left on its lease (and
// none is shorter than the minimum backoff), so that retries come faster
// as the lease runs out and one lands while the lease can still be saved.
func (b *base) withinLease(now time.Time, d time.Duration) time.Duration {
	if len(b.owned) > 0 && b.lease.After(now) {
		d = max(min(d, b.lease.Sub(now)/4), b.cfg.MinBackoff)
	}
	return d
}

// noteTransit records the transit of a held call (a heartbeat or a
// Reconcile, or its probe) sent at sent, asked to be held for hold and
// answered at now, which the coordinator says it held for heldMs: the
// round trip less the hold, the time the call and its answer spent in
// networks, kernels and the coordinator's transport. The member's next
// call reports it, once (takeTransit): a coordinator short of CPU queues
// calls where it cannot time them itself, and sheds new work when most of
// its members report long transits. A held call whose answer says it was
// held for nothing is not measured: an older coordinator does not say how
// long it held a call, and counting the whole hold as transit would delay
// every probe.
//
// It also keeps transitEstimate, which lengthens the slack before a probe:
// it takes a longer transit at once and lets a shorter one in by a quarter
// of the difference per answer, as TCP's retransmission timer does with
// round trips, and never exceeds a third of the session (a member frozen
// by a pause sees one very long transit).
func (b *base) noteTransit(now, sent time.Time, hold time.Duration, heldMs int64) {
	if heldMs == 0 && hold > 0 {
		return
	}
	b.transit = max(now.Sub(sent)-time.Duration(heldMs)*time.Millisecond, 0)
	b.transitKnown = true
	if b.transit >= b.transitEstimate {
		b.transitEstimate = min(b.transit, b.cfg.SessionTimeout/3)
	} else {
		b.transitEstimate -= (b.transitEstimate - b.transit) / 4
	}
}

// takeTransit returns the transit to report with the call being sent, in
// milliseconds (at least 1 when measured; 0 when there is none), and
// forgets it: each measurement is reported once, so that a member whose
// calls stop being answered does not keep reporting what it saw before.
func (b *base) takeTransit() int64 {
	if !b.transitKnown {
		return 0
	}
	b.transitKnown = false
	return max(b.transit.Milliseconds(), 1)
}

// overloadHint reports whether err is the coordinator shedding a call
// (COORDINATOR_OVERLOADED), and the wait it asked for (retry_after_ms;
// the minimum backoff if it gave none).
func (b *base) overloadHint(err error) (time.Duration, bool) {
	e := asError(err)
	if e == nil || e.Code != regroup.CodeCoordinatorOverloaded {
		return 0, false
	}
	ms, perr := strconv.ParseInt(e.Metadata[regroup.MetaRetryAfterMs], 10, 64)
	if perr != nil || ms <= 0 {
		return b.cfg.MinBackoff, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// maxShedWait caps how long a newcomer waits after refusals in a row
// (shed). It is twice the longest hint regroup serve gives (16 s), so a
// newcomer that a long overload keeps refusing calls about once in 32 to
// 48 s.
const maxShedWait = 32 * time.Second

// shed returns how long to wait before sending again a call (what) that
// the coordinator shed asking for hint: the hint plus a random part of up
// to half of it, so that the refused members do not come back together;
// but within the lease (withinLease). A newcomer (a dynamic member with no
// member id, whose call would add it to a group) doubles the hint for every
// refusal in a row before this one, up to maxShedWait (never less than
// the hint): a coordinator's hint starts again at its shortest whenever
// its overload pauses, and thousands of refused newcomers, all coming back
// within a hint, would otherwise cost it more in refusals than its settled
// members' heartbeats; with the doubling, refusals thin out as an overload
// lasts and the newcomers come back one by one, at random, for the
// coordinator to admit while it has room. A member already in a group
// waits only the hint: waiting longer than its session would have the
// group drop it and rebalance again. The lease rule itself is unchanged:
// a shed call renewed nothing. The first refusal of an overload is
// reported (EventOverload), later ones are not until a call succeeds.
func (b *base) shed(now time.Time, out *Output, what string, hint time.Duration, newcomer bool) time.Duration {
	d := hint
	for i := 0; newcomer && i < b.refusals && d < maxShedWait; i++ {
		d *= 2
	}
	d = max(hint, min(d, maxShedWait))
	if b.cfg.Jitter != nil {
		d += time.Duration(b.cfg.Jitter() * float64(d/2))
	}
	d = b.withinLease(now, d)
	if b.refusals == 0 {
		out.Events = append(out.Events, Event{Kind: EventOverload, Detail: fmt.Sprintf(
			"the coordinator is overloaded and shed this member's %s; sending it again in %v (it asked for %v; a newcomer's wait doubles with every refusal in a row; the wait is kept within the lease); further refusals are not logged until a call succeeds", what, d, hint)})
	}
	b.refusals++
	return d
}

// newcomer reports whether a member with member id memberID is a newcomer
// (see shed): it has no id, and no static instance id either, since a
// static member's restart takes its own place in the group, which its
// session keeps only while it does not wait too long.
func (b *base) newcomer(memberID string) bool {
	return memberID == "" && b.cfg.InstanceID == ""
}

// retryLater schedules the next attempt of the machine's call (what) after
// a failure: when the coordinator asked (overloaded; see shed for a
// newcomer's wait), at once after a first redirect (the driver follows
// it), else after the backoff.
func (b *base) retryLater(now time.Time, out *Output, what string, err error, newcomer bool) {
	b.failures++
	if hint, ok := b.overloadHint(err); ok {
		b.retryAt = now.Add(b.shed(now, out, what, hint, newcomer))
		return
	}
	delay := b.backoff(now, b.failures)
	if regroup.CodeOf(err) == regroup.CodeNotCoordinator && b.failures == 1 {
		delay = 0 // the driver follows the redirect; try there at once
	}
	b.retryAt = now.Add(delay)
	out.Events = append(out.Events, Event{Kind: EventRetry, Detail: fmt.Sprintf("%s failed, retrying in %v: %v", what, delay, err)})
}

// retriable reports whether err is a coordinator or transport problem that
// a retry (maybe on another coordinator) can solve.
func retriable(err error) bool {
	switch regroup.CodeOf(err) {
	case regroup.CodeNotCoordinator, regroup.CodeCoordinatorNotAvailable, regroup.CodeCoordinatorOverloaded, "":
		return true
	}
	return false
}

// asError returns the *regroup.Error in err's chain, or nil.
func asError(err error) *regroup.Error {
	if e, ok := err.(*regroup.Error); ok {
		return e // the usual case, without errors.As's allocation
	}
	var e *regroup.Error
	errors.As(err, &e)
	return e
}

// fatal turns a code the member cannot recover from into Run's error,
// prefixed with the remedy; nil if err's code is not fatal. Which codes are
// fatal, and the remedies, are regroup's table (regroup.Code.Fatal and
// Advice).
func fatal(err error) error {
	c := regroup.CodeOf(err)
	if !c.Fatal() {
		return nil
	}
	return fmt.Errorf("%s: %w", c.Advice(), err)
}
