package simulator

import (
	"fmt"
	"slices"
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
	// Shards is how many shards the groups were spread over; Handoffs
	// counts the shards handed off gracefully from one coordinator to
	// another, and ShardFailovers those whose leader died or was deposed
	// and that a new leader took over (one per shard: a process that led
	// three shards counts three).
	Shards         int `json:"shards"`
	Handoffs       int `json:"handoffs"`
	ShardFailovers int `json:"shard_failovers"`
	// StoreFaults counts the failed or unacknowledged store operations
	// the coordinator handled (see the store and pause-coordinator
	// commands).
	StoreFaults int `json:"store_faults"`
	// UnownedSeconds is the time partitions existed without an owner,
	// summed over partitions (partition-seconds), from the start of each
	// group's first member.
	UnownedSeconds float64 `json:"unowned_partition_seconds"`
	// NotProcessingSeconds is the time partitions existed without being
	// processed, summed over partitions (partition-seconds), from the
	// start of each group's first member: without an owner, or owned by
	// a process that is revoking them (inside OnRevoked), paused (frozen
	// by a stop-the-world pause), or past its lease (the lease ended and
	// OnLost has not yet been called). It includes UnownedSeconds.
	NotProcessingSeconds float64 `json:"not_processing_partition_seconds"`
	// Window is the length of the windows of UnownedWindows and
	// NotProcessingWindows: element i measures the partition-seconds from
	// i·Window to (i+1)·Window (the last window ends with the run).
	Window               time.Duration `json:"window_ns"`
	UnownedWindows       []float64     `json:"unowned_windows"`
	NotProcessingWindows []float64     `json:"not_processing_windows"`
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
	// Disturbances lists what followed each disturbance: each time at
	// which scenario actions or churn events ran, until the next one.
	Disturbances []Disturbance `json:"disturbances"`

	revocations, losses []timed
	// after holds unowned and not-processing partition-seconds from a
	// time on (an expect line's since, or Options.Since).
	after map[time.Duration][2]float64
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

// Disturbance is what followed one disturbance (the scenario actions and
// churn events of one instant), until the next one or the end of the run.
type Disturbance struct {
	At time.Duration `json:"at_ns"`
	// Rebalances counts the rebalances that started in the interval;
	// Settled is how long after At the last of them ended (0 if none).
	Rebalances int           `json:"rebalances"`
	Settled    time.Duration `json:"settled_ns"`
	// Unowned and NotProcessing are the interval's partition-seconds.
	Unowned       float64 `json:"unowned_partition_seconds"`
	NotProcessing float64 `json:"not_processing_partition_seconds"`
}

// DisturbanceStats sums up Disturbances: how many there were, and the mean,
// median and largest number of rebalances, time to settle and
// partition-seconds not processed that followed one.
type DisturbanceStats struct {
	Count                                                    int
	RebalancesMean, RebalancesMedian                         float64
	RebalancesMax                                            int
	SettledMean, SettledMedian, SettledMax                   time.Duration
	NotProcessingMean, NotProcessingMedian, NotProcessingMax float64
}

// Stats sums up m.Disturbances.
func (m *Metrics) Stats() DisturbanceStats {
	ds := m.Disturbances
	st := DisturbanceStats{Count: len(ds)}
	if len(ds) == 0 {
		return st
	}
	rbs := make([]float64, len(ds))
	settled := make([]float64, len(ds))
	idle := make([]float64, len(ds))
	for i, d := range ds {
		rbs[i], settled[i], idle[i] = float64(d.Rebalances), float64(d.Settled), d.NotProcessing
	}
	st.RebalancesMean, st.RebalancesMedian = mean(rbs), median(rbs)
	st.RebalancesMax = int(slices.Max(rbs))
	st.SettledMean, st.SettledMedian, st.SettledMax = time.Duration(mean(settled)), time.Duration(median(settled)), time.Duration(slices.Max(settled))
	st.NotProcessingMean, st.NotProcessingMedian, st.NotProcessingMax = mean(idle), median(idle), slices.Max(idle)
	return st
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// median is the middle of xs (the mean of the two middle values of an even
// count); it sorts xs.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// From returns the metrics of what happened from since on: the rebalances
// that ended at or after it (their count, causes, durations and partitions
// moved), the partitions revoked and lost in callbacks invoked at or after
// it, the partition-seconds from it on, and the disturbances at or after
// it. The rest (messages, time to stable, windows) is the whole run's.
// The partition-seconds must have been measured from since (Options.Since
// or an expect line's since); otherwise From returns an error.
func (m *Metrics) From(since time.Duration) (Metrics, error) {
	if since <= 0 {
		return *m, nil
	}
	a, ok := m.after[since]
	if !ok {
		return Metrics{}, fmt.Errorf("regroup: simulator: partition-seconds from %v were not measured: run with Options.Since = %v", since, since)
	}
	out := *m
	out.UnownedSeconds, out.NotProcessingSeconds = a[0], a[1]
	out.RebalanceLog, out.Causes, out.Moved = nil, nil, 0
	for _, r := range m.RebalanceLog {
		if r.End >= since {
			out.RebalanceLog = append(out.RebalanceLog, r)
			out.Moved += r.Moved
			if out.Causes == nil {
				out.Causes = map[string]int{}
			}
			out.Causes[causeKey(r.CauseKind)]++
		}
	}
	out.Rebalances = len(out.RebalanceLog)
	out.RebalanceMedian, out.RebalanceMax = durations(out.RebalanceLog)
	rv, _ := m.Value(scenario.MetricRevoked, since, "")
	lo, _ := m.Value(scenario.MetricLost, since, "")
	out.Revoked, out.Lost = int(rv), int(lo)
	out.Disturbances = nil
	for _, d := range m.Disturbances {
		if d.At >= since {
			out.Disturbances = append(out.Disturbances, d)
		}
	}
	return out, nil
}

// durations returns the median and largest duration of rebalances.
func durations(rs []Rebalance) (med, longest time.Duration) {
	if len(rs) == 0 {
		return 0, 0
	}
	ds := make([]float64, len(rs))
	for i, r := range rs {
		ds[i] = float64(r.End - r.Start)
	}
	return time.Duration(median(ds)), time.Duration(slices.Max(ds))
}

// disturbance notes that scenario actions or churn events run now, and
// cuts the ledgers here to measure what follows.
func (s *sim) disturbance() {
	if n := len(s.disturbances); n > 0 && s.disturbances[n-1] == s.now {
		return
	}
	s.disturbances = append(s.disturbances, s.now)
	s.ledger.Cut(s.now)
	s.work.Cut(s.now)
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

// defaultWindow is what a zero Options.Window means.
const defaultWindow = 10 * time.Second

func (s *sim) window() int64 {
	if s.opts.Window > 0 {
		return int64(s.opts.Window)
	}
	return int64(defaultWindow)
}

// sinces are the times from which partition-seconds are measured besides
// the whole run: Options.Since and the expect lines' since.
func (s *sim) sinces() []int64 {
	var ts []int64
	if s.opts.Since > 0 {
		ts = append(ts, int64(s.opts.Since))
	}
	for _, e := range s.sc.Expects {
		if e.Since > 0 {
			ts = append(ts, int64(e.Since))
		}
	}
	return ts
}

// planCuts lists the times the ownership and processing ledgers are cut
// at: the ends of the windows and the sinces.
func (s *sim) planCuts() {
	for t := s.window(); t < s.end; t += s.window() {
		s.cuts = append(s.cuts, t)
	}
	for _, t := range s.sinces() {
		if t < s.end {
			s.cuts = append(s.cuts, t)
		}
	}
	slices.Sort(s.cuts)
	s.cuts = slices.Compact(s.cuts)
}

// cutUntil cuts the ledgers at every planned time up to t.
func (s *sim) cutUntil(t int64) {
	for len(s.cuts) > 0 && s.cuts[0] <= t {
		s.ledger.Cut(s.cuts[0])
		s.work.Cut(s.cuts[0])
		s.cuts = s.cuts[1:]
	}
}

// partitionSeconds measures, from the closed ledgers, the partition-seconds
// without an owner and without processing, in total, per window and from
// each since on.
func (s *sim) partitionSeconds() {
	m := &s.metrics
	sum := func(from, to int64) (unowned, idle float64) {
		for tag := range s.tags {
			unowned += float64(s.ledger.UnownedIn(tag, from, to))
			idle += float64(s.work.UnownedIn(tag, from, to))
		}
		return unowned / float64(time.Second), idle / float64(time.Second)
	}
	m.UnownedSeconds, m.NotProcessingSeconds = sum(0, s.end)
	m.Window = time.Duration(s.window())
	m.UnownedWindows, m.NotProcessingWindows = []float64{}, []float64{}
	for from := int64(0); from < s.end; from += s.window() {
		u, n := sum(from, min(from+s.window(), s.end))
		m.UnownedWindows = append(m.UnownedWindows, u)
		m.NotProcessingWindows = append(m.NotProcessingWindows, n)
	}
	for i, at := range s.disturbances {
		to := s.end
		if i+1 < len(s.disturbances) {
			to = s.disturbances[i+1]
		}
		d := Disturbance{At: time.Duration(at)}
		for _, r := range m.RebalanceLog {
			if r.Start >= d.At && r.Start < time.Duration(to) {
				d.Rebalances++
				d.Settled = max(d.Settled, r.End-d.At)
			}
		}
		d.Unowned, d.NotProcessing = sum(at, to)
		m.Disturbances = append(m.Disturbances, d)
	}
	for _, t := range s.sinces() {
		if m.after == nil {
			m.after = map[time.Duration][2]float64{}
		}
		u, n := sum(min(t, s.end), s.end)
		m.after[time.Duration(t)] = [2]float64{u, n}
	}
}

// Value returns the metric an expectation names: a count, or seconds for
// durations. since and cause restrict event metrics (see scenario.Expect);
// ok is false when the metric has no value (stable, when the groups never
// settled; unowned or not-processing since a time the run did not measure
// from).
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
	case scenario.MetricUnowned, scenario.MetricNotProcessing:
		k := 0
		if metric == scenario.MetricNotProcessing {
			k = 1
		}
		if since <= 0 {
			return [2]float64{m.UnownedSeconds, m.NotProcessingSeconds}[k], true
		}
		a, ok := m.after[since]
		return a[k], ok
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
	case scenario.MetricHandoffs:
		return float64(m.Handoffs), true
	case scenario.MetricFailovers:
		return float64(m.ShardFailovers), true
	}
	return 0, false
}

// expectations returns the expect lines that do not hold, leaving out
// those written for a protocol the members do not all speak.
func (s *sim) expectations() []string {
	var failed []string
	proto, same := s.sc.Protocol()
	for _, e := range s.sc.Expects {
		if e.Protocol != "" && (!same || proto.String() != e.Protocol) {
			continue // written for the other protocol
		}
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
	case scenario.MetricUnowned, scenario.MetricNotProcessing:
		return fmt.Sprintf("%.3f", v)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.0f", v), ".")
}
