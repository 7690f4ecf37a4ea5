package simulator_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/group"
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
	if testing.Short() {
		t.Skip("runs in real time")
	}
	sc, err := scenario.Parse("sim-to-real", simToReal)
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

	rebalances, assignment := runReal(t)
	if rebalances != res.Metrics.Rebalances {
		t.Errorf("rebalances: %d on the real coordinator, %d in the simulator", rebalances, res.Metrics.Rebalances)
	}
	if fmt.Sprint(assignment) != fmt.Sprint(res.Assignment) {
		t.Errorf("final assignment:\n real %v\n  sim %v", assignment, res.Assignment)
	}
	if res.Metrics.Rebalances != 3 {
		t.Errorf("the simulator saw %d rebalances, want 3 (join, leave, expiry)", res.Metrics.Rebalances)
	}
}

// runReal plays simToReal against a real coordinator: it waits for the
// group to settle after each step rather than for fixed times.
func runReal(t *testing.T) (int, map[string][]string) {
	cfg := group.DefaultConfig()
	cfg.MinSessionTimeout = 500 * time.Millisecond
	cfg.InitialRebalanceDelay = time.Second
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard})
	srv, err := coordinator.New(context.Background(), coordinator.Config{Group: cfg, Logger: logger}, memstore.New())
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
	t.Cleanup(func() { srv.Close(); gs.Stop() })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
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
	type proc struct {
		m      *member.Member
		cut    *cutproxy.Proxy
		cancel context.CancelFunc
		done   chan error
	}
	procs := map[string]*proc{}
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("m%d", i)
		px := cutproxy.Start(t, func() string { return lis.Addr().String() })
		m, err := member.New(member.Config{
			Endpoints: []string{px.Addr()}, Group: "g", Topics: []string{"orders"}, InstanceID: name, ClientID: name,
			Assignors: []assignor.Assignor{rangeA}, SessionTimeout: 2 * time.Second, RebalanceTimeout: 5 * time.Second,
			HeartbeatInterval: 500 * time.Millisecond, SafetyMargin: 200 * time.Millisecond, LeaveOnStop: name == "m5",
			Logger: logger,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		p := &proc{m: m, cut: px, cancel: cancel, done: make(chan error, 1)}
		go func() { p.done <- m.Run(ctx) }()
		procs[name] = p
		t.Cleanup(func() { cancel(); <-p.done })
	}
	settle := func(live ...string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
			owned := 0
			for _, name := range live {
				owned += len(procs[name].m.Assignment())
			}
			if err == nil && d.GetState() == regroupv1.GroupState_GROUP_STATE_STABLE && len(d.GetMembers()) == len(live) && owned == 12 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the group did not settle with %v within 30s (state %v, %d members, %d owned, %v)", live, d.GetState(), len(d.GetMembers()), owned, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	settle("m1", "m2", "m3", "m4", "m5")
	procs["m5"].cancel()
	if err := <-procs["m5"].done; err != nil {
		t.Fatalf("m5: %v", err)
	}
	procs["m5"].done <- nil // for the cleanup
	settle("m1", "m2", "m3", "m4")
	procs["m4"].cut.Sever()
	settle("m1", "m2", "m3")

	d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
	if err != nil {
		t.Fatal(err)
	}
	rebalances := 0
	for _, r := range d.GetRebalances() {
		if !r.GetNoRebalance() {
			rebalances++
		}
	}
	assignment := map[string][]string{}
	for _, name := range []string{"m1", "m2", "m3", "m4"} { // m4 runs, cut off
		owned := []string{}
		for _, p := range procs[name].m.Assignment() {
			owned = append(owned, fmt.Sprintf("%s/%d", p.Topic, p.Partition))
		}
		assignment[name] = owned
	}
	return rebalances, assignment
}
