// Package prommetrics measures a coordinator with the Prometheus Go client.
// Metrics implements coordinator.Metrics: counters and histograms fed by the
// coordinator's events, requests and store writes. RegisterServer adds the
// gauges that are read from the coordinator at every scrape: groups by
// state, members, partitions without an owner, partitions members lost,
// how long rebalances have been
// running and may run, how close members are to their session deadline,
// leadership.
//
// Every metric is registered on the Registerer the caller passes, never on
// the global one, so that tests and embedders stay isolated. The metric
// names, and what to alert on, are listed in docs/operations.md.
package prommetrics

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/group"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// causes are the rebalance cause kinds whose counters start at zero, so
// that rates and increases are defined before the first rebalance.
var causes = []group.Cause{
	group.CauseMemberJoined, group.CauseMemberLeft, group.CauseMemberRemoved, group.CauseMemberExpired,
	group.CauseSubscriptionChanged, group.CauseLeaderRejoined, group.CauseSyncTimeout, group.CauseTopicChanged,
	group.CauseAssignmentRefused, group.CauseStaticReplaced, group.CauseFailover, group.CauseGroupTooLarge,
}

// rebalanceBuckets span a fast rebalance of a few round trips to one that
// waits out long rebalance timeouts, in seconds.
var rebalanceBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// latencyBuckets span a heartbeat on loopback to a store write at its
// timeout, in seconds.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics implements coordinator.Metrics with Prometheus counters and
// histograms. Its methods are safe for concurrent use.
type Metrics struct {
	triggers        *prometheus.CounterVec
	rebalances      *prometheus.CounterVec
	duration        prometheus.Histogram
	joinWait        prometheus.Histogram
	syncWait        prometheus.Histogram
	moved           prometheus.Counter
	revoked         prometheus.Counter
	refusals        prometheus.Counter
	removals        prometheus.Counter
	replacements    prometheus.Counter
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	storeWrites     *prometheus.HistogramVec
	queueDelay      prometheus.Histogram
	transit         prometheus.Histogram
	overloaded      prometheus.Gauge
	shed            *prometheus.CounterVec
}

// New returns Metrics whose counters and histograms are registered on reg.
// It fails if reg already holds metrics of the same names.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regroup_rebalance_triggers_total",
			Help: "Events that started a rebalance or joined the one in progress, by cause kind.",
		}, []string{"cause"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regroup_rebalances_total",
			Help: "Completed rebalances, by the kind of their first cause.",
		}, []string{"cause"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "regroup_rebalance_duration_seconds",
			Help:    "Time from the start of a rebalance until every member had its assignment.",
			Buckets: rebalanceBuckets,
		}),
		joinWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "regroup_join_barrier_wait_seconds",
			Help:    "Time from the start of a rebalance until the join barrier completed.",
			Buckets: rebalanceBuckets,
		}),
		syncWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "regroup_sync_barrier_wait_seconds",
			Help:    "Time from the join barrier until every member had its assignment (the leader's assignor, SyncGroups, partitions waiting for leases).",
			Buckets: rebalanceBuckets,
		}),
		moved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regroup_partitions_moved_total",
			Help: "Partitions whose owner changed from one member to another in a rebalance.",
		}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regroup_partitions_revoked_total",
			Help: "Partitions members gave up during rebalances.",
		}),
		refusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regroup_assignment_refusals_total",
			Help: "Leader assignments the coordinator refused (INVALID_ASSIGNMENT).",
		}),
		removals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regroup_member_removals_total",
			Help: "Members that left a group: left, expired, removed by an operator, or dropped at a barrier.",
		}),
		replacements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regroup_static_replacements_total",
			Help: "Static members replaced by a restarted process without a rebalance.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regroup_requests_total",
			Help: "Coordinator RPCs answered, by method and code (OK, an error reason, or CANCELED).",
		}, []string{"method", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "regroup_request_duration_seconds",
			Help:    "Duration of Coordinator RPCs by method, barrier waits included; held heartbeats (hold_ms > 0) are left out.",
			Buckets: latencyBuckets,
		}, []string{"method"}),
		storeWrites: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "regroup_store_write_duration_seconds",
			Help:    "Duration of writes of group records and topics to the store, by result (ok or error).",
			Buckets: latencyBuckets,
		}, []string{"result"}),
		queueDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "regroup_queue_delay_seconds",
			Help:    "How long calls waited before the coordinator's core got to them, and how late its timers fired: its measure of its own load.",
			Buckets: latencyBuckets,
		}),
		transit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "regroup_member_transit_seconds",
			Help:    "The transits members report with their held calls: how much longer than the coordinator held it a member's last call took, round trip (the network, and the queues before the coordinator's handlers: a coordinator short of CPU), each measurement once, in milliseconds (under one as 1 ms).",
			Buckets: latencyBuckets,
		}),
		overloaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "regroup_overloaded",
			Help: "1 while the coordinator sheds load (COORDINATOR_OVERLOADED for new members, groups not yet formed and Admin reads), else 0.",
		}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regroup_shed_calls_total",
			Help: "Calls refused with COORDINATOR_OVERLOADED because the coordinator was overloaded or served its --max-members, by method (JoinGroup, ListGroups, DescribeGroup, WatchGroup, and any call of a group not yet formed).",
		}, []string{"method"}),
	}
	for _, method := range []string{"JoinGroup", "ListGroups", "DescribeGroup", "WatchGroup"} {
		m.shed.WithLabelValues(method)
	}
	for _, c := range causes {
		m.triggers.WithLabelValues(string(c))
		m.rebalances.WithLabelValues(string(c))
	}
	for _, c := range []prometheus.Collector{
		m.triggers, m.rebalances, m.duration, m.joinWait, m.syncWait, m.moved, m.revoked,
		m.refusals, m.removals, m.replacements, m.requests, m.requestDuration, m.storeWrites,
		m.queueDelay, m.transit, m.overloaded, m.shed,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("regroup: registering coordinator metrics: %w", err)
		}
	}
	return m, nil
}

