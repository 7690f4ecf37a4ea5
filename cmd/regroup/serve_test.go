package main

import (
	"context"
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServeEmbeddedEtcdKeepsState runs `regroup serve` on its embedded
// etcd, stops it with the equivalent of SIGTERM and starts it again on the
// same data directory: the topic registry is still there.
func TestServeEmbeddedEtcdKeepsState(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{"serve", "--listen", addr, "--data-dir", t.TempDir(), "--lease-ttl", "2s", "--log-level", "warn", "--metrics-addr", "",
		"--etcd-client-port", fmt.Sprint(freePort(t)), "--etcd-peer-port", fmt.Sprint(freePort(t))}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := regroupv1.NewAdminClient(conn)

	for run := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			root := newRoot()
			root.SetArgs(args)
			done <- root.ExecuteContext(ctx)
		}()
		waitfor.Until(t, fmt.Sprintf("run %d: the coordinator leads every shard", run), func() error {
			select {
			case err := <-done:
				t.Fatalf("run %d: regroup serve exited early: %v", run, err)
			default:
			}
			return leadsAll(ctx, admin)
		})
		if run == 0 {
			if _, err := admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 8}}); err != nil {
				t.Fatal(err)
			}
		} else {
			resp, err := admin.ListTopics(ctx, &regroupv1.ListTopicsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetTopics()) != 1 || resp.GetTopics()[0].GetPartitions() != 8 {
				t.Fatalf("after a restart the topics are %v, want orders with 8 partitions", resp.GetTopics())
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
}

// leadsAll returns nil once the coordinator admin reaches leads every
// shard (a lone coordinator of a cluster of 64 leads them one by one), or
// leads at all in a cluster of one shard.
func leadsAll(ctx context.Context, admin regroupv1.AdminClient) error {
	d, err := admin.DescribeCluster(ctx, &regroupv1.DescribeClusterRequest{})
	if err != nil {
		return err
	}
	if d.GetRole() != regroupv1.CoordinatorRole_COORDINATOR_ROLE_LEADER {
		return fmt.Errorf("role %v", d.GetRole())
	}
	for _, sh := range d.GetShards() {
		if sh.GetLeaderAddress() != d.GetAddress() {
			return fmt.Errorf("shard %d is led by %q", sh.GetShard(), sh.GetLeaderAddress())
		}
	}
	return nil
}
