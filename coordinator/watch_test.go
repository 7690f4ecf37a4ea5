package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func TestWatchGroup(t *testing.T) {
	ts := startServer(t, testConfig(), memstore.New())
	conn := dial(t, ts.addr)
	admin := regroupv1.NewAdminClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 4}}); err != nil {
		t.Fatal(err)
	}

	unknown, err := admin.WatchGroup(ctx, &regroupv1.WatchGroupRequest{GroupId: "nope"})
	if err == nil {
		_, err = unknown.Recv()
	}
	if !errors.Is(rpcerr.FromStatus(err), regroup.ErrUnknownGroup) {
		t.Fatalf("watching an unknown group: %v, want UNKNOWN_GROUP", err)
	}

	start := func(name string) *rawMember {
		m := &rawMember{name: name, client: regroupv1.NewCoordinatorClient(conn), group: "g", topics: []string{"orders"}, session: time.Second}
		go func() { _ = m.run(ctx, true) }()
		return m
	}
	m1 := start("m1")
	waitfor.Until(t, "one member owns every partition", func() error { return checkOwnership(admin, "g", []*rawMember{m1}, "orders", 4) })

	stream, err := admin.WatchGroup(ctx, &regroupv1.WatchGroupRequest{GroupId: "g"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	snap := first.GetSnapshot()
	if snap.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || snap.GetMembers() != 1 || first.GetGeneration() != snap.GetGeneration() {
		t.Fatalf("first message %v, want a snapshot of a Stable group with one member", first)
	}

	m2 := start("m2")
	var seen []string
	var done *regroupv1.RebalanceDone
	for done == nil {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %v: %v", seen, err)
		}
		switch ev := msg.GetEvent().(type) {
		case *regroupv1.WatchGroupResponse_RebalanceStarted:
			seen = append(seen, "started:"+ev.RebalanceStarted.GetCauseKind())
		case *regroupv1.WatchGroupResponse_StateChanged:
			seen = append(seen, fmt.Sprintf("%v->%v", ev.StateChanged.GetFrom(), ev.StateChanged.GetTo()))
		case *regroupv1.WatchGroupResponse_RebalanceDone:
			seen = append(seen, "done")
			done = ev.RebalanceDone
			if msg.GetGeneration() != done.GetGeneration() {
				t.Errorf("rebalance done message at generation %d reports generation %d", msg.GetGeneration(), done.GetGeneration())
			}
		}
		if msg.GetTime() == nil {
			t.Errorf("event %v has no time", msg)
		}
	}
	want := []string{"GROUP_STATE_STABLE->GROUP_STATE_PREPARING_REBALANCE", "started:member-joined",
		"GROUP_STATE_PREPARING_REBALANCE->GROUP_STATE_COMPLETING_REBALANCE", "GROUP_STATE_COMPLETING_REBALANCE->GROUP_STATE_STABLE", "done"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", seen, want)
	}
	if done.GetGeneration() != snap.GetGeneration()+1 || done.GetMembers() != 2 || done.GetCauseKind() != "member-joined" ||
		done.GetDuration() == nil || done.GetJoinDuration() == nil || done.GetDuration().AsDuration() < done.GetJoinDuration().AsDuration() {
		t.Errorf("rebalance done %v, want generation %d with 2 members, caused by a join, with its durations", done, snap.GetGeneration()+1)
	}
	waitfor.Until(t, "two members own every partition", func() error { return checkOwnership(admin, "g", []*rawMember{m1, m2}, "orders", 4) })

	ts.srv.Close()
	for {
		_, err := stream.Recv()
		if err == nil {
			continue
		}
		if !errors.Is(rpcerr.FromStatus(err), regroup.ErrCoordinatorNotAvailable) {
			t.Errorf("watch ended with %v when the coordinator closed, want COORDINATOR_NOT_AVAILABLE", err)
		}
		break
	}
}