// GroupEvent implements coordinator.Metrics.
func (m *Metrics) GroupEvent(_ string, e group.Event) {
	switch e.Kind {
	case group.EventRebalanceStarted:
		m.triggers.WithLabelValues(string(e.Cause)).Inc()
	case group.EventRebalanceDone:
		r := e.Rebalance
		m.rebalances.WithLabelValues(r.GetCauseKind()).Inc()
		m.moved.Add(float64(r.GetPartitionsMoved()))
		m.revoked.Add(float64(r.GetPartitionsRevoked()))
		start, joined, end := r.GetStart(), r.GetJoinCompleted(), r.GetEnd()
		if start != nil && end != nil {
			m.duration.Observe(end.AsTime().Sub(start.AsTime()).Seconds())
		}
		if start != nil && joined != nil {
			m.joinWait.Observe(joined.AsTime().Sub(start.AsTime()).Seconds())
		}
		if joined != nil && end != nil {
			m.syncWait.Observe(end.AsTime().Sub(joined.AsTime()).Seconds())
		}
	case group.EventAssignmentRefused:
		m.refusals.Inc()
	case group.EventMemberRemoved:
		m.removals.Inc()
	case group.EventMemberReplaced:
		m.replacements.Inc()
	}
}

// Request implements coordinator.Metrics. A held heartbeat (or Reconcile) is counted but
// its duration is not observed: the coordinator holds it on purpose, up to
// hold_ms, and answers early when a rebalance starts, so its duration says
// nothing about how fast the coordinator answers.
func (m *Metrics) Request(method string, req proto.Message, d time.Duration, code regroup.Code) {
	if code == "" {
		code = "OK"
	}
	m.requests.WithLabelValues(method, string(code)).Inc()
	if hb, ok := req.(*regroupv1.HeartbeatRequest); ok {
		m.observeTransit(hb.GetTransitMs())
		if hb.GetHoldMs() > 0 {
			return
		}
	}
	if rc, ok := req.(*regroupv1.ReconcileRequest); ok {
		m.observeTransit(rc.GetTransitMs())
		if rc.GetHoldMs() > 0 {
			return // held the same way
		}
	}
	m.requestDuration.WithLabelValues(method).Observe(d.Seconds())
}

