// Package scenario is the simulator's scenario language: small text files,
// one command per line, that set up a coordinator, topics and groups and
// then say what happens when (members join, leave, crash, restart, pause,
// are cut off; the coordinator fails over; topics grow) and what the run
// must show (expect lines).
//
// Parse turns a file into a Scenario, a plain value that the simulator runs
// and that Go code may change before running it (a parameter sweep sets
// fields, see Scenario). Random writes the text of a random scenario from a
// seed, with bounded sizes, for sweeps. The language is documented, command
// by command with every default, in docs/simulator.md.
package scenario

import (
	"fmt"
	"time"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/member/fsm"
)

// Scenario is a parsed scenario. Actions are sorted by time, then by line.
// Every MemberConfig in it is complete (defaults filled in).
type Scenario struct {
	// Name is the file's name, for reports.
	Name string
	// Seed seeds the run's one random source (default 1).
	Seed uint64
	// Coordinator holds the group protocol settings and the failover gap.
	Coordinator Coordinator
	// Network is the network at time 0.
	Network Network
	// Topics is the topic registry at time 0.
	Topics []Topic
	// Groups are the groups members may join, in declaration order.
	Groups []Group
	// Actions is the timeline.
	Actions []Action
	// Until is when the run ends; zero means the last disturbance plus
	// the liveness bound (see LivenessBound).
	Until time.Duration
	// Expects are the outcomes the run must show.
	Expects []Expect
}

// Coordinator configures the simulated coordinator.
type Coordinator struct {
	// Group is every group's protocol configuration (default
	// group.DefaultConfig()).
	Group group.Config
	// LeaseTTL is the leader's etcd lease (default 5s, regroup serve's
	// --lease-ttl): a leader holds its term until LeaseTTL after its last
	// keep-alive, sent every third of it.
	LeaseTTL time.Duration
	// Election is how long electing and loading a new leader takes once
	// the old lease expired (default 500ms).
	Election time.Duration
	// FailoverGap is how long no coordinator serves during a failover,
	// unless the failover command gives its own gap; zero means Gap().
	FailoverGap time.Duration
	// WriteLatency is how long a store write takes (default 0: done at
	// the instant it is issued, after the step that issued it).
	WriteLatency Dist
	// Coordinators is how many coordinator processes run at the start,
	// named c1, c2, ... (default 1), and Shards how many shards the groups
	// are spread over (default 1): a group belongs to the shard its id
	// hashes to (coordinator/shard.Of), and coordinator/shard.Plan places
	// the shards on the coordinators, as regroup serve does.
	Coordinators, Shards int
}

// CoordinatorName returns the name of coordinator process i (from 0): c1,
// c2, ...
func CoordinatorName(i int) string { return fmt.Sprintf("c%d", i+1) }

// Gap returns how long no coordinator serves after a leader dies: the
// FailoverGap if set, else what a real failover takes with these
// settings: the rest of the dead leader's lease (at most LeaseTTL) plus
// the election.
func (c Coordinator) Gap() time.Duration {
	if c.FailoverGap > 0 {
		return c.FailoverGap
	}
	return c.LeaseTTL + c.Election
}

// Network is the simulated network between members and the coordinator.
type Network struct {
	// Delay is the one-way delay of each message (default 1ms..5ms).
	Delay Dist
	// Loss is the probability that a message is lost (default 0).
	Loss float64
}

// Dist is a uniform distribution of durations over [Min, Max]; Min == Max
// is a constant.
type Dist struct {
	Min, Max time.Duration
}

// Topic is a topic of the registry.
type Topic struct {
	Name       string
	Partitions int32
}

// Group is a group and the configuration its members start from.
type Group struct {
	Name   string
	Member MemberConfig
}

