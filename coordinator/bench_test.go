package coordinator_test

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// The benchmarks run client and server in one process on this machine's
// loopback; docs/benchmarks.md records the machine and the numbers.
//
//	go test ./coordinator -run '^$' -bench 'Heartbeat|Rebalance' -benchtime 5s

const (
	benchGroups      = 1000
	benchPerGroup    = 10
	benchConns       = 16
	benchParallelism = 32 // goroutines per GOMAXPROCS in the closed-loop runs
)

// bareServer answers Heartbeat with an empty handler: the cost of a gRPC
// unary call with the same messages, for the baseline.
type bareServer struct {
	regroupv1.UnimplementedCoordinatorServer
}

func (bareServer) Heartbeat(context.Context, *regroupv1.HeartbeatRequest) (*regroupv1.HeartbeatResponse, error) {
	return &regroupv1.HeartbeatResponse{}, nil
}

func startBare(b *testing.B) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	regroupv1.RegisterCoordinatorServer(gs, bareServer{})
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(gs.Stop)
	return lis.Addr().String()
}

type benchMember struct {
	group, id string
	gen       int32
}

// formGroups starts benchGroups groups of benchPerGroup members on addr and
// returns the members once every group is Stable. Sessions are long, so the
// members stay while the benchmark sends their heartbeats.
func formGroups(b *testing.B, addr string) []benchMember {
	conns := make([]regroupv1.CoordinatorClient, benchConns)
	for i := range conns {
		conns[i] = regroupv1.NewCoordinatorClient(dial(b, addr))
	}
	admin := regroupv1.NewAdminClient(dial(b, addr))
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 20}}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var all []*rawMember
	var wg sync.WaitGroup
	for g := range benchGroups {
		for i := range benchPerGroup {
			m := &rawMember{
				name: fmt.Sprintf("m%d", i), instance: fmt.Sprintf("i%d", i), client: conns[(g*benchPerGroup+i)%benchConns],
				group: fmt.Sprintf("g%d", g), topics: []string{"orders"}, session: 10 * time.Minute,
			}
			all = append(all, m)
			wg.Add(1)
			go func() { defer wg.Done(); _ = m.run(ctx, false) }()
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		stable := 0
		for g := 0; g < benchGroups; g++ {
			d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: fmt.Sprintf("g%d", g)})
			if err == nil && d.GetState() == regroupv1.GroupState_GROUP_STATE_STABLE && len(d.GetMembers()) == benchPerGroup {
				ok := true
				for _, m := range all[g*benchPerGroup : (g+1)*benchPerGroup] {
					if _, gen, _ := m.snapshot(); gen != d.GetGeneration() {
						ok = false
					}
				}
				if ok {
					stable++
				}
			}
		}
		if stable == benchGroups {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d groups became Stable", stable, benchGroups)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	out := make([]benchMember, 0, len(all))
	for _, m := range all {
		id, gen, _ := m.snapshot()
		out = append(out, benchMember{group: m.group, id: id, gen: gen})
	}
	return out
}

// latencies collects call durations.
type latencies struct {
	mu sync.Mutex
	ds []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.ds = append(l.ds, d...)
	l.mu.Unlock()
}

func (l *latencies) quantile(q float64) time.Duration {
	sort.Slice(l.ds, func(i, j int) bool { return l.ds[i] < l.ds[j] })
	if len(l.ds) == 0 {
		return 0
	}
	return l.ds[min(len(l.ds)-1, int(q*float64(len(l.ds))))]
}

// heartbeatLoad sends heartbeats for members from many goroutines as fast
// as they are answered and reports throughput and latency quantiles.
func heartbeatLoad(b *testing.B, addr string, members []benchMember) {
	clients := make([]regroupv1.CoordinatorClient, benchConns)
	for i := range clients {
		clients[i] = regroupv1.NewCoordinatorClient(dial(b, addr))
	}
	var next atomic.Uint64
	var lat latencies
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			i := next.Add(1)
			m := members[int(i)%len(members)]
			t0 := time.Now()
			_, err := clients[int(i)%len(clients)].Heartbeat(context.Background(), &regroupv1.HeartbeatRequest{GroupId: m.group, MemberId: m.id, GroupInstanceId: instanceOf(m), Generation: m.gen})
			if err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
		}
		lat.add(local)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "heartbeats/s")
	b.ReportMetric(float64(lat.quantile(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat.quantile(0.99).Microseconds())/1000, "p99-ms")
}

