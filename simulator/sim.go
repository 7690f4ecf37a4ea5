// Package simulator runs a scenario (package scenario) against the real
// group protocol in virtual time: the coordinator's coordinator/group state
// machines with a memory store, each member's member/fsm state machine with
// simulated application callbacks, and the real assignors, exchanging the
// real request and response messages through a simulated network. Members
// speak the classic protocol or the next-generation one (fsm.Next: Reconcile
// calls, the coordinator's server-side assignor), as their configuration
// says (scenario.MemberConfig.Protocol); the simulator drives both machines
// alike, through fsm.Machine.
//
// The simulator makes no protocol decision. It does what the drivers do
// (coordinator.Server and member.Run): it delivers requests and replies,
// persists a group's record before its replies go out, holds a held
// heartbeat until its time unless a later reply replaces it, fires timers
// at the state machines' deadlines, runs callbacks one at a time in order,
// and on a failover answers every waiting request and has a new leader
// reload the groups from the store. Everything else comes from the cores.
//
// A run is a discrete-event simulation: events are ordered by virtual time,
// then by the order in which they were scheduled. One random source, seeded
// with the scenario's seed, draws everything random: network delays and
// losses, callback durations, clock drift, member ids, the member state
// machines' retry jitter and churn choices. The same seed and the same code
// give the same trace, byte for byte.
//
// After every event the simulator checks safety (no partition owned by two
// members at one instant, ownership being what the members' callbacks
// report; no generation going back; at most one leader per generation) and,
// once the last disturbance is over and the liveness bound has passed,
// liveness (every group Stable, every partition owned). Run returns the
// metrics, the violations and the expectations that failed.
//
//	sc, err := scenario.Parse("crash.sim", text)
//	...
//	res, err := simulator.Run(sc, simulator.Options{})
//	fmt.Println(res.Metrics.Rebalances, res.OK())
package simulator

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"time"

	"github.com/regroup-dev/regroup/member/fsm"
	"github.com/regroup-dev/regroup/simulator/ownership"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// Options change what a run records; the zero value records only the
// metrics.
type Options struct {
	// Trace, if set, receives one line per event: the virtual time, the
	// node (coord or a member) and what happened.
	Trace io.Writer
	// Messages adds every message sent, delivered or lost to the trace.
	Messages bool
	// Timeline records ownership and disturbances over time, for
	// Result.Timeline.
	Timeline bool
	// Window is the length of the windows that Metrics.UnownedWindows and
	// Metrics.NotProcessingWindows measure; zero means 10 s.
	Window time.Duration
	// Since, if positive, is a time from which Metrics.Value can measure
	// the partition-seconds of unowned and not-processing, besides the
	// since of every expect line.
	Since time.Duration
	// Progress, if set, is called as virtual time advances, at most once
	// per hundredth of the scenario, with the virtual time reached and the
	// scenario's end. It must not call back into the run.
	Progress func(reached, end time.Duration)
}

// Result is what a run found.
type Result struct {
	// Scenario is the scenario's name and Seed the seed it ran with.
	Scenario string
	Seed     uint64
	Metrics  Metrics
	// Violations are the safety and liveness violations, in order.
	Violations []Violation
	// Failed are the expect lines that did not hold, as messages.
	Failed []string
	// TraceHash is the SHA-256 of the trace, in hex, when Options.Trace
	// is set.
	TraceHash string
	// Assignment is what each running member owned at the end, as its
	// state machine reports it: member name -> "topic/partition", by topic
	// and partition.
	Assignment map[string][]string
	// Timeline is set when Options.Timeline was.
	Timeline *Timeline
}

// OK reports whether the run had no violation and met every expectation.
func (r *Result) OK() bool { return len(r.Violations) == 0 && len(r.Failed) == 0 }

// Violation is a broken invariant.
type Violation struct {
	// At is the virtual time at which it was found.
	At time.Duration
	// Kind is "two-owners", "generation", "leader", "ownership" (a
	// member reported ownership inconsistently), "restore" (a new
	// coordinator could not restore a group), "liveness" or "busy-loop".
	Kind   string
	Detail string
}

// String formats the violation as "  12.345s kind: detail".
func (v Violation) String() string {
	return fmt.Sprintf("%s %s: %s", fmtTime(int64(v.At)), v.Kind, v.Detail)
}

// epoch is virtual time zero.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// errStopped ends a run early (a busy loop in a core).
var errStopped = errors.New("simulation stopped")

// Run runs sc. It returns an error only if the scenario cannot run (an
// unknown assignor after SetAssignors, an invalid member configuration);
// what goes wrong in the protocol is in the Result.
func Run(sc *scenario.Scenario, opts Options) (*Result, error) {
	s, err := newSim(sc, opts)
	if err != nil {
		return nil, err
	}
	return s.run()
}

