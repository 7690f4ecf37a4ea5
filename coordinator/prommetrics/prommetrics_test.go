package prommetrics_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/prommetrics"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func TestEventsRequestsAndWrites(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := prommetrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	m.GroupEvent("g", group.Event{Kind: group.EventRebalanceStarted, Cause: group.CauseMemberJoined, Detail: "member a joined"})
	m.GroupEvent("g", group.Event{Kind: group.EventRebalanceStarted, Cause: group.CauseMemberExpired, Detail: "member b expired"})
	m.GroupEvent("g", group.Event{Kind: group.EventRebalanceDone, Rebalance: &regroupv1.Rebalance{
		CauseKind: string(group.CauseMemberJoined), Start: timestamppb.New(t0),
		JoinCompleted: timestamppb.New(t0.Add(3 * time.Second)), End: timestamppb.New(t0.Add(4 * time.Second)),
		PartitionsMoved: 5, PartitionsRevoked: 2,
	}})
	m.GroupEvent("g", group.Event{Kind: group.EventAssignmentRefused})
	m.GroupEvent("g", group.Event{Kind: group.EventMemberRemoved})
	m.Request("Heartbeat", &regroupv1.HeartbeatRequest{HoldMs: 1000}, time.Second, "")
	m.Request("Heartbeat", &regroupv1.HeartbeatRequest{}, time.Millisecond, regroup.CodeRebalanceInProgress)
	m.StoreWrite(2*time.Millisecond, nil)
	m.StoreWrite(5*time.Second, errors.New("timeout"))

	const want = `
# HELP regroup_rebalance_triggers_total Events that started a rebalance or joined the one in progress, by cause kind.
# TYPE regroup_rebalance_triggers_total counter
regroup_rebalance_triggers_total{cause="assignment-refused"} 0
regroup_rebalance_triggers_total{cause="coordinator-failover"} 0
regroup_rebalance_triggers_total{cause="group-too-large"} 0
regroup_rebalance_triggers_total{cause="leader-rejoined"} 0
regroup_rebalance_triggers_total{cause="member-expired"} 1
regroup_rebalance_triggers_total{cause="member-joined"} 1
regroup_rebalance_triggers_total{cause="member-left"} 0
regroup_rebalance_triggers_total{cause="member-removed"} 0
regroup_rebalance_triggers_total{cause="static-replaced"} 0
regroup_rebalance_triggers_total{cause="subscription-changed"} 0
regroup_rebalance_triggers_total{cause="sync-timeout"} 0
regroup_rebalance_triggers_total{cause="topic-changed"} 0
# HELP regroup_partitions_moved_total Partitions whose owner changed from one member to another in a rebalance.
# TYPE regroup_partitions_moved_total counter
regroup_partitions_moved_total 5
# HELP regroup_partitions_revoked_total Partitions members gave up during rebalances.
# TYPE regroup_partitions_revoked_total counter
regroup_partitions_revoked_total 2
# HELP regroup_assignment_refusals_total Leader assignments the coordinator refused (INVALID_ASSIGNMENT).
# TYPE regroup_assignment_refusals_total counter
regroup_assignment_refusals_total 1
# HELP regroup_member_removals_total Members that left a group: left, expired, removed by an operator, or dropped at a barrier.
# TYPE regroup_member_removals_total counter
regroup_member_removals_total 1
# HELP regroup_requests_total Coordinator RPCs answered, by method and code (OK, an error reason, or CANCELED).
# TYPE regroup_requests_total counter
regroup_requests_total{code="OK",method="Heartbeat"} 1
regroup_requests_total{code="REBALANCE_IN_PROGRESS",method="Heartbeat"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"regroup_rebalance_triggers_total", "regroup_partitions_moved_total", "regroup_partitions_revoked_total",
		"regroup_assignment_refusals_total", "regroup_member_removals_total", "regroup_requests_total"); err != nil {
		t.Error(err)
	}
	for name, wantSum := range map[string]float64{
		"regroup_rebalance_duration_seconds": 4,
		"regroup_join_barrier_wait_seconds":  3,
		"regroup_sync_barrier_wait_seconds":  1,
	} {
		if count, sum := histogram(t, reg, name, nil); count != 1 || sum != wantSum {
			t.Errorf("%s: count %d, sum %v; want 1 observation of %v", name, count, sum, wantSum)
		}
	}
	// The held heartbeat is counted, not timed.
	if count, _ := histogram(t, reg, "regroup_request_duration_seconds", map[string]string{"method": "Heartbeat"}); count != 1 {
		t.Errorf("heartbeat durations observed: %d, want 1 (the unheld one)", count)
	}
	if count, _ := histogram(t, reg, "regroup_store_write_duration_seconds", map[string]string{"result": "error"}); count != 1 {
		t.Errorf("failed store writes observed: %d, want 1", count)
	}
}

// histogram returns the sample count and sum of the histogram named name
// whose labels include labels.
func histogram(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (uint64, float64) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
		}
	}
	return 0, 0
}

type fakeServer struct {
	stats   []coordinator.GroupStat
	leading bool
}

func (f *fakeServer) GroupStats() []coordinator.GroupStat { return f.stats }
func (f *fakeServer) Leading() bool                       { return f.leading }

func TestGaugesReadAtScrapeTime(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	srv := &fakeServer{leading: true, stats: []coordinator.GroupStat{
		{ID: "a", State: group.Stable, Members: 3, Unowned: 1, UnknownTopics: 1, PartitionsLost: 5, RebalanceTimeout: time.Minute, SessionLeft: 0.75},
		{ID: "b", State: group.PreparingRebalance, Members: 2, Rebalancing: 1500 * time.Millisecond, RebalanceTimeout: 5 * time.Second, SessionLeft: 0.25},
	}}
	if err := prommetrics.RegisterServer(reg, srv, 1000); err != nil {
		t.Fatal(err)
	}
	const want = `
