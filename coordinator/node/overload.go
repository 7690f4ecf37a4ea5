package node

import (
	"strconv"
	"time"

	"github.com/regroup-dev/regroup"
)

// Overload sheds new work, not leases. The driver measures how long each
// call waited before the node got to it (from the RPC's arrival until its
// step) and how late each timer fired, and passes it in (Input.Queued,
// Node.Admit). The node keeps, per interval, the least delay it saw: if
// even the least-delayed call or timer of a whole interval waited longer
// than the threshold, a queue stands before the node (a burst drains
// within an interval; a standing queue does not), and the node is
// overloaded until a call or a timer is served within the threshold again.
//
// While overloaded it refuses, with COORDINATOR_OVERLOADED and a back-off
// hint, the work that would add members or only reads: a JoinGroup with an
// empty member id (a member not in the group yet, a group's first member
// included) and the Admin reads (ListGroups, DescribeGroup, WatchGroup).
// It never refuses the calls of members in a group (JoinGroup with a
// member id, SyncGroup, Heartbeat, LeaveGroup), nor the calls that change
// the registry or remove members: members that own partitions keep their
// leases, and an operator can act. The hint doubles with every interval
// the overload lasts, from one interval up to 16.
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
	// Delay is the queueing delay past which the node sheds new work: when
	// every call and timer of an Interval waited longer. Zero sheds nothing.
	Delay time.Duration
	// Interval is the window over which the least delay is taken; zero
	// means one second.
	Interval time.Duration
}

// maxHintDoublings caps the back-off hint at 2^4 = 16 intervals.
const maxHintDoublings = 4

// loadMeter decides whether the node is overloaded (see Overload).
type loadMeter struct {
	cfg       Overload
	windowEnd time.Time     // end of the current window; zero before the first sample
	windowMin time.Duration // least delay seen in the current window
	// windows counts the consecutive full windows whose least delay
	// exceeded the threshold; 0 when the last one did not.
	windows int
}

func (l *loadMeter) interval() time.Duration {
	if l.cfg.Interval > 0 {
		return l.cfg.Interval
	}
	return time.Second
}

// observe takes one delay measured at now.
func (l *loadMeter) observe(now time.Time, queued time.Duration) {
	if l.cfg.Delay <= 0 {
		return
	}
	if l.windowEnd.IsZero() || !now.Before(l.windowEnd) {
		switch {
		case l.windowEnd.IsZero() || now.Sub(l.windowEnd) >= l.interval():
			l.windows = 0 // a whole window without a sample: no standing queue
		case l.windowMin > l.cfg.Delay:
			l.windows++
		default:
			l.windows = 0
		}
		l.windowEnd, l.windowMin = now.Add(l.interval()), queued
		return
	}
	l.windowMin = min(l.windowMin, queued)
}

// overloaded reports whether new work is shed: the last full window's
// least delay exceeded the threshold, and so has every delay seen since.
func (l *loadMeter) overloaded() bool {
	return l.windows > 0 && l.windowMin > l.cfg.Delay
}

// hint is how long the node asks callers to back off while overloaded:
// an interval, doubled for every further interval the overload lasted.
func (l *loadMeter) hint() time.Duration {
	return l.interval() << min(l.windows-1, maxHintDoublings)
}

// refusal returns the COORDINATOR_OVERLOADED error for a call shed now, or
// nil if the node takes it.
func (l *loadMeter) refusal() error {
	if !l.overloaded() {
		return nil
	}
	hint := l.hint()
	return regroup.Errorf(regroup.CodeCoordinatorOverloaded,
		"the coordinator is overloaded (calls wait more than %v before it gets to them) and takes no new members or reads now; retry in %v",
		l.cfg.Delay, hint).With(regroup.MetaRetryAfterMs, strconv.FormatInt(hint.Milliseconds(), 10))
}

// advisedHold returns the hold the node asks heartbeats to take while it
// is overloaded (the refusal's hint), or 0.
func (l *loadMeter) advisedHold() time.Duration {
	if !l.overloaded() {
		return 0
	}
	return l.hint()
}

// Admit decides whether the node takes a call that adds work without
// changing state (ListGroups, DescribeGroup, WatchGroup) at now, after it
// waited queued: it returns nil, or COORDINATOR_OVERLOADED with a back-off
// hint (see Overload). The delay counts as a measurement.
func (n *Node) Admit(now time.Time, queued time.Duration) error {
	n.load.observe(now, queued)
	return n.load.refusal()
}

// Overloaded reports whether the node sheds new work at the moment.
func (n *Node) Overloaded() bool { return n.load.overloaded() }
