package coordinator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestReconcileOverGRPC drives the next-generation protocol with raw
// calls over loopback: two members share a topic, the second is answered
// with its partitions once the first reported releasing them, a graceful
// leave hands them back in the answer to the other's held call, and a
// classic JoinGroup for the group is refused with GROUP_PROTOCOL_MISMATCH.
func TestReconcileOverGRPC(t *testing.T) {
	ts := startServer(t, testConfig(), memstore.New())
	client := regroupv1.NewCoordinatorClient(dial(t, ts.addr))
	admin := regroupv1.NewAdminClient(dial(t, ts.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 4}}); err != nil {
		t.Fatal(err)
	}
	call := func(r *regroupv1.ReconcileRequest) (*regroupv1.ReconcileResponse, error) {
		r.GroupId, r.SubscribedTopics = "next", []string{"orders"}
		if r.GetMemberEpoch() >= 0 {
			r.SessionTimeoutMs, r.RebalanceTimeoutMs = 10_000, 10_000
		}
		resp, err := client.Reconcile(ctx, r)
		return resp, rpcerr.FromStatus(err)
	}
	count := func(a *regroupv1.ReconcileAssignment) int {
		n := 0
		for _, tp := range a.GetPartitions() {
			n += len(tp.GetPartitions())
		}
		return n
	}

	a, err := call(&regroupv1.ReconcileRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if count(a.GetAssignment()) != 4 || a.GetMemberSecret() == "" || a.GetMemberEpoch() != 1 {
		t.Fatalf("first member's join answer = %v, want all 4 partitions at epoch 1 with a secret", a)
	}
	// The first member holds its next call; the second joins meanwhile.
	held := make(chan *regroupv1.ReconcileResponse, 1)
	heldErr := make(chan error, 1)
	go func() {
		r, err := call(&regroupv1.ReconcileRequest{MemberId: a.GetMemberId(), MemberSecret: a.GetMemberSecret(), MemberEpoch: 1,
			Owned: a.GetAssignment().GetPartitions(), AssignmentRevision: a.GetAssignment().GetRevision(), HoldMs: 5000})
		held <- r
		heldErr <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the held call arrive first; the outcome does not depend on it
	b, err := call(&regroupv1.ReconcileRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if count(b.GetAssignment()) != 0 {
		t.Fatalf("second member got %v before the first released anything", b.GetAssignment())
	}
	var revoke *regroupv1.ReconcileResponse
	select {
	case revoke = <-held:
		if err := <-heldErr; err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the first member's held call was not answered when the second joined")
	}
	if count(revoke.GetAssignment()) != 2 {
		t.Fatalf("first member was told to keep %v, want 2 partitions", revoke.GetAssignment())
	}
	// The second holds a call; the first reports it released two.
	go func() {
		r, err := call(&regroupv1.ReconcileRequest{MemberId: b.GetMemberId(), MemberSecret: b.GetMemberSecret(), MemberEpoch: b.GetMemberEpoch(), HoldMs: 5000})
		held <- r
		heldErr <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := call(&regroupv1.ReconcileRequest{MemberId: a.GetMemberId(), MemberSecret: a.GetMemberSecret(), MemberEpoch: 1,
		Owned: revoke.GetAssignment().GetPartitions(), AssignmentRevision: revoke.GetAssignment().GetRevision()}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-held:
		if err := <-heldErr; err != nil {
			t.Fatal(err)
		}
		if count(got.GetAssignment()) != 2 || got.GetAssignment().GetFencingToken() <= a.GetAssignment().GetFencingToken() {
			t.Fatalf("second member's held call answered %v, want 2 partitions with a larger token than %d", got, a.GetAssignment().GetFencingToken())
		}
	case <-ctx.Done():
		t.Fatal("the second member's held call was not answered when the first released its partitions")
	}

	_, err = client.JoinGroup(ctx, &regroupv1.JoinGroupRequest{GroupId: "next", SessionTimeoutMs: 10_000, RebalanceTimeoutMs: 10_000,
		Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}}}}})
	if err := rpcerr.FromStatus(err); !errors.Is(err, regroup.ErrGroupProtocolMismatch) {
		t.Fatalf("classic JoinGroup on a next-generation group: %v, want GROUP_PROTOCOL_MISMATCH", err)
	}
	d, err := admin.DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: "next"})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetGroupProtocol() != "next" || d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != 2 {
		t.Fatalf("describe = %v, want a Stable next-generation group of 2", d)
	}
}
