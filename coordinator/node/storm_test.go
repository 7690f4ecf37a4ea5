package node_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/node"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/internal/scenario"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// storm drives one node through a join storm: n members join one new group
// (each with MEMBER_ID_REQUIRED first), the initial delay ends, the leader
// syncs a plan that gives every member ten partitions, and every follower
// syncs. The store acknowledges every write at once; storm counts them and
// the bytes they hold, as a store would encode them.
type storm struct {
	n       *node.Node
	now     time.Time
	req     group.ReqID
	writes  int
	bytes   int
	replies map[group.ReqID]group.Reply
}

const stormPartitionsPerMember = 10

func newStorm(members int) *storm {
	snap := &store.Snapshot{Broken: map[string]error{}, GroupKeys: "groups/", TopicKeys: "topics/"}
	snap.Topics = []*regroupv1.Topic{{Name: "orders", Partitions: int32(members * stormPartitionsPerMember)}}
	cfg := group.DefaultConfig()
	cfg.MaxPendingMembers = 1 << 20
	s := &storm{now: epoch, replies: map[group.ReqID]group.Reply{}}
	var out node.Output
	s.n, out = node.New(node.Config{Group: cfg, IDs: &scenario.SeqIDs{}}, snap, s.now, time.Time{})
	s.apply(out)
	return s
}

// step runs one event and everything it leads to: writes are acknowledged
// at once.
func (s *storm) step(ev node.Event) {
	s.apply(s.n.Step(node.Input{Now: s.now, Event: ev}))
}

func (s *storm) apply(out node.Output) {
	for _, r := range out.Replies {
		s.replies[r.Req] = r
	}
	for _, w := range out.Writes {
		s.writes++
		s.bytes += proto.Size(w.Group)
		s.step(node.WriteDone{ID: w.ID, Outcome: node.OK})
	}
}

// call steps a request and returns its reply, if it came in this step.
func (s *storm) call(msg proto.Message) (group.Reply, bool) {
	s.req++
	req := s.req
	s.step(node.Request{Req: req, Host: "127.0.0.1", Msg: msg})
	r, ok := s.replies[req]
	delete(s.replies, req)
	return r, ok
}

func stormJoin(id string) *regroupv1.JoinGroupRequest {
	return &regroupv1.JoinGroupRequest{
		GroupId: "g", MemberId: id, ClientId: "c", SessionTimeoutMs: 20_000, RebalanceTimeoutMs: 60_000,
		Protocols: []*regroupv1.Protocol{{Name: "cooperative-sticky", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}}}},
	}
}

// run forms the group of members members and fails b if it does not.
func (s *storm) run(b testing.TB, members int) {
	parked := make([]group.ReqID, 0, members)
	for range members {
		s.now = s.now.Add(100 * time.Microsecond)
		r, _ := s.call(stormJoin(""))
		e, ok := r.Err.(*regroup.Error)
		if !ok || e.Code != regroup.CodeMemberIDRequired {
			b.Fatalf("a first join answered %v, want MEMBER_ID_REQUIRED", r.Err)
		}
		s.req++
		parked = append(parked, s.req)
		s.step(node.Request{Req: s.req, Host: "127.0.0.1", Msg: stormJoin(e.Metadata[regroup.MetaMemberID])})
	}
	for {
		g, err := s.n.Group("g")
		if err != nil {
			b.Fatal(err)
		}
		if g.State() == group.CompletingRebalance {
			break
		}
		next := s.n.NextDeadline()
		if next.IsZero() {
			b.Fatalf("the group is %v with no deadline", g.State())
		}
		s.now = next
		s.step(node.Tick{})
	}
	var leader *regroupv1.JoinGroupResponse
	var gen int32
	for _, req := range parked {
		r, ok := s.replies[req]
		if !ok || r.Err != nil {
			b.Fatalf("join %d: answered %v with %v", req, ok, r.Err)
		}
		delete(s.replies, req)
		resp := r.Msg.(*regroupv1.JoinGroupResponse)
		gen = resp.GetGeneration()
		if len(resp.GetMembers()) > 0 {
			leader = resp
		}
	}
	if tb, ok := b.(*testing.B); ok {
		tb.StopTimer()
	}
	plan := make([]*regroupv1.MemberAssignment, 0, members)
	for i, m := range leader.GetMembers() {
		ps := make([]int32, stormPartitionsPerMember)
		for k := range ps {
			ps[k] = int32(i*stormPartitionsPerMember + k)
		}
		plan = append(plan, &regroupv1.MemberAssignment{MemberId: m.GetMemberId(), Assignment: &regroupv1.Assignment{
			Partitions: []*regroupv1.TopicPartitions{{Topic: "orders", Partitions: ps}},
		}})
	}
	if tb, ok := b.(*testing.B); ok {
		tb.StartTimer()
	}
	s.now = s.now.Add(time.Millisecond)
	if r, ok := s.call(&regroupv1.SyncGroupRequest{GroupId: "g", MemberId: leader.GetLeaderId(), Generation: gen, Assignments: plan}); !ok || r.Err != nil {
		b.Fatalf("the leader's sync: answered %v with %v", ok, r.Err)
	}
	for _, m := range leader.GetMembers() {
		if m.GetMemberId() == leader.GetLeaderId() {
			continue
		}
		if r, ok := s.call(&regroupv1.SyncGroupRequest{GroupId: "g", MemberId: m.GetMemberId(), Generation: gen}); !ok || r.Err != nil {
			b.Fatalf("sync of %s: answered %v with %v", m.GetMemberId(), ok, r.Err)
		}
	}
}

// TestJoinStormWritesOncePerRebalance checks that forming a group writes
// its record three times, whatever its size: when the first join starts
// the rebalance, at the join barrier (every member's join), and for the
// leader's plan. The joins parked at the barrier are answered only when it
// completes, so they need no write of their own.
func TestJoinStormWritesOncePerRebalance(t *testing.T) {
	for _, members := range []int{1, 10, 2_000} {
		s := newStorm(members)
		s.run(t, members)
		if s.writes != 3 {
			t.Errorf("a group of %d members formed with %d writes, want 3 (the rebalance's start, its barrier and the plan)", members, s.writes)
		}
		if err := node.CheckAdmitted(s.n); err != nil {
			t.Errorf("after a group of %d members formed: %v", members, err)
		}
	}
}

// TestCheckAdmittedFails shows that the check of the node's member count
// (run after every step of the scenarios) catches a miscount.
func TestCheckAdmittedFails(t *testing.T) {
	s := newStorm(10)
	s.run(t, 10)
	node.MiscountAdmitted(s.n, 1)
	if err := node.CheckAdmitted(s.n); err == nil {
		t.Fatal("CheckAdmitted passed a node that counts one member too many")
	}
}
