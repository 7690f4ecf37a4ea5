package coordinator

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/regroup-dev/regroup/coordinator/node"
)

// Shared is what the Servers of one process share when it runs several (a
// cluster.Process runs one per shard): one timer (wakes) and one load
// meter (node.Load), since they share the process's CPU, and the counts of
// members and groups that group.Config.MaxMembers and MaxGroups cap, since
// those limits are the process's (node.Input.Elsewhere). Each Server publishes its node's
// counts after every step; the counts a node is given may be a step
// behind, so shards stepping at the same moment can pass a limit by one
// member or group each.
type Shared struct {
	wakes           wakes
	meter           *lockedMeter
	members, groups atomic.Int64
	// leading counts the tenures that have not ended (their shares).
	leading atomic.Int32

	// mu orders the reports of overloaded: whether the process sheds
	// load, as the last step of any tenure said (reported once, not per
	// Server).
	mu         sync.Mutex
	overloaded bool
}

// NewShared returns what Servers configured with it share; their meter
// sheds as o says (their own Config.Overload is ignored).
func NewShared(o node.Overload) *Shared { return &Shared{meter: &lockedMeter{m: node.NewMeter(o)}} }

// lockedMeter is a node.Meter that the nodes of several Servers share.
type lockedMeter struct {
	mu sync.Mutex
	m  *node.Meter
}

func (l *lockedMeter) Observe(now time.Time, queued time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m.Observe(now, queued)
}

func (l *lockedMeter) ObserveTransit(now time.Time, transit time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m.ObserveTransit(now, transit)
}

func (l *lockedMeter) Refusal(now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Refusal(now)
}

func (l *lockedMeter) AdvisedHold(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.AdvisedHold(now)
}

func (l *lockedMeter) Cause(now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Cause(now)
}

func (l *lockedMeter) Interval() time.Duration { return l.m.Interval() }

// noteOverloaded records whether the process sheds load and, if that
// changed, reports it (with sh.mu held, so that reports come in order).
func (sh *Shared) noteOverloaded(on bool, report func()) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.overloaded == on {
		return
	}
	sh.overloaded = on
	report()
}

// share is one tenure's part of a Shared: what its node holds. A tenure
// has one of its own, so that an ending tenure cannot clear the counts of
// its Server's next one.
type share struct {
	sh              *Shared
	members, groups atomic.Int64
}

// join returns the share of a new tenure.
func (sh *Shared) join() *share {
	sh.leading.Add(1)
	return &share{sh: sh}
}

// leave withdraws the share of a tenure that ended and reports whether it
// was the process's last tenure.
func (p *share) leave() bool {
	p.publish(node.Elsewhere{})
	return p.sh.leading.Add(-1) == 0
}

// publish records what the Server's node holds now.
func (p *share) publish(c node.Elsewhere) {
	p.sh.members.Add(int64(c.Members) - p.members.Swap(int64(c.Members)))
	p.sh.groups.Add(int64(c.Groups) - p.groups.Swap(int64(c.Groups)))
}

// elsewhere returns what the process's other Servers hold.
func (p *share) elsewhere() node.Elsewhere {
	return node.Elsewhere{
		Members: int(p.sh.members.Load() - p.members.Load()),
		Groups:  int(p.sh.groups.Load() - p.groups.Load()),
	}
}