// MemberConfig is one member's configuration. Durations follow the member
// library's defaults (member.Config) unless the scenario sets them.
type MemberConfig struct {
	// Topics the member subscribes to (default: every topic declared
	// before the first action).
	Topics []string
	// Protocol is the group protocol the member speaks: fsm.Classic (the
	// default) or fsm.Next, the next-generation protocol, in which the
	// coordinator assigns (Assignors then names one assignor, the group's
	// server-side one) and each member converges on its own.
	Protocol fsm.Protocol
	// Assignors offered, in preference order (default cooperative-sticky);
	// under fsm.Next, the one server-side assignor the member asks for.
	Assignors []string
	// Static makes the member use an instance id (its name).
	Static bool
	// LeaveOnStop makes a static member leave for good when it stops.
	LeaveOnStop bool
	// SessionTimeout (10s), RebalanceTimeout (30s), HeartbeatInterval
	// (min(3s, session/3)), Margin (session/10) and the retry backoff
	// (100ms..min(5s, session/3)).
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	Margin            time.Duration
	MinBackoff        time.Duration
	MaxBackoff        time.Duration
	// Callbacks says how long the application's callbacks take.
	Callbacks Callbacks
	// Drift bounds the rate error of the member's clock: each process
	// draws a rate in [-Drift, +Drift] (0.001 is 0.1%, 1 ms per second).
	Drift float64
	// AssignTime is how long the assignor takes to compute a plan when
	// the member leads, drawn per plan (default 0s): the SyncGroup request
	// that carries the plan leaves that much later. A next-generation
	// member leads nothing: it does not apply (the coordinator's own
	// compute time is not modelled).
	AssignTime Dist
	// ClassicHeartbeats makes the member beat as Kafka's classic client,
	// a baseline (fsm.Config.ClassicHeartbeats): no held heartbeats, so a
	// rebalance notice waits for its next heartbeat.
	ClassicHeartbeats bool
}

// Callbacks are the durations of the application's callbacks, drawn for
// each call (defaults: 0s, 200ms, 0s).
type Callbacks struct {
	OnAssigned, OnRevoked, OnLost Dist
}

// Action is one thing that happens at a time.
type Action struct {
	// Line is the line of the scenario file the action comes from.
	Line int
	// At is the action's time from the start of the run.
	At time.Duration
	// Do is what happens: one of the command types of this package
	// (Join, Leave, Crash, Restart, Pause, Partition, Heal, Slow,
	// Failover, StoreFault, PauseCoordinator, SetTopic, SetNetwork,
	// Churn, AddCoordinator, RemoveCoordinator).
	Do Command
}

// Command is what an Action does: one of the command types of this
// package.
type Command interface{ command() }

func (Join) command()              {}
func (Leave) command()             {}
func (Crash) command()             {}
func (Restart) command()           {}
func (Pause) command()             {}
func (Partition) command()         {}
func (Heal) command()              {}
func (Slow) command()              {}
func (Failover) command()          {}
func (StoreFault) command()        {}
func (PauseCoordinator) command()  {}
func (SetTopic) command()          {}
func (SetNetwork) command()        {}
func (Churn) command()             {}
func (AddCoordinator) command()    {}
func (RemoveCoordinator) command() {}

// Join starts a member process that joins Group with Config.
type Join struct {
	Member string
	Group  string
	Config MemberConfig
}

// Leave stops a member gracefully: it revokes its partitions and leaves
// (a static member only releases them unless LeaveOnStop).
type Leave struct{ Member string }

// Crash kills a member process: it sends nothing more.
type Crash struct{ Member string }

// Restart stops a member (gracefully, or by a crash) and starts a new
// process Down after the old one is gone. A static member keeps its
// instance id unless NewInstance.
type Restart struct {
	Member      string
	Down        time.Duration
	Crash       bool
	NewInstance bool
}

// Pause freezes a member process for For: a stop-the-world pause.
type Pause struct {
	Member string
	For    time.Duration
}

// Partition cuts a member off from the coordinator, for For or, if zero,
// until a Heal.
type Partition struct {
	Member string
	For    time.Duration
}

// Heal ends a Partition.
type Heal struct{ Member string }

// Slow changes how long a member's callbacks take from now on; nil fields
// keep their current distribution.
type Slow struct {
	Member                        string
	OnAssigned, OnRevoked, OnLost *Dist
}

// Failover kills a coordinator's process (Coordinator, or the one that
// leads the first group's shard if ""); a new process takes its place at
// once, and leads its shards, loading their groups from the store, Gap
// later, once the dead one's lease has ended (Parse fills in the
// Coordinator's FailoverGap when the command gives none). The shards of
// the other coordinators are not touched.
type Failover struct {
	Gap         time.Duration
	Coordinator string
}

// AddCoordinator starts coordinator process Name (the next of c1, c2, ...):
// the shards that coordinator/shard.Plan moves to it are handed off, each
// by a graceful handoff: its leader answers its waiting calls, stops and
// resigns, and the new one loads the shard's groups from the store and
// serves them Election later, granting every member a full session, as
// after a failover.
type AddCoordinator struct{ Name string }

// RemoveCoordinator stops coordinator process Name gracefully: its shards
// are handed off (see AddCoordinator) to the others as
// coordinator/shard.Plan places them.
type RemoveCoordinator struct{ Name string }

// StoreFaultKind is what goes wrong with the store.
type StoreFaultKind string

