package coordinator

import (
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/coordinator/group"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func TestStatOfARebalancingGroup(t *testing.T) {
	cfg := group.DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	t0 := time.Unix(1000, 0)
	g := group.New("g", cfg, fixedIDs{}, map[string]int32{}, t0)
	out := g.Join(t0, 1, group.Caller{Host: "host"}, &regroupv1.JoinGroupRequest{
		GroupId: "g", GroupInstanceId: "i", SessionTimeoutMs: 10_000, RebalanceTimeoutMs: 30_000,
		Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{}}},
	})
	if len(out.Replies) != 1 || out.Replies[0].Err != nil || g.State() != group.CompletingRebalance {
		t.Fatalf("join: %+v, group %v; want the join answered and the group CompletingRebalance", out.Replies, g.State())
	}

	st := statOf(g, t0.Add(2*time.Second))
	if st.Rebalancing != 2*time.Second || st.RebalanceTimeout != 30*time.Second || st.SessionLeft != 0.8 || st.Members != 1 {
		t.Errorf("2s into the rebalance: %+v; want 2s rebalancing, a 30s timeout, 80%% of the session left, 1 member", st)
	}

	g.Sync(t0.Add(3*time.Second), 2, group.Caller{Host: "host"}, &regroupv1.SyncGroupRequest{GroupId: "g", Generation: g.Generation(), MemberId: g.Leader(), GroupInstanceId: "i"})
	if st := statOf(g, t0.Add(13*time.Second)); g.State() != group.Stable || st.Rebalancing != 0 || st.SessionLeft != 0 {
		t.Errorf("stable, past the session deadline: %+v in %v; want no rebalance running and no session left", st, g.State())
	}
}

// Partitions whose new owner waits for the lease of a member removed
// without releasing them are counted as unowned: nobody works on them.
func TestStatCountsPartitionsWaitingForALease(t *testing.T) {
	cfg := group.DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	t0 := time.Unix(1000, 0)
	g := group.New("g", cfg, fixedIDs{}, map[string]int32{"orders": 4}, t0)
	admin, member := group.Caller{Admin: true}, group.Caller{Host: "host"}
	join := func(at time.Time, req group.ReqID, instance string) {
		out := g.Join(at, req, member, &regroupv1.JoinGroupRequest{
			GroupId: "g", GroupInstanceId: instance, SessionTimeoutMs: 10_000, RebalanceTimeoutMs: 30_000,
			Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}}}},
		})
		if len(out.Replies) != 1 || out.Replies[0].Err != nil {
			t.Fatalf("join of %s: %+v", instance, out.Replies)
		}
	}
	all := &regroupv1.Assignment{Partitions: []*regroupv1.TopicPartitions{{Topic: "orders", Partitions: []int32{0, 1, 2, 3}}}}
	sync := func(at time.Time, req group.ReqID) group.Output {
		return g.Sync(at, req, member, &regroupv1.SyncGroupRequest{GroupId: "g", Generation: g.Generation(), MemberId: g.Leader(), GroupInstanceId: strings.TrimSuffix(g.Leader(), "-1"),
			Assignments: []*regroupv1.MemberAssignment{{MemberId: g.Leader(), Assignment: all}}})
	}
	join(t0, 1, "a")
	sync(t0, 2)
	// An operator removes a, which owns everything and may still run.
	g.Leave(t0.Add(time.Second), 3, admin, &regroupv1.LeaveGroupRequest{GroupId: "g", Members: []*regroupv1.LeaveMember{{GroupInstanceId: "a"}}})
	join(t0.Add(2*time.Second), 4, "b")
	if out := sync(t0.Add(2*time.Second), 5); len(out.Replies) != 0 {
		t.Fatalf("b's SyncGroup was answered at once (%+v); it must wait for a's lease", out.Replies)
	}
	if st := statOf(g, t0.Add(3*time.Second)); st.Unowned != 4 || st.Rebalancing != time.Second {
		t.Errorf("while b waits for a's lease: %d unowned, rebalance running for %v; want 4, and 1s (since b joined)", st.Unowned, st.Rebalancing)
	}
	g.Tick(t0.Add(time.Minute))
	if st := statOf(g, t0.Add(time.Minute)); st.Unowned != 0 || st.Rebalancing != 0 {
		t.Errorf("after a's lease: %d unowned, rebalance running for %v; want 0 and none running", st.Unowned, st.Rebalancing)
	}
}

// Partitions members report lost in their JoinGroup reach the group's
// counter, and a join that repeats a parked one's report counts once.
func TestStatCountsPartitionsMembersLost(t *testing.T) {
	cfg := group.DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	t0 := time.Unix(1000, 0)
	g := group.New("g", cfg, fixedIDs{}, map[string]int32{"orders": 4}, t0)
	member := group.Caller{Host: "host"}
	join := func(req group.ReqID, instance, id string, lost int32) group.Output {
		return g.Join(t0, req, member, &regroupv1.JoinGroupRequest{
			GroupId: "g", MemberId: id, GroupInstanceId: instance, SessionTimeoutMs: 10_000, RebalanceTimeoutMs: 30_000, PartitionsLost: lost,
			Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}}}},
		})
	}
	join(1, "a", "", 0)
	join(2, "b", "", 0) // a rebalance: b's join is parked until a rejoins
	b := g.Describe().GetMembers()[1].GetMemberId()
	join(3, "b", b, 3) // b lost 3 partitions meanwhile (say)
	join(4, "b", b, 3) // and sends the same join again
	if st := statOf(g, t0); st.PartitionsLost != 3 {
		t.Errorf("after b reported 3 lost partitions twice in the same rebalance: %d lost; want 3", st.PartitionsLost)
	}
	rs := g.Describe().GetRebalances()
	if got := rs[len(rs)-1].GetPartitionsLost(); got != 3 {
		t.Errorf("the rebalance in progress counts %d lost partitions; want 3", got)
	}
}
