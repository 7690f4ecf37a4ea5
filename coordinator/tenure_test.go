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