// The store faults.
const (
	// StoreFail: writes and reads fail; nothing is stored.
	StoreFail StoreFaultKind = "fail"
	// StoreLoseAcks: writes are stored, but their acknowledgements are
	// lost: the coordinator cannot know whether they took effect.
	StoreLoseAcks StoreFaultKind = "lose-acks"
	// StoreSlow: writes take Latency.
	StoreSlow StoreFaultKind = "slow"
)

// StoreFault makes the store misbehave for For.
type StoreFault struct {
	Kind    StoreFaultKind
	For     time.Duration
	Latency Dist
}

// PauseCoordinator freezes a coordinator's process (Coordinator, or the
// one that leads the first group's shard if "") for For (a SIGSTOP, a long
// GC, a frozen VM): it does nothing, and its keep-alives stop. If its
// lease ends meanwhile, a new leader of each of its shards is elected
// Election later and serves; the old one wakes with stale timers and
// queued calls, deposed, and must deliver nothing.
type PauseCoordinator struct {
	For         time.Duration
	Coordinator string
}

// SetTopic creates a topic or changes its partition count.
type SetTopic struct{ Topic Topic }

// SetNetwork changes the network from now on; a nil field keeps its
// current value.
type SetNetwork struct {
	Delay *Dist
	Loss  *float64
}

// Churn picks, every Every for For, a random running member of Group (any
// group if empty) and disturbs it with one of Kinds, chosen at random.
type Churn struct {
	Group string
	Every time.Duration
	For   time.Duration
	Kinds []ChurnKind
	// Down is how long a restarted member stays down (default 1s).
	Down time.Duration
	// Pause is how long a paused member stays paused (default 1s..20s).
	Pause Dist
}

// ChurnKind is one kind of churn event.
type ChurnKind string

// The kinds of churn event.
const (
	// ChurnRestart restarts the member gracefully.
	ChurnRestart ChurnKind = "restart"
	// ChurnCrash crashes the member and starts it again after Down.
	ChurnCrash ChurnKind = "crash"
	// ChurnPause pauses the member for a duration drawn from Pause.
	ChurnPause ChurnKind = "pause"
)

// Expect is one outcome the run must show: Metric compared with Value.
type Expect struct {
	Line int
	// Text is the expectation as written, for messages.
	Text   string
	Metric Metric
	Op     Op
	// Value is a count, or seconds for duration metrics.
	Value float64
	// Since restricts event metrics, and the partition-seconds of unowned
	// and not-processing, to what happens from this time on.
	Since time.Duration
	// Cause restricts rebalances to one cause kind (group.Cause).
	Cause string
	// Protocol, if set ("classic" or "next"), checks the expectation only
	// when every member speaks that group protocol (Scenario.Protocol):
	// how many rebalances a disturbance costs, for one, is the protocol's.
	Protocol string
}

// Metric names what an Expect measures.
type Metric string

// The metrics an Expect may name; docs/simulator.md defines each.
const (
	MetricRebalances      Metric = "rebalances"
	MetricGeneration      Metric = "generation"
	MetricMoved           Metric = "moved"
	MetricRevoked         Metric = "revoked"
	MetricLost            Metric = "lost"
	MetricUnowned         Metric = "unowned"
	MetricNotProcessing   Metric = "not-processing"
	MetricRebalanceMedian Metric = "rebalance-median"
	MetricRebalanceMax    Metric = "rebalance-max"
	MetricStable          Metric = "stable"
	MetricMessages        Metric = "messages"
	MetricViolations      Metric = "violations"
	MetricFatal           Metric = "fatal"
	MetricHandoffs        Metric = "handoffs"
	MetricFailovers       Metric = "failovers"
)

// Op compares a metric with a value.
type Op string

// The comparisons.
const (
	OpEq Op = "="
	OpLe Op = "<="
	OpGe Op = ">="
	OpLt Op = "<"
	OpGt Op = ">"
)

// Holds reports whether got op want holds.
func (o Op) Holds(got, want float64) bool {
	switch o {
	case OpEq:
		return got == want
	case OpLe:
		return got <= want
	case OpGe:
		return got >= want
	case OpLt:
		return got < want
	case OpGt:
		return got > want
	}
	return false
}