// instanceOf returns the static instance id formGroups gave a member.
func instanceOf(m benchMember) string {
	// Member ids are "PREFIX-UUID" with the instance id as prefix.
	return m.id[:len(m.id)-37]
}

// BenchmarkHeartbeat measures heartbeats per second with 10,000 members in
// 1,000 groups, beside a bare gRPC unary call with an empty handler.
func BenchmarkHeartbeat(b *testing.B) {
	b.Run("coordinator", func(b *testing.B) {
		ts := startServer(b, benchConfig(), memstore.New())
		members := formGroups(b, ts.addr)
		heartbeatLoad(b, ts.addr, members)
	})
	b.Run("bare-grpc", func(b *testing.B) {
		heartbeatLoad(b, startBare(b), bareMembers())
	})
}

// BenchmarkHeartbeatOpenLoop sends each of the 10,000 members' heartbeats
// once a second (10,000 calls a second, evenly spread) for 10 s and reports
// the latency quantiles and the rate achieved, for the coordinator and for a
// bare gRPC call under the same load.
func BenchmarkHeartbeatOpenLoop(b *testing.B) {
	b.Run("coordinator", func(b *testing.B) {
		ts := startServer(b, benchConfig(), memstore.New())
		openLoop(b, ts.addr, formGroups(b, ts.addr))
	})
	b.Run("bare-grpc", func(b *testing.B) {
		openLoop(b, startBare(b), bareMembers())
	})
}

func bareMembers() []benchMember {
	members := make([]benchMember, benchGroups*benchPerGroup)
	for i := range members {
		members[i] = benchMember{group: fmt.Sprintf("g%d", i/benchPerGroup), id: fmt.Sprintf("i%d-00000000-0000-0000-0000-000000000000", i%benchPerGroup), gen: 1}
	}
	return members
}