// observeTransit counts a transit a member reported (0: none).
func (m *Metrics) observeTransit(ms int64) {
	if ms > 0 {
		m.transit.Observe(float64(ms) / 1000)
	}
}

// StoreWrite implements coordinator.Metrics.
func (m *Metrics) StoreWrite(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.storeWrites.WithLabelValues(result).Observe(d.Seconds())
}

// QueueDelay implements coordinator.Metrics.
func (m *Metrics) QueueDelay(d time.Duration) { m.queueDelay.Observe(d.Seconds()) }

// Overloaded implements coordinator.Metrics.
func (m *Metrics) Overloaded(on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.overloaded.Set(v)
}

// Shed implements coordinator.Metrics.
func (m *Metrics) Shed(method string) { m.shed.WithLabelValues(method).Inc() }

// Server is what the scrape-time gauges read; *coordinator.Server
// implements it.
type Server interface {
	// GroupStats returns the state of every group.
	GroupStats() []coordinator.GroupStat
	// Leading reports whether the coordinator serves groups.
	Leading() bool
}

// Sharded is a Server of a cluster of several shards
// (coordinator/cluster.Process): the gauges show which shards it leads.
type Sharded interface {
	// ShardsLed reports, for every shard, whether this coordinator leads
	// it.
	ShardsLed() []bool
}

// states are the states a live group can be in, each reported by
// regroup_groups even when no group is in it.
var states = []group.State{group.Empty, group.PreparingRebalance, group.CompletingRebalance, group.Stable}

// OtherGroups is the group label under which the per-group gauges of the
// groups beyond RegisterServer's maxGroups are aggregated.
const OtherGroups = "_other"

// RegisterServer registers on reg the gauges that are read from srv at
// every scrape. A scrape costs time in proportion to the number of members.
// At most maxGroups groups get series of their own (the first seen keep
// them until they are deleted; the series of a deleted group go away at
// the next scrape); the others are aggregated under the group label
// OtherGroups: members and unowned partitions summed, the longest
// rebalance and timeout, the smallest session left. So a client that
// creates groups cannot grow the number of series without bound.
func RegisterServer(reg prometheus.Registerer, srv Server, maxGroups int) error {
	c := newCollector(srv)
	c.maxGroups = maxGroups
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("regroup: registering coordinator gauges: %w", err)
	}
	return nil
}

// collector reads gauges from a Server at scrape time.
type collector struct {
	srv       Server
	maxGroups int
	mu        sync.Mutex
	own       map[string]bool // the groups with series of their own

	groups      *prometheus.Desc
	members     *prometheus.Desc
	unowned     *prometheus.Desc
	unknown     *prometheus.Desc
	lost        *prometheus.Desc
	rebalancing *prometheus.Desc
	timeout     *prometheus.Desc
	sessionLeft *prometheus.Desc
	leader      *prometheus.Desc
	shardLeader *prometheus.Desc
}