// LivenessBound returns how long after the last disturbance every group
// must be Stable with every partition owned. With S the largest session
// timeout, R the largest rebalance timeout, B the largest retry backoff
// and C the slowest callback of any member, and N the largest network
// delay:
//
//	3·S + 3·R + B + 2·C + 10·N
//
// which covers the detection of a dead member (S), two rebalance rounds
// (a cooperative revocation round and its follow-up), each bounded by its
// join barrier (R) and by the lease of a removed member still holding a
// partition (S), an empty group's initial delay (at most R), one retry
// backoff, a slow revocation followed by an assignment queued behind it,
// and a few round trips.
func (s *Scenario) LivenessBound() time.Duration {
	var sess, reb, backoff, cb time.Duration
	each := func(c MemberConfig) {
		sess = max(sess, c.SessionTimeout)
		reb = max(reb, c.RebalanceTimeout)
		backoff = max(backoff, c.MaxBackoff)
		cb = max(cb, c.Callbacks.OnAssigned.Max, c.Callbacks.OnRevoked.Max, c.Callbacks.OnLost.Max, c.AssignTime.Max)
	}
	delay := s.Network.Delay.Max
	for _, g := range s.Groups {
		each(g.Member)
	}
	for _, a := range s.Actions {
		switch c := a.Do.(type) {
		case Join:
			each(c.Config)
		case Slow:
			for _, d := range []*Dist{c.OnAssigned, c.OnRevoked, c.OnLost} {
				if d != nil {
					cb = max(cb, d.Max)
				}
			}
		case SetNetwork:
			if c.Delay != nil {
				delay = max(delay, c.Delay.Max)
			}
		}
	}
	return 3*sess + 3*reb + backoff + 2*cb + 10*delay
}

// LastDisturbance returns when the last action stops disturbing the
// groups, as planned: its time plus a pause's or partition's length, a
// failover's gap, a restart's down time plus the time a graceful stop may
// take (the rebalance timeout), or a churn's length plus its longest
// disturbance. The simulator measures the actual end as it runs.
func (s *Scenario) LastDisturbance() time.Duration {
	var last time.Duration
	reb := time.Duration(0)
	for _, g := range s.Groups {
		reb = max(reb, g.Member.RebalanceTimeout)
	}
	for _, a := range s.Actions {
		end := a.At
		switch c := a.Do.(type) {
		case Join:
			reb = max(reb, c.Config.RebalanceTimeout)
		case Restart:
			end += c.Down + reb
		case Pause:
			end += c.For
		case Partition:
			end += c.For
		case Failover:
			end += c.Gap
		case StoreFault:
			end += c.For
		case PauseCoordinator:
			end += c.For + s.Coordinator.Gap()
		case AddCoordinator, RemoveCoordinator:
			end += s.Coordinator.Election
		case Churn:
			end += c.For + max(c.Down+reb, c.Pause.Max)
		}
		last = max(last, end)
	}
	return last
}

// HeartbeatInterval returns the longest heartbeat interval of any member
// configuration (a group's or a join's).
func (s *Scenario) HeartbeatInterval() time.Duration {
	var hb time.Duration
	for _, g := range s.Groups {
		hb = max(hb, g.Member.HeartbeatInterval)
	}
	for _, a := range s.Actions {
		if j, ok := a.Do.(Join); ok {
			hb = max(hb, j.Config.HeartbeatInterval)
		}
	}
	return hb
}

// End returns when the run ends: Until, or the last disturbance plus the
// liveness bound.
func (s *Scenario) End() time.Duration {
	if s.Until > 0 {
		return s.Until
	}
	return s.LastDisturbance() + s.LivenessBound()
}

// SetAssignors makes every member of every group offer names, in order.
func (s *Scenario) SetAssignors(names []string) {
	_ = s.eachMember(func(c *MemberConfig, _ string) error { c.Assignors = append([]string(nil), names...); return nil })
}

// SetClassicHeartbeats makes every member beat as Kafka's classic client
// (classic) or hold its heartbeats (the default).
func (s *Scenario) SetClassicHeartbeats(classic bool) {
	_ = s.eachMember(func(c *MemberConfig, _ string) error { c.ClassicHeartbeats = classic; return nil })
}

// Protocol returns the group protocol every member speaks, or false if
// they do not all speak the same.
func (s *Scenario) Protocol() (fsm.Protocol, bool) {
	var p fsm.Protocol
	first, same := true, true
	_ = s.eachMember(func(c *MemberConfig, _ string) error {
		if first {
			p, first = c.Protocol, false
		}
		same = same && c.Protocol == p
		return nil
	})
	return p, same
}

// SetProtocol makes every member speak group protocol p. Under fsm.Next a
// member names one assignor, the group's server-side one: a member that
// offered several keeps the one it prefers, the first.
func (s *Scenario) SetProtocol(p fsm.Protocol) {
	_ = s.eachMember(func(c *MemberConfig, _ string) error {
		c.Protocol = p
		if p == fsm.Next && len(c.Assignors) > 1 {
			c.Assignors = c.Assignors[:1:1]
		}
		return nil
	})
}

// SetStatic makes every member static (with its name as instance id) or
// dynamic.
func (s *Scenario) SetStatic(static bool) {
	_ = s.eachMember(func(c *MemberConfig, _ string) error { c.Static = static; return nil })
}
