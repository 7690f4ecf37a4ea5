package node

import (
	"fmt"
	"strconv"
	"time"

	"github.com/regroup-dev/regroup"
)

// Overload sheds new work, not leases. Two queues stand in front of the
// node when it is short of capacity, and it watches both:
//
//   - The queue between a call's handler and the node's step. The driver
//     measures how long each call waited there and how late each timer
//     fired, and passes it in (Input.Queued, Node.Admit).
//   - The queue before the handler: a coordinator short of CPU leaves
//     calls in the kernel's socket buffers and in its transport, where no
//     handler has them yet, and answers sit in the same places on their
//     way out. The driver cannot time that, but members can: each held
//     call (a heartbeat, a Reconcile) reports its member's transit, how
//     much longer than the coordinator held it the member's last answered
//     call took, round trip.
//
// For the first the node keeps, per interval, the least delay it saw: if
// even the least-delayed call or timer of a whole interval waited longer
// than Delay, a queue stands before the node (a burst drains within an
// interval; a standing queue does not), and the node is overloaded until
// a call is served within the threshold again. The transits of a process
// short of CPU are not so even: a call that comes as the process gets the
// CPU back is served at once, beside calls that waited seconds. So for the
// second the node counts the reports of each interval: if most of them
// (and at least minTransitReports) are longer than Transit, it is
// overloaded until an interval's reports are mostly within it again. A
// minority of members, or a handful of clients, that report long transits
// cannot make it shed.
//
// While overloaded it refuses, with COORDINATOR_OVERLOADED and a back-off
// hint, the work that would add members or only reads: a JoinGroup (or a
// Reconcile join) with an empty member id (a member not in the group yet,
// a group's first member included), every call but a leave of a group
// never yet formed (group.Group.Forming: never Stable, so its members
// never owned anything and have no lease to keep; a surge of new groups
// that got their member ids before the overload showed would otherwise
// keep all its load), and the Admin reads (ListGroups, DescribeGroup,
// WatchGroup). It never refuses the calls of members of a group that has
// formed (JoinGroup with a member id, SyncGroup, Heartbeat, LeaveGroup,
// Reconcile), even in an eager rebalance where they own nothing for a
// while, nor the calls that change the registry or remove members:
// members that own partitions keep their leases, and an operator can act.
// Only a member's transit reports count (a call for a group it is a member
// of), each measurement once.
// The hint doubles with every interval the overload lasts, from one
// interval up to 16.
//
// Heartbeats are most of the work, so while overloaded the node also asks
// the members it answers to beat less often: every heartbeat answer
// carries next_hold_ms, the same hint, and the member holds its next
// heartbeat that long (up to a third of its session, within its lease)
// instead of its heartbeat interval. An overload that lasts a few
// intervals thus takes up to half or more of the heartbeats off the
// node, without shedding any; the answers of the first calls served within
// the threshold again carry no advice, and members return to their
// intervals.

// Overload configures load shedding.
type Overload struct {
	// Delay is the queueing delay before the node past which it sheds new
	// work: when every call and timer of an Interval waited longer. Zero
	// sheds nothing on this account.
	Delay time.Duration
	// Transit is the members' reported transit past which the node sheds
	// new work: when most reports of an Interval (at least
	// minTransitReports of them) are longer. It includes the network's
	// round trip, so it must be well above that. Zero sheds nothing on
	// this account.
	Transit time.Duration
	// Interval is the window over which delays are judged; zero means one
	// second.
	Interval time.Duration
}

// Load is a node's load meter (see Overload); *Meter is one. The nodes
// of a process that leads several shards share one (Config.Load): they run
// on the same CPU, so a queue before any of them is the process's, and the
// transit reports of the members of all its shards count together (a
// shard's own few would seldom reach minTransitReports). The driver makes
// a shared one safe for concurrent use.
type Load interface {
	// Observe takes a call's or a tick's queueing delay (Input.Queued)
	// measured at now.
	Observe(now time.Time, queued time.Duration)
	// ObserveTransit takes a transit a member reported at now.
	ObserveTransit(now time.Time, transit time.Duration)
	// Refusal returns the COORDINATOR_OVERLOADED error for a call shed at
	// now, or nil.
	Refusal(now time.Time) error
	// AdvisedHold returns the hold asked of heartbeats at now, or 0.
	AdvisedHold(now time.Time) time.Duration
	// Cause says why new work is shed at now, "" if it is not.
	Cause(now time.Time) string
	// Interval is the window over which delays are judged.
	Interval() time.Duration
}

// maxHintDoublings caps the back-off hint at 2^4 = 16 intervals.
const maxHintDoublings = 4

// minTransitReports is the fewest transit reports an interval needs to
// count: fewer members than that do not load a coordinator, and a handful
// of clients cannot make it shed by reporting long transits.
const minTransitReports = 16

// Meter decides whether a node is overloaded (see Overload): the Load of
// a node that shares none.
type Meter struct {
	cfg     Overload
	queue   window // delays before the node's step
	transit window // the members' reported transits
}

// window keeps one interval's delays of one kind against a threshold:
// the least, how many there were, and how many exceeded the threshold.
type window struct {
	end     time.Time     // end of the current window; zero before the first sample
	least   time.Duration // least delay seen in the current window
	samples int           // how many the current window has seen
	above   int           // how many of them exceeded the threshold
	// over counts the consecutive full windows past the threshold (see
	// past); 0 when the last one was not.
	over int
}