// sim is one run.
type sim struct {
	sc   *scenario.Scenario
	opts Options
	rng  *rand.Rand
	now  int64 // virtual nanoseconds since epoch
	end  int64
	q    queue
	seq  uint64

	trace     *bufio.Writer
	traceHash hash.Hash
	cl        *cluster
	ids       *idSource // member ids, unique across the shards
	net       network
	groups    []*groupState
	byGroup   map[string]*groupState
	nodes     []*node
	byName    map[string]*node
	procs     []*process       // every process ever started; index = ledger owner
	topics    map[string]int32 // the registry as the scenario sets it
	partRefs  []partRef        // ledger partition -> name
	tags      int32            // ledger tags: one per group and topic
	ledger    *ownership.Ledger
	// work records when partitions are processed: owned by a process
	// that is not paused, not revoking them, and within its lease (a
	// lease's end is retroactive, as in ledger).
	work *ownership.Ledger
	cuts []int64 // times both ledgers are cut at, in order, still to come
	// disturbances are the times scenario actions and churn events ran,
	// in order, each once; both ledgers are cut there too.
	disturbances []int64
	bound        int64 // the liveness bound

	joinConfigs []fsm.Config // per action: a join's state machine configuration
	metrics     Metrics
	tl          *Timeline
	stopped     bool

	violations []Violation
	leaders    map[leaderKey]string

	// Liveness: disturbances under way or still to come, the end of the
	// last one, and since when the groups have been settled.
	pending         int
	lastDisturbance int64
	livenessAt      int64 // when liveness is checked from; -1 until known
	settledSince    int64 // -1 while not settled
	livenessBroken  bool
}

type leaderKey struct {
	group string
	gen   int32
}

func newSim(sc *scenario.Scenario, opts Options) (*sim, error) {
	s := &sim{
		sc:           sc,
		opts:         opts,
		rng:          rand.New(rand.NewPCG(sc.Seed, 0x5eed)),
		end:          int64(sc.End()),
		byGroup:      map[string]*groupState{},
		byName:       map[string]*node{},
		ledger:       ownership.New(opts.Timeline),
		work:         ownership.New(opts.Timeline),
		leaders:      map[leaderKey]string{},
		livenessAt:   -1,
		settledSince: -1,
	}
	s.planCuts()
	if opts.Trace != nil {
		s.traceHash = sha256.New()
		s.trace = bufio.NewWriter(io.MultiWriter(opts.Trace, s.traceHash))
	}
	if opts.Timeline {
		s.tl = &Timeline{}
	}
	s.net = network{delay: sc.Network.Delay, loss: sc.Network.Loss}
	if err := s.setup(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sim) run() (*Result, error) {
	var mark int64 // the next progress report is due at this virtual time
	for s.q.len() > 0 && !s.stopped && s.q.peek() <= s.end {
		at, e := s.q.pop()
		s.cutUntil(at)
		s.now = at
		s.metrics.Events++
		s.dispatch(e)
		s.afterEvent()
		if s.opts.Progress != nil && s.now >= mark {
			s.opts.Progress(time.Duration(s.now), time.Duration(s.end))
			mark = s.now + max(s.end/100, 1)
		}
	}
	s.cutUntil(s.end)
	s.now = s.end
	s.finish()
	res := &Result{Scenario: s.sc.Name, Seed: s.sc.Seed, Metrics: s.metrics, Violations: s.violations, Timeline: s.tl, Assignment: map[string][]string{}}
	for _, n := range s.nodes {
		if p := n.proc; p != nil && p.alive {
			owned := []string{}
			for _, x := range p.fsm.Assignment() {
				owned = append(owned, fmt.Sprintf("%s/%d", x.Topic, x.Partition))
			}
			res.Assignment[n.name] = owned
		}
	}
	res.Failed = s.expectations()
	if s.trace != nil {
		s.tracef("sim", "end: %s", res.summaryLine())
		if err := s.trace.Flush(); err != nil {
			return nil, fmt.Errorf("regroup: simulator: writing the trace: %w", err)
		}
		res.TraceHash = hex.EncodeToString(s.traceHash.Sum(nil))
	}
	return res, nil
}

func (r *Result) summaryLine() string {
	m := r.Metrics
	return fmt.Sprintf("rebalances=%d moved=%d revoked=%d lost=%d unowned=%.1fps not-processing=%.1fps messages=%d violations=%d",
		m.Rebalances, m.Moved, m.Revoked, m.Lost, m.UnownedSeconds, m.NotProcessingSeconds, m.Messages, len(r.Violations))
}

// clock is virtual now as a time.
func (s *sim) clock() time.Time { return epoch.Add(time.Duration(s.now)) }

func (s *sim) violate(kind, format string, args ...any) {
	v := Violation{At: time.Duration(s.now), Kind: kind, Detail: fmt.Sprintf(format, args...)}
	s.violations = append(s.violations, v)
	s.metrics.Violations++
	s.tracef("CHECK", "VIOLATION %s: %s", kind, v.Detail)
}

// stop ends the run after the current event: a core is in a busy loop.
func (s *sim) stop(format string, args ...any) {
	s.violate("busy-loop", format, args...)
	s.stopped = true
}

func (s *sim) tracef(node, format string, args ...any) {
	if s.trace == nil {
		return
	}
	fmt.Fprintf(s.trace, "%s %-8s %s\n", fmtTime(s.now), node, fmt.Sprintf(format, args...))
}

// fmtTime formats virtual nanoseconds as seconds with millisecond
// precision, right-aligned.
func fmtTime(ns int64) string {
	ms := ns / int64(time.Millisecond)
	return fmt.Sprintf("%7d.%03ds", ms/1000, ms%1000)
}

// draw returns a duration from d.
func (s *sim) draw(d scenario.Dist) int64 {
	if d.Max <= d.Min {
		return int64(d.Min)
	}
	return int64(d.Min) + s.rng.Int64N(int64(d.Max-d.Min)+1)
}
