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
	// leading counts the Servers' tenures that have not ended, and
	// overloaded is whether the process sheds load, as the last step of
	// any of them said (it is reported once, not per Server).
	leading    atomic.Int32
	overloaded atomic.Bool
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

// noteOverloaded records whether the process sheds load and reports
// whether that changed.
func (sh *Shared) noteOverloaded(on bool) bool { return sh.overloaded.Swap(on) != on }

// share is one Server's part of a Shared: what its node holds.
type share struct {
	sh              *Shared
	members, groups atomic.Int64
}

func (sh *Shared) join() *share { return &share{sh: sh} }

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
