package election_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestTopicChangedByAnotherCoordinator writes a topic into etcd behind the
// leader's back, as the leader of another shard does (the registry is
// shared): the leader follows the change, and its group rebalances onto
// the new partitions.
func TestTopicChangedByAnotherCoordinator(t *testing.T) {
	eps := embedetcd.Endpoints(startEtcd(t, 1))
	a := startCoord(t, "a", eps, testTTL)
	waitLeader(t, a)
	admin := adminOf(t, a)
	waitfor.Until(t, "the topic is created with half its partitions", func() error {
		_, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: partitions / 2}})
		return err
	})
	f := newFleet(t, a.addr)
	for i := range 3 {
		f.add(fmt.Sprint("m", i), 0)
	}
	waitfor.Until(t, "3 members own the topic's first half", func() error {
		d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
		if err != nil {
			return err
		}
		if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != 3 {
			return fmt.Errorf("group is %v with %d members, want Stable with 3", d.GetState(), len(d.GetMembers()))
		}
		return nil
	})
	if err := f.stable(admin); err == nil {
		t.Fatal("the group owns every partition of a topic that has only half of them: the check below cannot fail")
	}

	b, err := proto.Marshal(&regroupv1.Topic{Name: "orders", Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.cli.Put(context.Background(), etcdstore.TopicsPrefix(etcdstore.DefaultPrefix)+"orders", string(b)); err != nil {
		t.Fatal(err)
	}
	waitfor.Until(t, "the group owns every partition of the topic another coordinator grew", func() error { return f.stable(admin) })
	if err := f.own.check(); err != nil {
		t.Error(err)
	}
}
