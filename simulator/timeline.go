package simulator

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regroup-dev/regroup/member/fsm"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
	"github.com/regroup-dev/regroup/simulator/ownership"
)

// Timeline is what a run recorded over time, for drawing (see
// simulator/report): per member, when its processes ran, when they were
// paused, cut off, revoking or past their lease, and how many partitions
// they owned and processed; the rebalances; the failovers; and how many
// partitions had no owner or were not processed.
type Timeline struct {
	End        time.Duration
	Members    []TimelineMember
	Rebalances []Rebalance
	Failovers  []Span
	// Action is where the run's disturbances are: from the first one
	// after the start (0 if there is none) until every group settled
	// after the last one (the end of the run if they did not).
	Action Span
	// Partitions is the number of partitions over time, Unowned the
	// number without an owner, NotProcessing the number not processed
	// (without an owner, or owned by a process that is revoking them,
	// paused, or past its lease).
	Partitions    []Step
	Unowned       []Step
	NotProcessing []Step
	// Ownership is every interval in which a process owned a partition,
	// and every interval in which it processed one (owned it, not paused,
	// not revoking it, within its lease), by group, topic, partition,
	// kind and start.
	Ownership []Ownership
}

// Ownership is one interval of one partition: a member's process owned it
// (Kind "owned") or processed it (Kind "processing") from From to To.
type Ownership struct {
	Group     string
	Topic     string
	Partition int32
	Kind      string
	// Member is the process: "m3", or "m3#2" for m3's second process.
	Member   string
	From, To time.Duration
}

// TimelineMember is one member over the run.
type TimelineMember struct {
	Name string
	// Running are its processes' lifetimes; Crashes when one crashed.
	Running []Span
	Crashes []time.Duration
	Paused  []Span
	Cut     []Span
	// Revoking is when an OnRevoked ran while the member still owned its
	// partitions: from its call until it returned or its deadline passed.
	Revoking []Span
	// Lost lists its OnLost calls.
	Lost []Loss
	// Owned is how many partitions it owned over time, Processing how
	// many of them it processed (not paused, not revoking them).
	Owned      []Step
	Processing []Step
}

// Loss is one OnLost call: at At, for Partitions partitions whose
// ownership had ended at Lease, the end of the member's lease (the time
// between is when the member held partitions that were no longer its
// own, frozen or cut off).
type Loss struct {
	Lease, At  time.Duration
	Partitions int
}

// Span is an interval of virtual time.
type Span struct{ From, To time.Duration }

// Step is a value that holds from At until the next Step.
type Step struct {
	At    time.Duration
	Value int
}

func (t *Timeline) member(name string) *TimelineMember {
	for i := range t.Members {
		if t.Members[i].Name == name {
			return &t.Members[i]
		}
	}
	t.Members = append(t.Members, TimelineMember{Name: name})
	return &t.Members[len(t.Members)-1]
}

func (t *Timeline) addProcess(p *process) {
	m := t.member(p.node.name)
	m.Running = append(m.Running, Span{From: time.Duration(p.started), To: -1})
}

func (t *Timeline) processEnded(p *process, now int64) {
	m := t.member(p.node.name)
	if n := len(m.Running); n > 0 && m.Running[n-1].To < 0 {
		m.Running[n-1].To = time.Duration(now)
	}
	t.revoked(p, now)
	if !p.done {
		m.Crashes = append(m.Crashes, time.Duration(now))
	}
}

func (t *Timeline) paused(p *process, from, to int64) {
	m := t.member(p.node.name)
	if n := len(m.Paused); n > 0 && m.Paused[n-1].To >= time.Duration(from) {
		m.Paused[n-1].To = time.Duration(to)
		return
	}
	m.Paused = append(m.Paused, Span{From: time.Duration(from), To: time.Duration(to)})
}

func (t *Timeline) revoking(p *process, now int64) {
	m := t.member(p.node.name)
	m.Revoking = append(m.Revoking, Span{From: time.Duration(now), To: -1})
}

// revoked ends the member's open revocation at end.
func (t *Timeline) revoked(p *process, end int64) {
	m := t.member(p.node.name)
	if n := len(m.Revoking); n > 0 && m.Revoking[n-1].To < 0 {
		m.Revoking[n-1].To = max(time.Duration(end), m.Revoking[n-1].From)
	}
}

func (t *Timeline) lost(p *process, lease, now int64, n int) {
	m := t.member(p.node.name)
	m.Lost = append(m.Lost, Loss{Lease: time.Duration(lease), At: time.Duration(now), Partitions: n})
}

func (t *Timeline) cut(name string, now int64) {
	m := t.member(name)
	if n := len(m.Cut); n > 0 && m.Cut[n-1].To < 0 {
		return
	}
	m.Cut = append(m.Cut, Span{From: time.Duration(now), To: -1})
}

func (t *Timeline) healed(name string, now int64) {
	m := t.member(name)
	if n := len(m.Cut); n > 0 && m.Cut[n-1].To < 0 {
		m.Cut[n-1].To = time.Duration(now)
	}
}

