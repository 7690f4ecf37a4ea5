package simulator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/internal/cutproxy"
	"github.com/regroup-dev/regroup/member"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
	"github.com/regroup-dev/regroup/simulator"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// simToRealFaults is a scenario with the faults the node core handles:
// three static members join; the store refuses writes for a second while
// a fourth joins; then the leader is killed and another coordinator takes
// over from the store.
const simToRealFaults = `
coordinator initial-delay=1s min-session=500ms
network delay=0s..1ms
topic orders partitions=12
group g assignors=range static session=2s rebalance=5s heartbeat=500ms margin=200ms on-revoked=0s
at 0s join m1..m3
at 5s store fail for=1s
at 5.1s join m4
at 10s failover gap=200ms
run until=20s
`

// TestSimToRealWithFaults runs simToRealFaults in the simulator and on real
// coordinators over a store that refuses writes on demand, and checks that
// both count the same rebalances, keep the same generation through the
// failover and end with the same assignment.
func TestSimToRealWithFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs in real time")
	}
	sc, err := scenario.Parse("sim-to-real-faults", simToRealFaults)
	if err != nil {
		t.Fatal(err)
	}
	res, err := simulator.Run(sc, simulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("simulation: violations %v, failed %v", res.Violations, res.Failed)
	}
	if res.Metrics.StoreFaults == 0 {
		t.Fatal("the simulated store refused no write")
	}
	rebalances, generation, assignment := runRealWithFaults(t)
	if rebalances != res.Metrics.Rebalances {
		t.Errorf("rebalances: %d on the real coordinators, %d in the simulator", rebalances, res.Metrics.Rebalances)
	}
	if generation != res.Metrics.Generation {
		t.Errorf("generation after the failover: %d on the real coordinators, %d in the simulator", generation, res.Metrics.Generation)
	}
	if fmt.Sprint(assignment) != fmt.Sprint(res.Assignment) {
		t.Errorf("final assignment:\n real %v\n  sim %v", assignment, res.Assignment)
	}
}

// faultyStore is a memstore term whose group writes fail while failing is
// set, as an etcd cluster without quorum refuses them.
type faultyStore struct {
	store.Store
	failing *atomic.Bool
	refused *atomic.Int32
}

func (s faultyStore) PutGroup(ctx context.Context, rec *storev1.GroupRecord) error {
	if s.failing.Load() {
		s.refused.Add(1)
		return errors.New("etcdserver: request timed out (simulated)")
	}
	return s.Store.PutGroup(ctx, rec)
}

func runRealWithFaults(t *testing.T) (rebalances int, generation int32, assignment map[string][]string) {
	cfg := group.DefaultConfig()
	cfg.MinSessionTimeout = 500 * time.Millisecond
	cfg.InitialRebalanceDelay = time.Second
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard})
	data := &memstore.Data{}
	var failing atomic.Bool
	var refused atomic.Int32

	// serve starts a coordinator on a fresh term of data.
	var mu sync.Mutex
	var addr string
	serve := func() (*coordinator.Server, *grpc.Server) {
		srv, err := coordinator.New(context.Background(), coordinator.Config{Group: cfg, Logger: logger},
			faultyStore{Store: data.Open(), failing: &failing, refused: &refused})
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer()
		srv.Register(gs)
		go func() { _ = gs.Serve(lis) }()
		mu.Lock()
		addr = lis.Addr().String()
		mu.Unlock()
		return srv, gs
	}
	target := func() string {
		mu.Lock()
		defer mu.Unlock()
		return addr
	}
	srvA, gsA := serve()
	stopA := sync.OnceFunc(func() { srvA.Close(); gsA.Stop() })
	t.Cleanup(stopA)

	conn, err := grpc.NewClient("passthrough:///coordinator", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", target())
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	admin := regroupv1.NewAdminClient(conn)
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 12}}); err != nil {
		t.Fatal(err)
	}
	rangeA, err := assignor.Lookup("range")
	if err != nil {
		t.Fatal(err)
	}
	members := map[string]*member.Member{}
	start := func(name string) {
		px := cutproxy.Start(t, target)
		m, err := member.New(member.Config{
			Endpoints: []string{px.Addr()}, Group: "g", Topics: []string{"orders"}, InstanceID: name, ClientID: name,
			Assignors: []assignor.Assignor{rangeA}, SessionTimeout: 2 * time.Second, RebalanceTimeout: 5 * time.Second,
			HeartbeatInterval: 500 * time.Millisecond, SafetyMargin: 200 * time.Millisecond, Logger: logger,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		members[name] = m
		t.Cleanup(func() { cancel(); <-done })
	}
	settle := func(live ...string) *regroupv1.DescribeGroupResponse {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
			owned := 0
			for _, name := range live {
				owned += len(members[name].Assignment())
			}
			if err == nil && d.GetState() == regroupv1.GroupState_GROUP_STATE_STABLE && len(d.GetMembers()) == len(live) && owned == 12 {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("the group did not settle with %v within 30s (state %v, %d members, %d owned, %v)", live, d.GetState(), len(d.GetMembers()), owned, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, name := range []string{"m1", "m2", "m3"} {
		start(name)
	}
	before := settle("m1", "m2", "m3").GetGeneration()
	failing.Store(true)
	start("m4")
	time.Sleep(time.Second) // the store's outage, as in the scenario
	failing.Store(false)
	if refused.Load() == 0 {
		t.Fatal("the store refused no write: the outage tested nothing")
	}
	d := settle("m1", "m2", "m3", "m4")
	if d.GetGeneration() <= before {
		t.Fatalf("generation %d after the outage, was %d: a failed write lowered or reset it", d.GetGeneration(), before)
	}
	stopA()
	srvB, gsB := serve()
	t.Cleanup(func() { srvB.Close(); gsB.Stop() })
	d = settle("m1", "m2", "m3", "m4")
	for _, r := range d.GetRebalances() {
		if !r.GetNoRebalance() {
			rebalances++
		}
	}
	assignment = map[string][]string{}
	for name, m := range members {
		owned := []string{}
		for _, p := range m.Assignment() {
			owned = append(owned, fmt.Sprintf("%s/%d", p.Topic, p.Partition))
		}
		assignment[name] = owned
	}
	return rebalances, d.GetGeneration(), assignment
}
