package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func TestReflectionListsTheServices(t *testing.T) {
	s := startServe(t)
	stream, err := reflectionpb.NewServerReflectionClient(dial(t, s.addr)).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	for _, want := range []string{"regroup.v1.Coordinator", "regroup.v1.Admin", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, without %s", names, want)
		}
	}

	// What grpcurl asks next to call a method: the file that defines it.
	resp = ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "regroup.v1.Admin"}})
	found := false
	for _, raw := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		var fd descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(raw, &fd); err != nil {
			t.Fatal(err)
		}
		for _, svc := range fd.GetService() {
			if svc.GetName() == "Admin" && slices.ContainsFunc(svc.GetMethod(), func(m *descriptorpb.MethodDescriptorProto) bool {
				return m.GetName() == "WatchGroup" && m.GetServerStreaming()
			}) {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("reflection does not describe regroup.v1.Admin with its WatchGroup stream: %v", resp)
	}
}

func TestServeReportsHealth(t *testing.T) {
	s := startServe(t)
	hc := healthpb.NewHealthClient(dial(t, s.addr))
	for _, svc := range []string{"", "regroup.v1.Coordinator", "regroup.v1.Admin"} {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q: %v, %v; want SERVING", svc, resp, err)
		}
	}
}

func TestHealthFollowsLeadership(t *testing.T) {
	var leading atomic.Bool
	leading.Store(true)
	hs := health.NewServer()
	setHealth(hs, true)
	stop := make(chan struct{})
	defer close(stop)
	go followLeadership(hs, leading.Load, true, healthInterval/10, stop)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := healthpb.NewHealthClient(dial(t, lis.Addr().String())).Watch(ctx, &healthpb.HealthCheckRequest{Service: "regroup.v1.Coordinator"})
	if err != nil {
		t.Fatal(err)
	}
	expect := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := watch.Recv()
		if err != nil || resp.GetStatus() != want {
			t.Fatalf("health: %v, %v; want %v", resp, err, want)
		}
	}
	expect(healthpb.HealthCheckResponse_SERVING)
	leading.Store(false)
	expect(healthpb.HealthCheckResponse_NOT_SERVING)
	leading.Store(true)
	expect(healthpb.HealthCheckResponse_SERVING)
}

// scrape reads the metrics of a coordinator.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// value returns the value of a counter or gauge, or the sample count of a
// histogram, whose labels are exactly labels (name, value pairs); -1 if
// there is none.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	for _, m := range mfs[name].GetMetric() {
		var got []string
		for _, lp := range m.GetLabel() {
			got = append(got, lp.GetName(), lp.GetValue())
		}
		if !slices.Equal(got, labels) {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestMetricsMoveWhenAGroupRebalances(t *testing.T) {
	s := startServe(t)
	if s.metricsAddr == "" {
		t.Fatal("regroup serve did not log the metrics address")
	}
	conn := dial(t, s.addr)
	admin := regroupv1.NewAdminClient(conn)
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 4}}); err != nil {
		t.Fatal(err)
	}

	type check struct {
		name   string
		labels []string
		want   func(before, after float64) bool
	}
	grows := func(before, after float64) bool { return after > before }
	is := func(v float64) func(_, after float64) bool { return func(_, after float64) bool { return after == v } }
	step := func(what string, checks []check, change func()) {
		t.Helper()
		before := scrape(t, s.metricsAddr)
		change()
		after := scrape(t, s.metricsAddr)
		for _, c := range checks {
			b, a := value(before, c.name, c.labels...), value(after, c.name, c.labels...)
			if !c.want(b, a) {
				t.Errorf("%s: %s%v went from %v to %v", what, c.name, c.labels, b, a)
			}
		}
	}

	step("a group forms", []check{
		{"regroup_leader", nil, is(1)},
		{"regroup_rebalances_total", []string{"cause", "member-joined"}, grows},
		{"regroup_rebalance_triggers_total", []string{"cause", "member-joined"}, grows},
		{"regroup_rebalance_duration_seconds", nil, grows},
		{"regroup_join_barrier_wait_seconds", nil, grows},
		{"regroup_sync_barrier_wait_seconds", nil, grows},
		{"regroup_groups", []string{"state", "Stable"}, is(1)},
		{"regroup_group_members", []string{"group", "g"}, is(1)},
		{"regroup_group_partitions_unowned", []string{"group", "g"}, is(0)},
		{"regroup_group_rebalance_running_seconds", []string{"group", "g"}, is(0)},
		{"regroup_group_rebalance_timeout_seconds", []string{"group", "g"}, is(5)},
		{"regroup_requests_total", []string{"code", "OK", "method", "JoinGroup"}, grows},
		{"regroup_request_duration_seconds", []string{"method", "SyncGroup"}, grows},
		{"regroup_store_write_duration_seconds", []string{"result", "ok"}, grows},
	}, func() {
		startMember(t, conn, "g", "a", "orders")
		waitStable(t, admin, "g", "a")
	})

	step("a second member joins", []check{
		{"regroup_rebalances_total", []string{"cause", "member-joined"}, grows},
		{"regroup_rebalance_duration_seconds", nil, grows},
		{"regroup_partitions_moved_total", nil, grows},
		{"regroup_groups", []string{"state", "Stable"}, is(1)},
		{"regroup_group_members", []string{"group", "g"}, is(2)},
		{"regroup_rebalances_total", []string{"cause", "member-expired"}, is(0)},
	}, func() {
		startMember(t, conn, "g", "b", "orders")
		waitStable(t, admin, "g", "a", "b")
	})

	mfs := scrape(t, s.metricsAddr)
	if left := value(mfs, "regroup_group_session_left_ratio", "group", "g"); left < 0 || left > 1 {
		t.Errorf("regroup_group_session_left_ratio is %v, want a fraction", left)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if mfs[name] == nil {
			t.Errorf("%s is missing: the Go and process collectors are not registered", name)
		}
	}
}