# HELP regroup_groups Groups by state.
# TYPE regroup_groups gauge
regroup_groups{state="CompletingRebalance"} 0
regroup_groups{state="Empty"} 0
regroup_groups{state="PreparingRebalance"} 1
regroup_groups{state="Stable"} 1
# HELP regroup_group_members Members of the group.
# TYPE regroup_group_members gauge
regroup_group_members{group="a"} 3
regroup_group_members{group="b"} 2
# HELP regroup_group_partitions_lost_total Partitions the group's members declared lost (OnLost: their lease ended before the coordinator answered them, or it no longer knew them), as they reported when they rejoined; counted since this coordinator took the group over.
# TYPE regroup_group_partitions_lost_total counter
regroup_group_partitions_lost_total{group="a"} 5
regroup_group_partitions_lost_total{group="b"} 0
# HELP regroup_group_partitions_unowned Partitions of subscribed topics that nobody works on: left without an owner by the group's current assignment, or assigned to a member whose answer waits for the lease of a member removed without releasing them.
# TYPE regroup_group_partitions_unowned gauge
regroup_group_partitions_unowned{group="a"} 1
regroup_group_partitions_unowned{group="b"} 0
# HELP regroup_group_unknown_topics Topics the group's members subscribe to that are not in the topic registry: nobody owns their partitions until they are created.
# TYPE regroup_group_unknown_topics gauge
regroup_group_unknown_topics{group="a"} 1
regroup_group_unknown_topics{group="b"} 0
# HELP regroup_group_rebalance_running_seconds How long the group's rebalance in progress has been running; 0 when it is not rebalancing.
# TYPE regroup_group_rebalance_running_seconds gauge
regroup_group_rebalance_running_seconds{group="a"} 0
regroup_group_rebalance_running_seconds{group="b"} 1.5
# HELP regroup_group_rebalance_timeout_seconds The largest rebalance timeout of the group's members: a rebalance's join and sync phases each end within it.
# TYPE regroup_group_rebalance_timeout_seconds gauge
regroup_group_rebalance_timeout_seconds{group="a"} 60
regroup_group_rebalance_timeout_seconds{group="b"} 5
# HELP regroup_group_session_left_ratio The smallest fraction of its session timeout that a member of the group has left before it expires (1 just after a heartbeat, 0 at expiry); members waiting at the join barrier are left out.
# TYPE regroup_group_session_left_ratio gauge
regroup_group_session_left_ratio{group="a"} 0.75
regroup_group_session_left_ratio{group="b"} 0.25
# HELP regroup_leader 1 while this coordinator serves groups (it is the leader, or leads at least one shard), else 0.
# TYPE regroup_leader gauge
regroup_leader 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	srv.leading, srv.stats = false, nil
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP regroup_leader 1 while this coordinator serves groups (it is the leader, or leads at least one shard), else 0.
# TYPE regroup_leader gauge
regroup_leader 0
`), "regroup_leader", "regroup_group_members"); err != nil {
		t.Error(err)
	}
}

// shardedServer is a fakeServer of a cluster of several shards.
type shardedServer struct {
	fakeServer
	led []bool
}

func (s *shardedServer) ShardsLed() []bool { return s.led }

// A coordinator of a cluster of several shards reports which it leads.
func TestShardLeaderGauges(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	srv := &shardedServer{fakeServer: fakeServer{leading: true}, led: []bool{true, false, true}}
	if err := prommetrics.RegisterServer(reg, srv, 1000); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP regroup_shard_leader In a cluster of several shards: 1 for each shard this coordinator leads, else 0.
# TYPE regroup_shard_leader gauge
regroup_shard_leader{shard="0"} 1
regroup_shard_leader{shard="1"} 0
regroup_shard_leader{shard="2"} 1
`), "regroup_shard_leader"); err != nil {
		t.Error(err)
	}
}

// TestGroupSeriesAreBounded checks that at most maxGroups groups get series
// of their own, that the others are aggregated under OtherGroups, and that
// a deleted group's series go away and free its place.
func TestGroupSeriesAreBounded(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	srv := &fakeServer{leading: true}
	for i := range 50 {
		srv.stats = append(srv.stats, coordinator.GroupStat{ID: fmt.Sprintf("g%02d", i), State: group.Stable, Members: 1, SessionLeft: 1})
	}
	if err := prommetrics.RegisterServer(reg, srv, 3); err != nil {
		t.Fatal(err)
	}
	const want = `
# HELP regroup_group_members Members of the group.
# TYPE regroup_group_members gauge
regroup_group_members{group="_other"} 47
regroup_group_members{group="g00"} 1
regroup_group_members{group="g01"} 1
regroup_group_members{group="g02"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "regroup_group_members"); err != nil {
		t.Error(err)
	}
	srv.stats = srv.stats[1:] // g00 is deleted: g03 takes its place
	const after = `
# HELP regroup_group_members Members of the group.
# TYPE regroup_group_members gauge
regroup_group_members{group="_other"} 46
regroup_group_members{group="g01"} 1
regroup_group_members{group="g02"} 1
regroup_group_members{group="g03"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(after), "regroup_group_members"); err != nil {
		t.Error(err)
	}
}

func TestNewRefusesADuplicateRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := prommetrics.New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := prommetrics.New(reg); err == nil {
		t.Error("registering the coordinator's metrics twice on one registry succeeded")
	}
}