func newCollector(srv Server) *collector {
	return &collector{
		srv: srv,
		own: map[string]bool{},
		groups: prometheus.NewDesc("regroup_groups",
			"Groups by state.", []string{"state"}, nil),
		members: prometheus.NewDesc("regroup_group_members",
			"Members of the group.", []string{"group"}, nil),
		unowned: prometheus.NewDesc("regroup_group_partitions_unowned",
			"Partitions of subscribed topics that nobody works on: left without an owner by the group's current assignment, or assigned to a member whose answer waits for the lease of a member removed without releasing them.", []string{"group"}, nil),
		unknown: prometheus.NewDesc("regroup_group_unknown_topics",
			"Topics the group's members subscribe to that are not in the topic registry: nobody owns their partitions until they are created.", []string{"group"}, nil),
		lost: prometheus.NewDesc("regroup_group_partitions_lost_total",
			"Partitions the group's members declared lost (OnLost: their lease ended before the coordinator answered them, or it no longer knew them), as they reported when they rejoined; counted since this coordinator took the group over.", []string{"group"}, nil),
		rebalancing: prometheus.NewDesc("regroup_group_rebalance_running_seconds",
			"How long the group's rebalance in progress has been running; 0 when it is not rebalancing.", []string{"group"}, nil),
		timeout: prometheus.NewDesc("regroup_group_rebalance_timeout_seconds",
			"The largest rebalance timeout of the group's members: a rebalance's join and sync phases each end within it.", []string{"group"}, nil),
		sessionLeft: prometheus.NewDesc("regroup_group_session_left_ratio",
			"The smallest fraction of its session timeout that a member of the group has left before it expires (1 just after a heartbeat, 0 at expiry); members waiting at the join barrier are left out.", []string{"group"}, nil),
		leader: prometheus.NewDesc("regroup_leader",
			"1 while this coordinator serves groups (it is the leader, or leads at least one shard), else 0.", nil, nil),
		shardLeader: prometheus.NewDesc("regroup_shard_leader",
			"In a cluster of several shards: 1 for each shard this coordinator leads, else 0.", []string{"shard"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.groups, c.members, c.unowned, c.unknown, c.lost, c.rebalancing, c.timeout, c.sessionLeft, c.leader, c.shardLeader} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	leader := 0.0
	if c.srv.Leading() {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, leader)
	if sh, ok := c.srv.(Sharded); ok {
		for i, led := range sh.ShardsLed() {
			v := 0.0
			if led {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.shardLeader, prometheus.GaugeValue, v, strconv.Itoa(i))
		}
	}
	byState := map[group.State]int{}
	stats := c.srv.GroupStats()
	for _, st := range stats {
		byState[st.State]++
	}
	own, other := c.split(stats)
	for _, st := range own {
		c.collectGroup(ch, st)
	}
	if other != nil {
		c.collectGroup(ch, *other)
	}
	for _, s := range states {
		ch <- prometheus.MustNewConstMetric(c.groups, prometheus.GaugeValue, float64(byState[s]), s.String())
	}
}

func (c *collector) collectGroup(ch chan<- prometheus.Metric, st coordinator.GroupStat) {
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(st.Members), st.ID)
	ch <- prometheus.MustNewConstMetric(c.unowned, prometheus.GaugeValue, float64(st.Unowned), st.ID)
	ch <- prometheus.MustNewConstMetric(c.unknown, prometheus.GaugeValue, float64(st.UnknownTopics), st.ID)
	ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(st.PartitionsLost), st.ID)
	ch <- prometheus.MustNewConstMetric(c.rebalancing, prometheus.GaugeValue, st.Rebalancing.Seconds(), st.ID)
	ch <- prometheus.MustNewConstMetric(c.timeout, prometheus.GaugeValue, st.RebalanceTimeout.Seconds(), st.ID)
	ch <- prometheus.MustNewConstMetric(c.sessionLeft, prometheus.GaugeValue, st.SessionLeft, st.ID)
}

// split returns the stats of the groups with series of their own, and the
// aggregate of the others (nil if there are none). Groups that are gone
// give up their place; new groups take free places in the order given.
func (c *collector) split(stats []coordinator.GroupStat) ([]coordinator.GroupStat, *coordinator.GroupStat) {
	c.mu.Lock()
	defer c.mu.Unlock()
	present := make(map[string]bool, len(stats))
	for _, st := range stats {
		present[st.ID] = true
	}
	for id := range c.own {
		if !present[id] {
			delete(c.own, id)
		}
	}
	var own []coordinator.GroupStat
	var other *coordinator.GroupStat
	for _, st := range stats {
		// A group named like the aggregate is always in it: one series
		// per label value.
		if !c.own[st.ID] && len(c.own) < c.maxGroups && st.ID != OtherGroups {
			c.own[st.ID] = true
		}
		if c.own[st.ID] {
			own = append(own, st)
			continue
		}
		if other == nil {
			other = &coordinator.GroupStat{ID: OtherGroups, SessionLeft: 1}
		}
		other.Members += st.Members
		other.Unowned += st.Unowned
		other.UnknownTopics += st.UnknownTopics
		other.PartitionsLost += st.PartitionsLost
		other.Rebalancing = max(other.Rebalancing, st.Rebalancing)
		other.RebalanceTimeout = max(other.RebalanceTimeout, st.RebalanceTimeout)
		other.SessionLeft = min(other.SessionLeft, st.SessionLeft)
	}
	return own, other
}
