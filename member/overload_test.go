package member_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/node"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	"github.com/regroup-dev/regroup/member"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestSlowTransitShedsNewcomersNotLeases: every member's calls and
// answers take 300 ms each way to and from the coordinator, as they do
// when a coordinator starved of CPU leaves them in its kernel's buffers.
// The coordinator's own queue stays empty, so only the members' transit
// reports can tell it: it refuses a newcomer's JoinGroup with
// COORDINATOR_OVERLOADED while the twenty members keep their leases and
// partitions; once the delay ends, the newcomer joins.
func TestSlowTransitShedsNewcomersNotLeases(t *testing.T) {
	const partitions, members = 40, 20
	c := startShedding(t, node.Overload{Transit: 400 * time.Millisecond, Interval: 2 * time.Second})
	admin := c.admin()
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: partitions}}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	slow := func(cfg *member.Config) {
		cfg.SessionTimeout, cfg.HeartbeatInterval = 6*time.Second, 500*time.Millisecond
	}
	var live []*running
	for i := range members {
		live = append(live, startMember(t, c, rec, fmt.Sprintf("m%d", i), "", lookupAll(t, "cooperative-sticky"), slow))
	}
	waitfor.Until(t, "twenty members converge", func() error { return converged(admin, rec, live, partitions) })

	for _, r := range live {
		r.proxy.Delay(300 * time.Millisecond)
	}
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := regroupv1.NewCoordinatorClient(conn)
	join := &regroupv1.JoinGroupRequest{
		GroupId: "g", ClientId: "newcomer", SessionTimeoutMs: 6000, RebalanceTimeoutMs: 5000,
		Protocols: []*regroupv1.Protocol{{Name: "cooperative-sticky", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}}}},
	}
	overloaded := func(err error) bool {
		var e *regroup.Error
		return errors.As(rpcerr.FromStatus(err), &e) && e.Code == regroup.CodeCoordinatorOverloaded
	}
	// An Admin read is shed too, and changes nothing: wait for that, then
	// try a newcomer's join.
	waitfor.Until(t, "the coordinator sheds reads while the members' transits are long", func() error {
		_, err := admin.ListGroups(context.Background(), &regroupv1.ListGroupsRequest{})
		if overloaded(err) {
			return nil
		}
		return fmt.Errorf("ListGroups answered %v", err)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.JoinGroup(ctx, join); !overloaded(err) {
		t.Fatalf("a newcomer's JoinGroup during the overload: %v; want COORDINATOR_OVERLOADED", err)
	}
	if lost := rec.lostExcept(""); lost != 0 {
		t.Fatalf("%d partitions were declared lost while the transit was long", lost)
	}
	if err := rec.check(); err != nil {
		t.Fatal(err)
	}

	for _, r := range live {
		r.proxy.Delay(0)
	}
	live = append(live, startMember(t, c, rec, "newcomer", "", lookupAll(t, "cooperative-sticky"), slow))
	waitfor.Until(t, "the newcomer joins once the transit is short again", func() error { return converged(admin, rec, live, partitions) })
	if lost := rec.lostExcept(""); lost != 0 {
		t.Fatalf("%d partitions were declared lost", lost)
	}
}
