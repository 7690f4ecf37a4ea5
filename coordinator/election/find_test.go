package election_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/internal/cutproxy"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestFindCoordinatorAndBlindFollower has two coordinators, the follower
// reaching etcd through a proxy. FindCoordinator, asked of either, names
// the leader and both. When the follower's network to etcd goes silent it
// names no leader once a TTL has passed (the leader it last saw may have
// lost its lease unseen), in FindCoordinator and in its redirects, and
// names it again once etcd answers.
func TestFindCoordinatorAndBlindFollower(t *testing.T) {
	eps := embedetcd.Endpoints(startEtcd(t, 1))
	a := startCoord(t, "a", eps, testTTL)
	waitLeader(t, a)
	proxy := cutproxy.Start(t, func() string { return strings.TrimPrefix(eps[0], "http://") })
	b := startCoord(t, "b", []string{"http://" + proxy.Addr()}, testTTL)

	find := func(c *coord) (*regroupv1.FindCoordinatorResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return regroupv1.NewCoordinatorClient(dial(t, c.addr)).FindCoordinator(ctx, &regroupv1.FindCoordinatorRequest{GroupId: "g"})
	}
	names := func(c *coord, leader string, all ...string) func() error {
		return func() error {
			r, err := find(c)
			if err != nil {
				return err
			}
			got := slices.Sorted(slices.Values(r.GetCoordinators()))
			if r.GetLeaderAddress() != leader || !slices.Equal(got, all) {
				return fmt.Errorf("%s names leader %q and coordinators %v", c.name, r.GetLeaderAddress(), r.GetCoordinators())
			}
			if leader != "" && r.GetCoordinators()[0] != leader {
				return fmt.Errorf("%s lists %v, not the leader first", c.name, r.GetCoordinators())
			}
			return nil
		}
	}
	both := slices.Sorted(slices.Values([]string{a.addr, b.addr}))
	waitfor.Until(t, "a names itself and b", names(a, a.addr, both...))
	waitfor.Until(t, "b names a and both", names(b, a.addr, both...))
	if _, err := find(a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := regroupv1.NewCoordinatorClient(dial(t, a.addr)).FindCoordinator(ctx, &regroupv1.FindCoordinatorRequest{})
	if code := regroup.CodeOf(rpcerr.FromStatus(err)); code != regroup.CodeInvalidRequest {
		t.Errorf("FindCoordinator without a group: got %v, want INVALID_REQUEST", err)
	}

	proxy.Blackhole()
	silent := time.Now()
	waitfor.Until(t, "b, cut off from etcd, names no leader", names(b, ""))
	// It read the election at most TTL/5 before the silence began.
	if d := time.Since(silent); d < testTTL*4/5 {
		t.Errorf("b stopped naming the leader %v after etcd went silent, well before a TTL (%v): it would name none on a short blip", d, testTTL)
	}
	_, err = regroupv1.NewCoordinatorClient(dial(t, b.addr)).Heartbeat(context.Background(), &regroupv1.HeartbeatRequest{GroupId: "g", MemberId: "x"})
	var e *regroup.Error
	if !errors.As(rpcerr.FromStatus(err), &e) || e.Code != regroup.CodeNotCoordinator || e.Metadata[regroup.MetaLeader] != "" {
		t.Errorf("a call to the cut-off follower: got %v, want NOT_COORDINATOR naming no leader", err)
	}
	proxy.Restore()
	waitfor.Until(t, "b names a again", names(b, a.addr, both...))
}
