package coordinator

import (
	"time"

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
	// ("JoinGroup", ...), how long it took, and its error code ("" on
	// success, "CANCELED" if the client went away).
	Request(method string, d time.Duration, code regroup.Code)
	// StoreWrite is called after every write of a group record or topic.
	StoreWrite(d time.Duration, err error)
}

// GroupStat is one group's state, for gauges read at scrape time.
type GroupStat struct {
	ID       string
	State    group.State
	Members  int
	Unowned  int
	Protocol string
}

// GroupStats returns the state of every group served, by id; none while
// this coordinator does not lead.
func (s *Server) GroupStats() []GroupStat {
	t := s.cur.Load()
	if t == nil {
		return nil
	}
	var out []GroupStat
	for _, id := range t.groupIDs() {
		v, ok := t.groups.Load(id)
		if !ok {
			continue
		}
		v.(*actor).inspect(func(g *group.Group) {
			out = append(out, GroupStat{ID: id, State: g.State(), Members: g.Size(), Unowned: g.Unowned(), Protocol: g.Protocol()})
		})
	}
	return out
}

// noMetrics is the Metrics of a Server configured without one.
type noMetrics struct{}

func (noMetrics) GroupEvent(string, group.Event)              {}
func (noMetrics) Request(string, time.Duration, regroup.Code) {}
func (noMetrics) StoreWrite(time.Duration, error)             {}