// openLoop paces the calls: each of benchConns workers has its own
// connection and sends its share of the members' heartbeats at evenly
// spaced absolute times, so the offered load stays 10,000 calls a second
// whatever the latency.
func openLoop(b *testing.B, addr string, members []benchMember) {
	clients := make([]regroupv1.CoordinatorClient, benchConns)
	for i := range clients {
		clients[i] = regroupv1.NewCoordinatorClient(dial(b, addr))
	}
	const duration = 10 * time.Second
	interval := time.Second * benchConns / time.Duration(len(members))
	b.ResetTimer()
	for range b.N {
		var lat latencies
		var wg sync.WaitGroup
		var sent, failed atomic.Int64
		start := time.Now()
		for w := range benchConns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var local []time.Duration
				offset := interval * time.Duration(w) / benchConns
				for k := 0; ; k++ {
					due := start.Add(offset + time.Duration(k)*interval)
					if due.Sub(start) >= duration {
						break
					}
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
					m := members[(k*benchConns+w)%len(members)]
					t0 := time.Now()
					_, err := clients[w].Heartbeat(context.Background(), &regroupv1.HeartbeatRequest{GroupId: m.group, MemberId: m.id, GroupInstanceId: instanceOf(m), Generation: m.gen})
					if err != nil {
						failed.Add(1)
					}
					local = append(local, time.Since(t0))
					sent.Add(1)
				}
				lat.add(local)
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		if failed.Load() > 0 {
			b.Fatalf("%d heartbeats failed", failed.Load())
		}
		b.ReportMetric(float64(sent.Load())/elapsed.Seconds(), "heartbeats/s")
		b.ReportMetric(float64(lat.quantile(0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat.quantile(0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat.quantile(0.999).Microseconds())/1000, "p999-ms")
	}
}

// benchConfig lets groups form in one generation: the first rebalance of
// an empty group waits for the members that keep arriving.
func benchConfig() group.Config {
	cfg := testConfig()
	cfg.InitialRebalanceDelay = 500 * time.Millisecond
	return cfg
}

// BenchmarkRebalance1000Members measures the coordinator's share of a
// rebalance of a 1,000-member group: from the moment the last member's
// JoinGroup is sent until every member holds its SyncGroup answer, with a
// leader that assigns round-robin at once. Each round changes the members'
// user data, so the first rejoin starts the rebalance and the rest wait at
// the barrier for the last one.
func BenchmarkRebalance1000Members(b *testing.B) {
	const n = 1000
	ts := startServer(b, benchConfig(), memstore.New())
	clients := make([]regroupv1.CoordinatorClient, benchConns)
	for i := range clients {
		clients[i] = regroupv1.NewCoordinatorClient(dial(b, ts.addr))
	}
	admin := regroupv1.NewAdminClient(dial(b, ts.addr))
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 2000}}); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	member := func(round, i int) {
		c := clients[i%len(clients)]
		resp, err := c.JoinGroup(context.Background(), &regroupv1.JoinGroupRequest{
			GroupId: "big", MemberId: ids[i], GroupInstanceId: fmt.Sprintf("i%04d", i), ClientId: "bench",
			SessionTimeoutMs: 600000, RebalanceTimeoutMs: 600000,
			Protocols: []*regroupv1.Protocol{{Name: "roundrobin", Subscription: &regroupv1.Subscription{
				Topics: []string{"orders"}, Generation: -1, UserData: []byte{byte(round)},
			}}},
		})
		if err != nil {
			b.Error(err)
			return
		}
		ids[i] = resp.GetMemberId()
		req := &regroupv1.SyncGroupRequest{GroupId: "big", MemberId: resp.GetMemberId(), GroupInstanceId: fmt.Sprintf("i%04d", i), Generation: resp.GetGeneration()}
		if resp.GetMemberId() == resp.GetLeaderId() {
			req.Assignments = roundRobin(resp)
		}
		if _, err := c.SyncGroup(context.Background(), req); err != nil {
			b.Error(err)
		}
	}
	// round runs one rebalance and returns the time from the last member's
	// join to the last SyncGroup answer.
	round := func(r int) time.Duration {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var last time.Time
		run := func(i int) {
			defer wg.Done()
			member(r, i)
			mu.Lock()
			if t := time.Now(); t.After(last) {
				last = t
			}
			mu.Unlock()
		}
		for i := range n - 1 {
			wg.Add(1)
			go run(i)
		}
		if r > 0 {
			waitJoined(b, admin, n-1)
		}
		t0 := time.Now()
		wg.Add(1)
		run(n - 1)
		wg.Wait()
		return last.Sub(t0)
	}
	round(0) // form the group
	b.ResetTimer()
	var total time.Duration
	for i := range b.N {
		total += round(i + 1)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/rebalance")
}

// waitJoined waits until n members of group "big" wait at the join barrier.
func waitJoined(b *testing.B, admin regroupv1.AdminClient, n int) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "big"})
		if err == nil {
			joined := 0
			for _, m := range d.GetMembers() {
				if m.GetJoined() {
					joined++
				}
			}
			if joined >= n {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("%d members did not reach the join barrier within a minute", n)
}

// BenchmarkHeldHeartbeats measures what the coordinator spends per held
// heartbeat when members' heartbeats are spread over the interval, as the
// member library spreads them: 10,000 members each keep a heartbeat held
// for 2 s, the first sent at a random point of the first 2 s, and the
// benchmark counts b.N answers. Calls go to the Server's methods in this
// process (no gRPC), so that cpu-µs/heartbeat (the process's CPU time over
// the answers) is the driver's and the core's cost alone.
func BenchmarkHeldHeartbeats(b *testing.B) {
	const hold = 2 * time.Second
	ts := startServer(b, benchConfig(), memstore.New())
	members := formGroups(b, ts.addr)
	var answered atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0, start := processCPU(b), time.Now()
	for i, m := range members {
		wg.Go(func() {
			req := &regroupv1.HeartbeatRequest{GroupId: m.group, MemberId: m.id, GroupInstanceId: instanceOf(m), Generation: m.gen, HoldMs: hold.Milliseconds()}
			select {
			case <-time.After(time.Duration(i) * hold / time.Duration(len(members))):
			case <-ctx.Done():
				return
			}
			for ctx.Err() == nil {
				if _, err := ts.srv.Heartbeat(ctx, req); err != nil {
					if ctx.Err() == nil {
						b.Error(err)
						cancel()
					}
					return
				}
				if answered.Add(1) == int64(b.N) {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU(b)-cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/heartbeat")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "heartbeats/s")
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
