package simulator

import (
	"fmt"
	"strings"
	"time"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// Metrics measure a run. Durations are virtual time.
type Metrics struct {
	// Simulated is the virtual time the run covered; Events the events
	// it processed; Messages the requests and replies sent (lost ones
	// included).
	Simulated time.Duration `json:"simulated_ns"`
	Events    int           `json:"events"`
	Messages  int           `json:"messages"`
	// Rebalances is the number of rebalances completed, over all
	// groups; Causes counts them by the kind of event that started them
	// (group.Cause).
	Rebalances int            `json:"rebalances"`
	Causes     map[string]int `json:"causes"`
	// Generation is the highest generation a group reached.
	Generation int32 `json:"generation"`
	// RebalanceMedian and RebalanceMax are over the rebalances' durations
	// (from the start of the rebalance to the leader's accepted plan).
	RebalanceMedian time.Duration `json:"rebalance_median_ns"`
	RebalanceMax    time.Duration `json:"rebalance_max_ns"`
	// Moved is the number of partitions the coordinator gave to a member
	// other than their last owner; Revoked and Lost count the partitions
	// in OnRevoked and OnLost callbacks.
	Moved   int `json:"moved"`
	Revoked int `json:"revoked"`
	Lost    int `json:"lost"`
	// StoreFaults counts the failed or unacknowledged store operations
	// the coordinator handled (see the store and pause-coordinator
	// commands).
	StoreFaults int `json:"store_faults"`
	// UnownedSeconds is the time partitions existed without an owner,
	// summed over partitions (partition-seconds), from the start of each
	// group's first member.
	UnownedSeconds float64 `json:"unowned_partition_seconds"`
	// LastDisturbance is when the last disturbance ended. TimeToStable
	// is how long after it every group settled for good (Stable, every
	// member Stable, every partition owned), or -1 if the groups were
	// not settled at the end (Stable false). LivenessChecked says whether
	// the run lasted until the liveness bound after the last disturbance
	// and ended with a network that loses nothing (a lossy network is a
	// disturbance that never ends).
	LastDisturbance time.Duration `json:"last_disturbance_ns"`
	TimeToStable    time.Duration `json:"time_to_stable_ns"`
	Stable          bool          `json:"stable"`
	LivenessChecked bool          `json:"liveness_checked"`
	// Violations counts the broken invariants; Fatal the member processes
	// that stopped with an error; Refused the leaders' assignments the
	// coordinator refused.
	Violations int `json:"violations"`
	Fatal      int `json:"fatal"`
	Refused    int `json:"refused"`
	// RebalanceLog lists every completed rebalance.
	RebalanceLog []Rebalance `json:"rebalance_log"`

	revocations, losses []timed
}

// Rebalance is one completed rebalance, from the group's history entry.
type Rebalance struct {
	Group      string        `json:"group"`
	Generation int32         `json:"generation"`
	CauseKind  string        `json:"cause_kind"`
	Cause      string        `json:"cause"`
	Start      time.Duration `json:"start_ns"`
	End        time.Duration `json:"end_ns"`
	Members    int           `json:"members"`
	Moved      int           `json:"moved"`
	Revoked    int           `json:"revoked"`
}

type timed struct {
	at int64
	n  int
}

// groupStep records what one step of a group reported and checks that its
// generation never goes back behind what was stored. (A generation that
// was never stored can be lost with the leader that made it: nobody was
// told of it.)
func (s *sim) groupStep(g *group.Group, e group.Event) {
	id := g.ID()
	{
		switch e.Kind {
		case group.EventStateChanged:
			s.tracef("coord", "%s: %v -> %v (generation %d)", id, e.From, e.To, g.Generation())
		case group.EventRebalanceStarted:
			s.tracef("coord", "%s: rebalance started (%s): %s", id, e.Cause, e.Detail)
		case group.EventRebalanceDone:
			r := e.Rebalance
			rb := Rebalance{
				Group: id, Generation: r.GetGeneration(), CauseKind: r.GetCauseKind(), Cause: r.GetCause(),
				Start: r.GetStart().AsTime().Sub(epoch), End: r.GetEnd().AsTime().Sub(epoch),
				Members: len(r.GetMembers()), Moved: int(r.GetPartitionsMoved()), Revoked: int(r.GetPartitionsRevoked()),
			}
			m := &s.metrics
			m.RebalanceLog = append(m.RebalanceLog, rb)
			m.Rebalances++
			m.Moved += rb.Moved
			if m.Causes == nil {
				m.Causes = map[string]int{}
			}
			m.Causes[causeKey(rb.CauseKind)]++
			s.tracef("coord", "%s: rebalance done: generation %d, %d members, %d moved, %d revoked, %d unowned, took %v",
				id, rb.Generation, rb.Members, rb.Moved, rb.Revoked, e.Unowned, rb.End-rb.Start)
		case group.EventAssignmentRefused:
			s.metrics.Refused++
			s.tracef("coord", "%s: assignment of %s refused: %s", id, e.Member, e.Detail)
		case group.EventMemberRemoved:
			s.tracef("coord", "%s: member %s removed: %s", id, e.Member, e.Detail)
		case group.EventMemberReplaced:
			s.tracef("coord", "%s: %s", id, e.Detail)
		}
	}
	gs := s.byGroup[id]
	if gs == nil {
		return
	}
	if gen := g.Generation(); gen < gs.durableGen {
		s.violate("generation", "group %s went back from stored generation %d to %d", id, gs.durableGen, gen)
	} else {
		gs.maxGen = max(gs.maxGen, gen)
	}
}

func causeKey(kind string) string {
	if kind == "" {
		return "unknown"
	}
	return kind
}

// Value returns the metric an expectation names: a count, or seconds for
// durations. since and cause restrict event metrics (see scenario.Expect);
// ok is false when the metric has no value (stable, when the groups never
// settled).
func (m *Metrics) Value(metric scenario.Metric, since time.Duration, cause string) (v float64, ok bool) {
	sum := func(ts []timed) float64 {
		n := 0
		for _, t := range ts {
			if t.at >= int64(since) {
				n += t.n
			}
		}
		return float64(n)
	}
	switch metric {
	case scenario.MetricRebalances, scenario.MetricMoved:
		n := 0
		for _, r := range m.RebalanceLog {
			if r.End < since || cause != "" && r.CauseKind != cause {
				continue
			}
			if metric == scenario.MetricMoved {
				n += r.Moved
			} else {
				n++
			}
		}
		return float64(n), true
	case scenario.MetricRevoked:
		return sum(m.revocations), true
	case scenario.MetricLost:
		return sum(m.losses), true
	case scenario.MetricGeneration:
		return float64(m.Generation), true
	case scenario.MetricUnowned:
		return m.UnownedSeconds, true
	case scenario.MetricRebalanceMedian:
		return m.RebalanceMedian.Seconds(), true
	case scenario.MetricRebalanceMax:
		return m.RebalanceMax.Seconds(), true
	case scenario.MetricStable:
		return m.TimeToStable.Seconds(), m.Stable && m.TimeToStable >= 0
	case scenario.MetricMessages:
		return float64(m.Messages), true
	case scenario.MetricViolations:
		return float64(m.Violations), true
	case scenario.MetricFatal:
		return float64(m.Fatal), true
	}
	return 0, false
}

// expectations returns the expect lines that do not hold.
func (s *sim) expectations() []string {
	var failed []string
	for _, e := range s.sc.Expects {
		got, ok := s.metrics.Value(e.Metric, e.Since, e.Cause)
		if !ok {
			failed = append(failed, fmt.Sprintf("line %d: expect %s: the groups never settled after the last disturbance", e.Line, e.Text))
			continue
		}
		if !e.Op.Holds(got, e.Value) {
			failed = append(failed, fmt.Sprintf("line %d: expect %s: got %s", e.Line, e.Text, fmtValue(e.Metric, got)))
		}
	}
	return failed
}

func fmtValue(m scenario.Metric, v float64) string {
	switch m {
	case scenario.MetricStable, scenario.MetricRebalanceMedian, scenario.MetricRebalanceMax:
		return time.Duration(v * float64(time.Second)).String()
	case scenario.MetricUnowned:
		return fmt.Sprintf("%.3f", v)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.0f", v), ".")
}
