package coordinator

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

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

// A call whose caller gave up before the coordinator got to it (it waited
// for the lock of an overloaded coordinator) changes nothing: a JoinGroup
// canceled first creates no group.
func TestCallerGoneChangesNothing(t *testing.T) {
	cfg := group.DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	s, err := New(context.Background(), Config{Group: cfg, Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard})}, memstore.New())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	join := &regroupv1.JoinGroupRequest{
		GroupId: "g", GroupInstanceId: "i", SessionTimeoutMs: 10000, RebalanceTimeoutMs: 10000,
		Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"t"}}}},
	}
	if _, err := s.JoinGroup(ctx, join); err == nil {
		t.Fatal("a JoinGroup whose caller had gone was answered")
	}
	if _, err := s.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"}); err == nil {
		t.Fatal("a JoinGroup whose caller had gone created the group")
	}
	if _, err := s.JoinGroup(context.Background(), join); err != nil {
		t.Fatalf("the same JoinGroup from a caller that waits: %v", err)
	}
}