// rule is how a window's delays are judged against its threshold.
type rule int

// The rules: least, past the threshold when even the least delay is; most,
// when most of at least minTransitReports delays are.
const (
	least rule = iota
	most
)

// NewMeter returns a meter that sheds as o says.
func NewMeter(o Overload) *Meter { return &Meter{cfg: o} }

// Interval implements Load.
func (l *Meter) Interval() time.Duration {
	if l.cfg.Interval > 0 {
		return l.cfg.Interval
	}
	return time.Second
}

// observe takes one delay measured at now against threshold, judged by
// rule r.
func (w *window) observe(now time.Time, d, threshold, interval time.Duration, r rule) {
	if threshold <= 0 {
		return
	}
	if w.end.IsZero() || !now.Before(w.end) {
		switch {
		case w.end.IsZero() || now.Sub(w.end) >= interval:
			w.over = 0 // a whole window without a sample: no standing queue
		case w.past(threshold, r):
			w.over++
		default:
			w.over = 0
		}
		w.end, w.least, w.samples, w.above = now.Add(interval), d, 0, 0
	}
	w.least = min(w.least, d)
	w.samples++
	if d > threshold {
		w.above++
	}
}

// past reports whether the current window's delays are past threshold by
// rule r.
func (w *window) past(threshold time.Duration, r rule) bool {
	if r == most {
		return w.samples >= minTransitReports && 2*w.above > w.samples
	}
	return w.least > threshold
}

// overloaded reports at now whether the last full window was past
// threshold and the current one has not shown otherwise: under the least
// rule, no delay within the threshold since; under the most rule, not
// enough reports yet, or most of them still past it. A window that is over
// is judged as observe will judge it, and a whole interval without a
// sample ends the overload: a meter whose samples stopped (no reports,
// nobody left to report) must not shed for ever.
func (w *window) overloaded(now time.Time, threshold, interval time.Duration, r rule) bool {
	switch {
	case w.over == 0:
		return false
	case !now.Before(w.end.Add(interval)):
		return false
	case !now.Before(w.end):
		return w.past(threshold, r)
	case r == most && w.samples < minTransitReports:
		return true
	}
	return w.past(threshold, r)
}

// Observe implements Load.
func (l *Meter) Observe(now time.Time, queued time.Duration) {
	l.queue.observe(now, queued, l.cfg.Delay, l.Interval(), least)
}

// ObserveTransit implements Load; 0 is no report.
func (l *Meter) ObserveTransit(now time.Time, transit time.Duration) {
	if transit > 0 {
		l.transit.observe(now, transit, l.cfg.Transit, l.Interval(), most)
	}
}

// queueOver and transitOver report whether each queue sheds at now.
func (l *Meter) queueOver(now time.Time) bool {
	return l.queue.overloaded(now, l.cfg.Delay, l.Interval(), least)
}

func (l *Meter) transitOver(now time.Time) bool {
	return l.transit.overloaded(now, l.cfg.Transit, l.Interval(), most)
}

// overloaded reports whether new work is shed at now: a queue stands
// before the node's step or before its handlers.
func (l *Meter) overloaded(now time.Time) bool {
	return l.queueOver(now) || l.transitOver(now)
}

// hint is how long the node asks callers to back off while overloaded:
// an interval, doubled for every further interval the overload lasted.
func (l *Meter) hint(now time.Time) time.Duration {
	over := 0
	if l.queueOver(now) {
		over = l.queue.over
	}
	if l.transitOver(now) {
		over = max(over, l.transit.over)
	}
	return l.Interval() << min(over-1, maxHintDoublings)
}

// Refusal implements Load.
func (l *Meter) Refusal(now time.Time) error {
	if !l.overloaded(now) {
		return nil
	}
	hint := l.hint(now)
	return regroup.Errorf(regroup.CodeCoordinatorOverloaded,
		"the coordinator is overloaded (%s) and takes no new members, groups not yet formed, or reads now; retry in %v",
		l.Cause(now), hint).With(regroup.MetaRetryAfterMs, strconv.FormatInt(hint.Milliseconds(), 10))
}

// Cause implements Load.
func (l *Meter) Cause(now time.Time) string {
	if !l.overloaded(now) {
		return ""
	}
	if l.queueOver(now) {
		return fmt.Sprintf("calls wait more than %v before it gets to them", l.cfg.Delay)
	}
	return fmt.Sprintf("its members' calls spend more than %v in transit: it is short of CPU or its network is congested", l.cfg.Transit)
}

// AdvisedHold implements Load: the refusal's hint while overloaded.
func (l *Meter) AdvisedHold(now time.Time) time.Duration {
	if !l.overloaded(now) {
		return 0
	}
	return l.hint(now)
}

// Admit decides whether the node takes a call that adds work without
// changing state (ListGroups, DescribeGroup, WatchGroup) at now, after it
// waited queued: it returns nil, or COORDINATOR_OVERLOADED with a back-off
// hint (see Overload). The delay counts as a measurement.
func (n *Node) Admit(now time.Time, queued time.Duration) error {
	n.load.Observe(now, queued)
	return n.load.Refusal(now)
}

// Overloaded reports whether the node sheds new work, as of its latest
// step.
func (n *Node) Overloaded() bool { return n.load.Cause(n.now) != "" }

// OverloadCause says why the node sheds new work, while it does.
func (n *Node) OverloadCause() string { return n.load.Cause(n.now) }
