package coordinator_test

import (
	"context"
	"errors"
	"testing"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// A coordinator whose write is fenced (another one took over the store)
// stops serving every group at once, not just the one it wrote.
func TestFencedWriteStepsDown(t *testing.T) {
	d := &memstore.Data{}
	ts := startServer(t, testConfig(), d.Open())
	conn := dial(t, ts.addr)
	admin := regroupv1.NewAdminClient(conn)
	client := regroupv1.NewCoordinatorClient(conn)
	ctx := context.Background()
	if _, err := admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 4}}); err != nil {
		t.Fatal(err)
	}
	join := &regroupv1.JoinGroupRequest{
		GroupId: "g", MemberId: "", GroupInstanceId: "i1", SessionTimeoutMs: 10000, RebalanceTimeoutMs: 10000,
		Protocols: []*regroupv1.Protocol{{Name: "roundrobin", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}}}},
	}
	if _, err := client.JoinGroup(ctx, join); err != nil {
		t.Fatal(err)
	}
	if !ts.srv.Leading() {
		t.Fatal("the coordinator does not lead before it is fenced")
	}
	d.Open() // another coordinator's term begins

	_, err := admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 8}})
	if !errors.Is(rpcerr.FromStatus(err), regroup.ErrNotCoordinator) {
		t.Fatalf("a fenced topic write: got %v, want NOT_COORDINATOR", err)
	}
	waitfor.Until(t, "the coordinator steps down", func() error {
		if ts.srv.Leading() {
			return errors.New("still leading")
		}
		return nil
	})
	_, err = client.JoinGroup(ctx, join)
	if !errors.Is(rpcerr.FromStatus(err), regroup.ErrNotCoordinator) {
		t.Fatalf("a join after stepping down: got %v, want NOT_COORDINATOR", err)
	}
	d2, err := admin.DescribeCluster(ctx, &regroupv1.DescribeClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if d2.GetRole() != regroupv1.CoordinatorRole_COORDINATOR_ROLE_FOLLOWER {
		t.Fatalf("DescribeCluster after stepping down: %v", d2)
	}
}
