package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/node"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// slowCore makes a coordinator's core do a fixed amount of work per
// second: every call and timer the core gets to costs perStep of its
// lock (QueueDelay is called under it). It counts the calls shed.
type slowCore struct {
	perStep time.Duration
	shed    atomic.Int64
	started atomic.Int64 // times Overloaded(true) was called
}

func (*slowCore) GroupEvent(string, group.Event)                             {}
func (*slowCore) Request(string, proto.Message, time.Duration, regroup.Code) {}
func (*slowCore) StoreWrite(time.Duration, error)                            {}
func (c *slowCore) QueueDelay(time.Duration)                                 { time.Sleep(c.perStep) }
func (c *slowCore) Shed(string)                                              { c.shed.Add(1) }
func (c *slowCore) Overloaded(on bool) {
	if on {
		c.started.Add(1)
	}
}

// TestOverloadShedsNewcomersNotLeases floods a coordinator whose core
// serves about a thousand steps a second with first JoinGroups from 64
// newcomers that retry at once, far more than it can serve, while four
// members own the partitions of the same group. The newcomers are refused
// COORDINATOR_OVERLOADED (UNAVAILABLE, with retry_after_ms); the members
// keep their sessions and leases (no rebalance, no new generation) and
// their heartbeats' answers ask them to beat less often (next_hold_ms);
// once the flood ends, two newcomers join and the group rebalances to six.
func TestOverloadShedsNewcomersNotLeases(t *testing.T) {
	core := &slowCore{perStep: time.Millisecond}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := coordinator.New(context.Background(), coordinator.Config{
		Group:    testConfig(),
		Logger:   hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}),
		Metrics:  core,
		Overload: node.Overload{Delay: 20 * time.Millisecond, Interval: 200 * time.Millisecond},
	}, memstore.New())
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(func() { srv.Close(); gs.Stop() })
	addr := lis.Addr().String()

	conn := dial(t, addr)
	client := regroupv1.NewCoordinatorClient(conn)
	admin := regroupv1.NewAdminClient(conn)
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 12}}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	start := func(name string) *rawMember {
		m := &rawMember{name: name, client: client, group: "g", topics: []string{"orders"}, session: 2 * time.Second}
		wg.Add(1)
		go func() { defer wg.Done(); _ = m.run(ctx, false) }()
		return m
	}
	stable := []*rawMember{start("s0"), start("s1"), start("s2"), start("s3")}
	settled := func(members []*rawMember) func() error {
		return func() error {
			d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
			if err != nil {
				return err
			}
			if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != len(members) {
				return fmt.Errorf("group %v with %d members, want Stable with %d", d.GetState(), len(d.GetMembers()), len(members))
			}
			for _, m := range members {
				if _, gen, a := m.snapshot(); gen != d.GetGeneration() || len(a) == 0 {
					return fmt.Errorf("member %s at generation %d with %v, group at %d", m.name, gen, a, d.GetGeneration())
				}
			}
			return nil
		}
	}
	waitfor.Until(t, "four members own the partitions", settled(stable))
	type state struct {
		id         string
		gen        int32
		rebalances int
	}
	before := make([]state, len(stable))
	for i, m := range stable {
		m.mu.Lock()
		before[i] = state{m.member, m.generation, m.rebalances}
		m.mu.Unlock()
	}

	// The flood: first JoinGroups only, retried at once whatever the
	// answer, so that no newcomer becomes a member before the shedding.
	flood, stopFlood := context.WithCancel(ctx)
	var overloaded atomic.Int64
	var badHint atomic.Value
	var floods sync.WaitGroup
	for i := range 64 {
		floods.Add(1)
		go func() {
			defer floods.Done()
			req := &regroupv1.JoinGroupRequest{
				GroupId: "g", ClientId: fmt.Sprintf("newcomer-%d", i), SessionTimeoutMs: 2000, RebalanceTimeoutMs: 10_000,
				Protocols: []*regroupv1.Protocol{{Name: "roundrobin", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}}}},
			}
			for flood.Err() == nil {
				_, err := client.JoinGroup(flood, req)
				var e *regroup.Error
				if errors.As(rpcerr.FromStatus(err), &e) && e.Code == regroup.CodeCoordinatorOverloaded {
					overloaded.Add(1)
					if ms, perr := strconv.Atoi(e.Metadata[regroup.MetaRetryAfterMs]); perr != nil || ms <= 0 || status.Code(err) != codes.Unavailable {
						badHint.Store(fmt.Sprintf("%v (gRPC code %v)", e, status.Code(err)))
					}
				}
			}
		}()
	}
	floodStart := time.Now()
	waitfor.Until(t, "newcomers refused for overload for three sessions", func() error {
		if n := overloaded.Load(); n < 100 || time.Since(floodStart) < 6*time.Second {
			return fmt.Errorf("%d refusals in %v", n, time.Since(floodStart).Round(time.Millisecond))
		}
		return nil
	})
	stopFlood()
	floods.Wait()
	if h := badHint.Load(); h != nil {
		t.Errorf("an overload refusal is not UNAVAILABLE with a positive retry_after_ms: %v", h)
	}
	if core.shed.Load() == 0 {
		t.Error("Metrics.Shed was never called")
	}
	if core.started.Load() == 0 {
		t.Error("Metrics.Overloaded(true) was never called")
	}
	advised := 0
	for i, m := range stable {
		m.mu.Lock()
		now := state{m.member, m.generation, m.rebalances}
		advised += m.advised
		m.mu.Unlock()
		if now != before[i] {
			t.Errorf("member %s went from %+v to %+v during the overload: it lost its place or its lease", m.name, before[i], now)
		}
	}
	if advised == 0 {
		t.Error("no heartbeat answer during the overload asked for a longer hold (next_hold_ms)")
	}

	// The load ended: newcomers join, and the group rebalances to six.
	waitfor.Until(t, "two newcomers join after the overload", settled(append(stable, start("n0"), start("n1"))))
}