func TestServeWithoutMetrics(t *testing.T) {
	s := startServe(t, "--metrics-addr", "")
	if s.metricsAddr != "" {
		t.Errorf("metrics are served on %s with --metrics-addr ''", s.metricsAddr)
	}
	if !strings.Contains(s.logs.String(), `"@message":"metrics disabled`) {
		t.Errorf("regroup serve does not say that metrics are disabled:\n%s", s.logs)
	}
	// The coordinator works without metrics.
	if _, err := regroupv1.NewAdminClient(dial(t, s.addr)).ListGroups(context.Background(), &regroupv1.ListGroupsRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestServeLogsOneLinePerRebalance(t *testing.T) {
	s := startServe(t)
	conn := dial(t, s.addr)
	admin := regroupv1.NewAdminClient(conn)
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 4}}); err != nil {
		t.Fatal(err)
	}
	startMember(t, conn, "g", "a", "orders")
	d := waitStable(t, admin, "g", "a")
	var lines []map[string]any
	for _, l := range strings.Split(s.logs.String(), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) == nil && line["@message"] == "rebalance done" {
			lines = append(lines, line)
		}
	}
	rebalances := 0
	for _, r := range d.GetRebalances() {
		if !r.GetNoRebalance() {
			rebalances++
		}
	}
	if len(lines) != rebalances {
		t.Fatalf("%d \"rebalance done\" log lines for %d rebalances:\n%s", len(lines), rebalances, s.logs)
	}
	last := lines[len(lines)-1]
	for _, key := range []string{"group", "generation", "cause", "duration", "partitions_moved"} {
		if _, ok := last[key]; !ok {
			t.Errorf("the rebalance log line has no %q: %v", key, last)
		}
	}
	if last["group"] != "g" || last["generation"] != float64(d.GetGeneration()) {
		t.Errorf("the rebalance log line is %v, want group g at generation %d", last, d.GetGeneration())
	}
}

// After an operator removes a static member whose process may still run,
// the partitions it had wait for its lease: describe names the waiting
// member and shows the rebalance as waiting, and the unowned gauge counts
// the partitions; once the lease has ended the rebalance is done, and its
// duration includes the wait.
func TestDescribeAndMetricsShowALeaseWait(t *testing.T) {
	s := startServe(t)
	c := cli{t: t, endpoint: s.addr}
	conn := dial(t, s.addr)
	admin := regroupv1.NewAdminClient(conn)
	c.ok("topics", "put", "orders", "--partitions", "4")
	startMember(t, conn, "g", "a", "orders")
	const session = 5 * time.Second
	b := startMemberWithSession(t, conn, "g", "b", session, "orders")
	waitStable(t, admin, "g", "a", "b")
	// b's process stops; the coordinator cannot tell, so b's lease runs on.
	b.crash()
	removed := time.Now()
	c.ok("groups", "remove-members", "g", "--instance", "b")

	var out string
	waitfor.Until(t, "describe shows a waiting for b's lease", func() error {
		out = c.ok("groups", "describe", "g")
		if !strings.Contains(out, "Waiting:") {
			return fmt.Errorf("no Waiting line in:\n%s", out)
		}
		return nil
	})
	contains(t, "describe during the wait", out,
		`^Waiting:\s+1 member, until a removed member's lease ends in [0-9.]+m?s$`,
		`^GEN\s+DURATION\s+MOVED\s+REVOKED\s+LOST\s+CAUSE$`,
		`^\d+\s+waiting\s+2\s+\d+\s+0\s+static member b \(removed by an`)
	// a is eager: it gave up its 2 partitions to rejoin, and waits for all 4.
	if unowned := value(scrape(t, s.metricsAddr), "regroup_group_partitions_unowned", "group", "g"); unowned != 4 {
		t.Errorf("regroup_group_partitions_unowned is %v while a waits for its 4 partitions, want 4", unowned)
	}

	waitfor.Until(t, "the rebalance is done once b's lease has ended", func() error {
		out = c.ok("groups", "describe", "g")
		if strings.Contains(out, "Waiting:") || strings.Contains(out, "waiting") {
			return fmt.Errorf("still waiting:\n%s", out)
		}
		return nil
	})
	desc := c.json("groups", "describe", "g")
	rs, _ := field(desc, "rebalances").([]any)
	last := rs[len(rs)-1]
	start, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(field(last, "start")))
	end, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(field(last, "end")))
	// b's lease ran at least a session timeout from its last answered
	// heartbeat, held for at most a third of it before the crash.
	if took, least := end.Sub(start), session-session/3-time.Since(removed); took < least {
		t.Errorf("the rebalance took %v (from %v to %v), less than b's lease left at its removal (%v at least)", took, field(last, "start"), field(last, "end"), least)
	}
	if unowned := value(scrape(t, s.metricsAddr), "regroup_group_partitions_unowned", "group", "g"); unowned != 0 {
		t.Errorf("regroup_group_partitions_unowned is %v after the wait, want 0", unowned)
	}
}
