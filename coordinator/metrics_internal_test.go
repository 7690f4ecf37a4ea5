package coordinator

import (
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
