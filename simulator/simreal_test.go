package simulator_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
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
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
	"github.com/regroup-dev/regroup/simulator"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// simToReal is one scenario told twice: to the simulator, and to a real
// coordinator with real member libraries over gRPC in real time. Five
// static members (range, keyed by instance id, so the assignment does not
// depend on member ids) join; m5 stops and leaves for good; m4 is cut off
// from the coordinator for good, as if it had crashed.
const simToReal = `
coordinator initial-delay=1s min-session=500ms
network delay=0s..1ms
topic orders partitions=12
group g assignors=range static session=2s rebalance=5s heartbeat=500ms margin=200ms on-revoked=0s
at 0s join m1..m4
at 0s join m5 leave-on-stop
at 5s leave m5
at 10s partition m4
run until=20s
`

// TestSimToReal runs simToReal in the simulator and on a real coordinator
// and checks that both see the same number of rebalances and end with the
// same assignment.
func TestSimToReal(t *testing.T) {
	res := simulateForReal(t, "sim-to-real", simToReal)
	rebalances, assignment := runReal(t)
	compareWithReal(t, res, rebalances, assignment)
	if res.Metrics.Rebalances != 3 {
		t.Errorf("the simulator saw %d rebalances, want 3 (join, leave, expiry)", res.Metrics.Rebalances)
	}
}

// simulateForReal runs a sim-to-real scenario in the simulator, which must
// find nothing wrong; it skips the test in -short mode, since the real
// side runs in real time.
func simulateForReal(t *testing.T, name, text string) *simulator.Result {
	t.Helper()
	if testing.Short() {
		t.Skip("runs in real time")
	}
	sc, err := scenario.Parse(name, text)
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
	return res
}

// compareWithReal checks that the real run counted the simulator's
// rebalances and ended with its assignment.
func compareWithReal(t *testing.T, res *simulator.Result, rebalances int, assignment map[string][]string) {
	t.Helper()
	if rebalances != res.Metrics.Rebalances {
		t.Errorf("rebalances: %d on the real coordinators, %d in the simulator", rebalances, res.Metrics.Rebalances)
	}
	if fmt.Sprint(assignment) != fmt.Sprint(res.Assignment) {
		t.Errorf("final assignment:\n real %v\n  sim %v", assignment, res.Assignment)
	}
}

// runReal plays simToReal against a real coordinator: it waits for the
// group to settle after each step rather than for fixed times.
func runReal(t *testing.T) (int, map[string][]string) {
	addr, _ := startCoordinator(t, memstore.New())
	rg := newRealGroup(t, func() string { return addr })
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("m%d", i)
		rg.start(name, name == "m5")
	}
	rg.settle("m1", "m2", "m3", "m4", "m5")
	rg.stop("m5")
	rg.settle("m1", "m2", "m3", "m4")
	rg.cut["m4"].Sever()
	rg.settle("m1", "m2", "m3")

	d, err := rg.admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
	if err != nil {
		t.Fatal(err)
	}
	rebalances := 0
	for _, r := range d.GetRebalances() {
		if !r.GetNoRebalance() {
			rebalances++
		}
	}
	return rebalances, rg.assignment("m1", "m2", "m3", "m4") // m4 runs, cut off
}

// startCoordinator serves the sim-to-real scenarios' coordinator settings
// (sessions from 500 ms, an initial delay of 1 s) over st on a loopback
// port; it returns the address and a stop function (also run at cleanup).
func startCoordinator(t *testing.T, st store.Store) (string, func()) {
	cfg := group.DefaultConfig()
	cfg.MinSessionTimeout = 500 * time.Millisecond
	cfg.InitialRebalanceDelay = time.Second
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard})
	srv, err := coordinator.New(context.Background(), coordinator.Config{Group: cfg, Logger: logger}, st)
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
	stop := sync.OnceFunc(func() { srv.Close(); gs.Stop() })
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

// realGroup is the real side of a sim-to-real test: static range members
// of group g (session 2 s, heartbeat 500 ms, as the scenarios say), each
// reaching the coordinator through its own proxy to target.
type realGroup struct {
	t       *testing.T
	admin   regroupv1.AdminClient
	target  func() string
	members map[string]*member.Member
	cut     map[string]*cutproxy.Proxy
	cancel  map[string]func() error
}

// newRealGroup reaches the coordinator at target() (which may change, as
// after a failover) and creates the topic orders with 12 partitions.
func newRealGroup(t *testing.T, target func() string) *realGroup {
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
	return &realGroup{t: t, admin: admin, target: target, members: map[string]*member.Member{},
		cut: map[string]*cutproxy.Proxy{}, cancel: map[string]func() error{}}
}

// start runs a member until the test ends or stop.
func (rg *realGroup) start(name string, leaveOnStop bool) {
	t := rg.t
	rangeA, err := assignor.Lookup("range")
	if err != nil {
		t.Fatal(err)
	}
	px := cutproxy.Start(t, rg.target)
	m, err := member.New(member.Config{
		Endpoints: []string{px.Addr()}, Group: "g", Topics: []string{"orders"}, InstanceID: name, ClientID: name,
		Assignors: []assignor.Assignor{rangeA}, SessionTimeout: 2 * time.Second, RebalanceTimeout: 5 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond, SafetyMargin: 200 * time.Millisecond, LeaveOnStop: leaveOnStop,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	rg.members[name], rg.cut[name] = m, px
	rg.cancel[name] = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { _ = rg.cancel[name]() })
}

// stop stops a member (gracefully) and waits for it.
func (rg *realGroup) stop(name string) {
	if err := rg.cancel[name](); err != nil {
		rg.t.Fatalf("%s: %v", name, err)
	}
}

// settle waits until the group is Stable with exactly the live members,
// which own all 12 partitions between them, and returns its description.
func (rg *realGroup) settle(live ...string) *regroupv1.DescribeGroupResponse {
	rg.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := rg.admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
		owned := 0
		for _, name := range live {
			owned += len(rg.members[name].Assignment())
		}
		if err == nil && d.GetState() == regroupv1.GroupState_GROUP_STATE_STABLE && len(d.GetMembers()) == len(live) && owned == 12 {
			return d
		}
		if time.Now().After(deadline) {
			rg.t.Fatalf("the group did not settle with %v within 30s (state %v, %d members, %d owned, %v)", live, d.GetState(), len(d.GetMembers()), owned, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assignment returns what the named members own, as the simulator reports
// it.
func (rg *realGroup) assignment(names ...string) map[string][]string {
	out := map[string][]string{}
	for _, name := range names {
		owned := []string{}
		for _, p := range rg.members[name].Assignment() {
			owned = append(owned, fmt.Sprintf("%s/%d", p.Topic, p.Partition))
		}
		out[name] = owned
	}
	return out
}
