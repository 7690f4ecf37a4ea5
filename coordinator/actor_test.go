package coordinator

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestPanicStaysInItsGroup checks that a bug that panics in one group's
// state machine answers that group's waiting requests, drops only that
// group, and leaves the coordinator and the other groups serving.
func TestPanicStaysInItsGroup(t *testing.T) {
	cfg := group.DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	s, err := New(context.Background(), Config{Group: cfg, Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard})}, memstore.New())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	join := func(groupID string) error {
		_, err := s.JoinGroup(context.Background(), &regroupv1.JoinGroupRequest{
			GroupId: groupID, GroupInstanceId: "i", SessionTimeoutMs: 10000, RebalanceTimeoutMs: 10000,
			Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"t"}}}},
		})
		return err
	}
	for _, g := range []string{"buggy", "fine"} {
		if err := join(g); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.lookup("buggy", false)
	if err != nil || a == nil {
		t.Fatalf("lookup: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := a.call(ctx, func(*group.Group, time.Time, group.ReqID) group.Output { panic("a bug") })
	if err != nil {
		t.Fatalf("the waiting request was not answered: %v", err)
	}
	if !errors.Is(r.Err, regroup.ErrCoordinatorNotAvailable) {
		t.Fatalf("answer after a panic: %v, want COORDINATOR_NOT_AVAILABLE", r.Err)
	}
	if b, _ := s.lookup("buggy", false); b == a {
		t.Fatal("the panicking group was not dropped")
	}
	if err := join("fine"); err != nil {
		t.Fatalf("another group stopped serving: %v", err)
	}
}

// TestAdminAfterClose checks that Admin calls after Close answer at once
// instead of retrying on aborted groups.
func TestAdminAfterClose(t *testing.T) {
	cfg := group.DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	s, err := New(context.Background(), Config{Group: cfg, Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard})}, memstore.New())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.JoinGroup(context.Background(), &regroupv1.JoinGroupRequest{
		GroupId: "g", GroupInstanceId: "i", SessionTimeoutMs: 10000, RebalanceTimeoutMs: 10000,
		Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"t"}}}},
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	done := make(chan error, 1)
	go func() {
		_, err := s.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("DescribeGroup after Close succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DescribeGroup after Close did not return")
	}
}
