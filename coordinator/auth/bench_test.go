package auth_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/auth"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/testcerts"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// BenchmarkHeartbeatSecurity measures heartbeats (not held) of 64 stable
// one-member groups over 8 connections, closed loop, in the same run:
// plaintext, TLS, and mTLS with a policy checked on every call. It reports
// calls/s and the 99th percentile latency. docs/benchmarks.md records the
// numbers.
//
//	go test ./coordinator/auth -run '^$' -bench HeartbeatSecurity -benchtime 3s -count 5
func BenchmarkHeartbeatSecurity(b *testing.B) {
	ca := testcerts.NewCA(b, "bench")
	srvPair := ca.Issue(b, "server", testcerts.Server("coordinator"))
	clientPair := ca.Issue(b, "bench", testcerts.Spec{CommonName: "bench"})
	policy := writeFile(b, b.TempDir(), "policy", "bench consume,describe,admin group:* topic:*\n")
	for _, mode := range []struct {
		name string
		cfg  auth.Config
		tls  *tls.Config
	}{
		{"plaintext", auth.Config{}, nil},
		{"tls", auth.Config{CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile}, clientTLS(b, ca, nil)},
		{"mtls+policy", auth.Config{CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile, ClientCAFile: ca.CertFile, PolicyFile: policy}, clientTLS(b, ca, &clientPair)},
	} {
		b.Run(mode.name, func(b *testing.B) {
			s := startSecured(b, newAuth(b, mode.cfg), auth.Listener{})
			conns := make([]clients, 8)
			for i := range conns {
				conns[i] = connect(b, s.addr, mode.tls, "")
			}
			hbs := formBenchGroups(b, conns[0], 64)
			var mu sync.Mutex
			var lat []time.Duration
			next := 0
			b.SetParallelism(4)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				c := conns[i%len(conns)]
				var mine []time.Duration
				for n := i; pb.Next(); n++ {
					t0 := time.Now()
					if _, err := c.coord.Heartbeat(context.Background(), hbs[n%len(hbs)]); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
		})
	}
}

// formBenchGroups makes n stable groups of one member each and returns a
// heartbeat of each member.
func formBenchGroups(b *testing.B, c clients, n int) []*regroupv1.HeartbeatRequest {
	ctx := context.Background()
	if _, err := c.admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 4}}); err != nil {
		b.Fatal(err)
	}
	var hbs []*regroupv1.HeartbeatRequest
	for g := range n {
		req := &regroupv1.JoinGroupRequest{GroupId: fmt.Sprint("bench-", g), SessionTimeoutMs: 600000, RebalanceTimeoutMs: 600000,
			Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}, Generation: -1}}}}
		_, err := c.coord.JoinGroup(ctx, req)
		var e *regroup.Error
		if !errors.As(rpcerr.FromStatus(err), &e) || e.Code != regroup.CodeMemberIDRequired {
			b.Fatalf("first JoinGroup: %v", err)
		}
		req.MemberId = e.Metadata[regroup.MetaMemberID]
		resp, err := c.coord.JoinGroup(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		_, err = c.coord.SyncGroup(ctx, &regroupv1.SyncGroupRequest{GroupId: req.GroupId, MemberId: resp.GetMemberId(), Generation: resp.GetGeneration(),
			Assignments: []*regroupv1.MemberAssignment{{MemberId: resp.GetMemberId(), Assignment: &regroupv1.Assignment{
				Partitions: []*regroupv1.TopicPartitions{{Topic: "orders", Partitions: []int32{0, 1, 2, 3}}}}}}})
		if err != nil {
			b.Fatal(err)
		}
		hbs = append(hbs, &regroupv1.HeartbeatRequest{GroupId: req.GroupId, MemberId: resp.GetMemberId(), Generation: resp.GetGeneration()})
	}
	return hbs
}
