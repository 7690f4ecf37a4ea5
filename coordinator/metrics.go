package coordinator

import (
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
)

// Metrics receives measurements from a Server. Implementations must be safe
// for concurrent use and cheap: they are called on the request path.
type Metrics interface {
	// GroupEvent is called for every event of a group's step, once the
	// step's output has been applied.
	GroupEvent(groupID string, e group.Event)
	// Request is called when a Coordinator RPC returns: its method name
	// ("JoinGroup", ...), its request message (read-only), how long it
	// took, and its error code ("" on success, "CANCELED" if the client
	// went away). The request tells held heartbeats (hold_ms > 0), whose
	// duration is the hold, from the others.
	Request(method string, req proto.Message, d time.Duration, code regroup.Code)
	// StoreWrite is called after every write of a group record or topic.
	StoreWrite(d time.Duration, err error)
	// QueueDelay is called for every call and timer the node gets to,
	// with how long it waited: the coordinator's measure of its own load
	// (see node.Overload).
	QueueDelay(d time.Duration)
	// Shed is called for every call refused because the coordinator is
	// overloaded (COORDINATOR_OVERLOADED), with its method's name.
	Shed(method string)
	// Overloaded is called when the coordinator starts (true) or stops
	// (false) shedding load.
	Overloaded(bool)
}

// GroupStat is one group's state, for gauges read at scrape time.
type GroupStat struct {
	ID      string
	State   group.State
	Members int
	// Unowned counts the partitions nobody works on: left without an
	// owner by the assignment, or waiting for a removed member's lease.
	Unowned  int
	Protocol string
	// UnknownTopics counts the topics its members subscribe to that are
	// not in the topic registry.
	UnknownTopics int
	// PartitionsLost counts the partitions its members reported they
	// declared lost (OnLost) since this coordinator took the group over:
	// a counter.
	PartitionsLost int64
	// Rebalancing is how long the rebalance in progress has been running;
	// zero when the group is not rebalancing.
	Rebalancing time.Duration
	// RebalanceTimeout is the largest rebalance timeout of the members: a
	// rebalance's join and sync phases each end within it.
	RebalanceTimeout time.Duration
	// SessionLeft is the smallest fraction of its session timeout that a
	// member has left before the coordinator expires it: about 1 just
	// after a heartbeat, 0 when it expires. Members waiting at the join
	// barrier count as alive and are left out; 1 when no member counts.
	SessionLeft float64
}

// GroupStats returns the state of every group served, by id; none while
// this coordinator does not lead. It costs time in proportion to the
// number of members, under the node's lock.
func (s *Server) GroupStats() []GroupStat {
	t := s.cur.Load()
	if t == nil {
		return nil
	}
	var out []GroupStat
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended.Load() {
		return nil
	}
	now := s.clock()
	for _, id := range t.node.GroupIDs() {
		if g, err := t.node.Group(id); err == nil {
			out = append(out, statOf(g, now))
		}
	}
	return out
}

func statOf(g *group.Group, now time.Time) GroupStat {
	st := GroupStat{ID: g.ID(), State: g.State(), Members: g.Size(), Unowned: g.Unowned() + g.Waiting(), Protocol: g.Protocol(), PartitionsLost: g.PartitionsLost(), SessionLeft: 1}
	d := g.Describe()
	st.UnknownTopics = len(d.GetUnknownTopics())
	if rs := d.GetRebalances(); len(rs) > 0 {
		if last := rs[len(rs)-1]; last.GetEnd() == nil && last.GetStart() != nil {
			st.Rebalancing = max(now.Sub(last.GetStart().AsTime()), 0)
		}
	}
	for _, m := range d.GetMembers() {
		st.RebalanceTimeout = max(st.RebalanceTimeout, time.Duration(m.GetRebalanceTimeoutMs())*time.Millisecond)
		timeout := time.Duration(m.GetSessionTimeoutMs()) * time.Millisecond
		if m.GetJoined() || timeout <= 0 || m.GetSessionDeadline() == nil {
			continue
		}
		left := float64(m.GetSessionDeadline().AsTime().Sub(now)) / float64(timeout)
		st.SessionLeft = min(st.SessionLeft, max(left, 0))
	}
	return st
}

// noMetrics is the Metrics of a Server configured without one.
type noMetrics struct{}

func (noMetrics) GroupEvent(string, group.Event)                             {}
func (noMetrics) Request(string, proto.Message, time.Duration, regroup.Code) {}
func (noMetrics) StoreWrite(time.Duration, error)                            {}
func (noMetrics) QueueDelay(time.Duration)                                   {}
func (noMetrics) Shed(string)                                                {}
func (noMetrics) Overloaded(bool)                                            {}