// finish closes open spans at the end and derives the ownership steps
// from the ledger's intervals.
func (t *Timeline) finish(s *sim) {
	t.End = time.Duration(s.end)
	t.Rebalances = s.metrics.RebalanceLog
	for i := range t.Members {
		m := &t.Members[i]
		for k := range m.Running {
			if m.Running[k].To < 0 {
				m.Running[k].To = t.End
			}
		}
		for k := range m.Cut {
			if m.Cut[k].To < 0 {
				m.Cut[k].To = t.End
			}
		}
		for k := range m.Revoking {
			if m.Revoking[k].To < 0 {
				m.Revoking[k].To = t.End
			}
		}
		for k := range m.Paused {
			m.Paused[k].To = min(m.Paused[k].To, t.End)
		}
	}
	type change struct {
		at int64
		d  int
	}
	perMember := map[string][]change{}
	perPart := make([][]change, len(s.partRefs))
	for _, k := range []struct {
		kind string
		ivs  []ownership.Interval
	}{{"owned", s.ledger.Intervals()}, {"processing", s.work.Intervals()}} {
		kind := k.kind
		for _, iv := range k.ivs {
			if iv.End > iv.Start {
				r := s.partRefs[iv.P]
				t.Ownership = append(t.Ownership, Ownership{Group: r.group, Topic: r.topic, Partition: r.p, Kind: kind,
					Member: s.procs[iv.Owner].name(), From: time.Duration(iv.Start), To: time.Duration(iv.End)})
			}
		}
	}
	slices.SortFunc(t.Ownership, func(a, b Ownership) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition),
			cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.From, b.From), cmp.Compare(a.Member, b.Member))
	})
	// changes adds each interval's start and end to its member's and its
	// partition's changes.
	changes := func(ivs []ownership.Interval, perMember map[string][]change, perPart [][]change) {
		for _, iv := range ivs {
			if iv.End <= iv.Start {
				continue
			}
			name := s.procs[iv.Owner].node.name
			perMember[name] = append(perMember[name], change{iv.Start, 1}, change{iv.End, -1})
			perPart[iv.P] = append(perPart[iv.P], change{iv.Start, 1}, change{iv.End, -1})
		}
	}
	changes(s.ledger.Intervals(), perMember, perPart)
	workPerMember := map[string][]change{}
	workPerPart := make([][]change, len(s.partRefs))
	changes(s.work.Intervals(), workPerMember, workPerPart)
	steps := func(cs []change) []Step {
		slices.SortStableFunc(cs, func(a, b change) int { return cmp.Compare(a.at, b.at) })
		var out []Step
		v := 0
		for i, c := range cs {
			v += c.d
			if i+1 < len(cs) && cs[i+1].at == c.at {
				continue
			}
			out = append(out, Step{At: time.Duration(c.at), Value: v})
		}
		return out
	}
	for i := range t.Members {
		t.Members[i].Owned = steps(perMember[t.Members[i].Name])
		t.Members[i].Processing = steps(workPerMember[t.Members[i].Name])
	}
	var exist []change
	for p := range s.partRefs {
		exist = append(exist, change{s.partRefs[p].born, 1})
	}
	// A partition is owned (processed) while any interval covers it: count
	// the partitions that exist less the covered ones.
	uncovered := func(perPart [][]change) []Step {
		out := slices.Clone(exist)
		for _, cs := range perPart {
			slices.SortStableFunc(cs, func(a, b change) int { return cmp.Compare(a.at, b.at) })
			depth := 0
			for _, c := range cs {
				was := depth
				depth += c.d
				switch {
				case was == 0 && depth > 0:
					out = append(out, change{c.at, -1})
				case was > 0 && depth == 0:
					out = append(out, change{c.at, 1})
				}
			}
		}
		return steps(out)
	}
	t.Partitions = steps(slices.Clone(exist))
	t.Unowned = uncovered(perPart)
	t.NotProcessing = uncovered(workPerPart)
	t.Action = Span{To: t.End}
	for _, d := range s.metrics.Disturbances {
		if d.At > 0 {
			t.Action.From = d.At
			break
		}
	}
	if m := s.metrics; m.Stable && m.TimeToStable >= 0 {
		t.Action.To = min(m.LastDisturbance+m.TimeToStable, t.End)
	}
}

// fmtParts formats a callback's partitions: "orders/0-3,7 audit/1".
func fmtParts(ps []fsm.Partition) string {
	var tps []*regroupv1.TopicPartitions
	for _, p := range ps {
		if n := len(tps); n > 0 && tps[n-1].GetTopic() == p.Topic {
			tps[n-1].Partitions = append(tps[n-1].Partitions, p.Partition)
			continue
		}
		tps = append(tps, &regroupv1.TopicPartitions{Topic: p.Topic, Partitions: []int32{p.Partition}})
	}
	s := fmtTopicParts(tps)
	if len(ps) > 0 {
		s += fmt.Sprintf(" @%d.%d", ps[0].Token>>32, ps[0].Token&(1<<32-1))
	}
	return s
}

// fmtTopicParts formats partitions as "orders/0-3,7 audit/1", or "-".
func fmtTopicParts(tps []*regroupv1.TopicPartitions) string {
	if len(tps) == 0 {
		return "-"
	}
	var b strings.Builder
	for i, tp := range tps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(tp.GetTopic())
		b.WriteByte('/')
		ps := slices.Sorted(slices.Values(tp.GetPartitions()))
		for j := 0; j < len(ps); {
			k := j
			for k+1 < len(ps) && ps[k+1] == ps[k]+1 {
				k++
			}
			if j > 0 {
				b.WriteByte(',')
			}
			if k > j {
				fmt.Fprintf(&b, "%d-%d", ps[j], ps[k])
			} else {
				fmt.Fprintf(&b, "%d", ps[j])
			}
			j = k + 1
		}
	}
	return b.String()
}
