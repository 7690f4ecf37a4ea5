package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// testServer is a coordinator on a loopback port.
type testServer struct {
	srv  *coordinator.Server
	gs   *grpc.Server
	addr string
}

func testConfig() group.Config {
	cfg := group.DefaultConfig()
	cfg.MinSessionTimeout = 500 * time.Millisecond
	cfg.InitialRebalanceDelay = 0
	return cfg
}

func startServer(t testing.TB, cfg group.Config, st store.Store) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := coordinator.New(context.Background(), coordinator.Config{
		Group:  cfg,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}),
	}, st)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	ts := &testServer{srv: srv, gs: gs, addr: lis.Addr().String()}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	ts.srv.Close()
	ts.gs.Stop()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rawMember speaks the group protocol directly: an eager member that
// revokes everything before rejoining, with a held heartbeat always in
// flight, and a leader that assigns partitions round-robin.
type rawMember struct {
	name     string
	instance string
	client   regroupv1.CoordinatorClient
	group    string
	topics   []string
	session  time.Duration

	mu         sync.Mutex
	member     string
	generation int32
	assignment map[string][]int32
	token      int64
	rebalances int
	advised    int // heartbeat answers that asked for longer holds (next_hold_ms)
}

func (m *rawMember) snapshot() (string, int32, map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.member, m.generation, m.assignment
}

// run keeps the member in the group until ctx ends; with leave it then
// leaves, otherwise it just stops (a crash, as far as the group can tell).
func (m *rawMember) run(ctx context.Context, leave bool) error {
	for ctx.Err() == nil {
		if err := m.joinAndSync(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			if regroup.CodeOf(err).Fatal() {
				return err
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		m.heartbeatUntilRebalance(ctx)
	}
	if leave {
		m.mu.Lock()
		id := m.member
		m.mu.Unlock()
		_, err := m.client.LeaveGroup(context.Background(), &regroupv1.LeaveGroupRequest{
			GroupId: m.group, Members: []*regroupv1.LeaveMember{{MemberId: id, GroupInstanceId: m.instance, Reason: "test done"}},
		})
		return err
	}
	return nil
}

func (m *rawMember) joinAndSync(ctx context.Context) error {
	m.mu.Lock()
	m.assignment = nil // eager: revoke everything before rejoining
	id := m.member
	m.mu.Unlock()
	req := &regroupv1.JoinGroupRequest{
		GroupId: m.group, MemberId: id, GroupInstanceId: m.instance, ClientId: m.name,
		SessionTimeoutMs: m.session.Milliseconds(), RebalanceTimeoutMs: (5 * m.session).Milliseconds(),
		Protocols: []*regroupv1.Protocol{{Name: "roundrobin", Subscription: &regroupv1.Subscription{Topics: m.topics, Generation: -1}}},
	}
	resp, err := m.client.JoinGroup(ctx, req)
	err = rpcerr.FromStatus(err)
	if errors.Is(err, regroup.ErrMemberIDRequired) {
		var e *regroup.Error
		errors.As(err, &e)
		req.MemberId = e.Metadata[regroup.MetaMemberID]
		resp, err = m.client.JoinGroup(ctx, req)
		err = rpcerr.FromStatus(err)
	}
	if errors.Is(err, regroup.ErrUnknownMemberID) {
		m.mu.Lock()
		m.member = ""
		m.mu.Unlock()
	}
	if err != nil {
		return err
	}
	// Keep the member id at once: if the sync fails, the member rejoins
	// as itself rather than as a new member that leaves a ghost behind.
	m.mu.Lock()
	m.member = resp.GetMemberId()
	m.mu.Unlock()
	sync := &regroupv1.SyncGroupRequest{GroupId: m.group, MemberId: resp.GetMemberId(), GroupInstanceId: m.instance, Generation: resp.GetGeneration()}
	if resp.GetMemberId() == resp.GetLeaderId() && !resp.GetSkipAssignment() {
		sync.Assignments = roundRobin(resp)
	}
	sresp, err := m.client.SyncGroup(ctx, sync)
	if err != nil {
		return rpcerr.FromStatus(err)
	}
	a := map[string][]int32{}
	for _, tp := range sresp.GetAssignment().GetPartitions() {
		a[tp.GetTopic()] = tp.GetPartitions()
	}
	m.mu.Lock()
	m.member, m.generation, m.assignment, m.token = resp.GetMemberId(), resp.GetGeneration(), a, sresp.GetFencingToken()
	m.rebalances++
	m.mu.Unlock()
	return nil
}

func (m *rawMember) heartbeatUntilRebalance(ctx context.Context) {
	for ctx.Err() == nil {
		id, gen, _ := m.snapshot()
		resp, err := m.client.Heartbeat(ctx, &regroupv1.HeartbeatRequest{
			GroupId: m.group, MemberId: id, GroupInstanceId: m.instance, Generation: gen, HoldMs: (m.session / 3).Milliseconds(),
		})
		if err != nil {
			return // rebalance, removal, or shutdown: rejoin
		}
		if resp.GetNextHoldMs() > 0 {
			m.mu.Lock()
			m.advised++
			m.mu.Unlock()
		}
	}
}

// roundRobin assigns every partition of every topic to the subscribed
// members in member id order.
func roundRobin(resp *regroupv1.JoinGroupResponse) []*regroupv1.MemberAssignment {
	plan := map[string]*regroupv1.Assignment{}
	for _, m := range resp.GetMembers() {
		plan[m.GetMemberId()] = &regroupv1.Assignment{}
	}
	i := 0
	for _, t := range resp.GetTopics() {
		tp := map[string]*regroupv1.TopicPartitions{}
		for p := range t.GetPartitions() {
			for range resp.GetMembers() {
				m := resp.GetMembers()[i%len(resp.GetMembers())]
				i++
				if !slices.Contains(m.GetSubscription().GetTopics(), t.GetName()) {
					continue
				}
				if tp[m.GetMemberId()] == nil {
					tp[m.GetMemberId()] = &regroupv1.TopicPartitions{Topic: t.GetName()}
					plan[m.GetMemberId()].Partitions = append(plan[m.GetMemberId()].Partitions, tp[m.GetMemberId()])
				}
				tp[m.GetMemberId()].Partitions = append(tp[m.GetMemberId()].Partitions, p)
				break
			}
		}
	}
	var out []*regroupv1.MemberAssignment
	for _, m := range resp.GetMembers() {
		out = append(out, &regroupv1.MemberAssignment{MemberId: m.GetMemberId(), Assignment: plan[m.GetMemberId()]})
	}
	return out
}

// checkOwnership checks that the members are all in one Stable generation
// and own every partition of the topic exactly once between them.
func checkOwnership(admin regroupv1.AdminClient, groupID string, members []*rawMember, topic string, partitions int32) error {
	d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: groupID})
	if err != nil {
		return err
	}
	if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != len(members) {
		return fmt.Errorf("group is %v with %d members, want Stable with %d", d.GetState(), len(d.GetMembers()), len(members))
	}
	owner := make([]string, partitions)
	for _, m := range members {
		id, gen, a := m.snapshot()
		if gen != d.GetGeneration() {
			return fmt.Errorf("%s is at generation %d, the group at %d", m.name, gen, d.GetGeneration())
		}
		for _, p := range a[topic] {
			if owner[p] != "" {
				return fmt.Errorf("partition %d owned by %s and %s", p, owner[p], id)
			}
			owner[p] = id
		}
	}
	for p, o := range owner {
		if o == "" {
			return fmt.Errorf("partition %d has no owner", p)
		}
	}
	return nil
}

func TestTenMembersOverGRPC(t *testing.T) {
	ts := startServer(t, testConfig(), memstore.New())
	conn := dial(t, ts.addr)
	admin := regroupv1.NewAdminClient(conn)
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 64}}); err != nil {
		t.Fatal(err)
	}
	type running struct {
		m      *rawMember
		cancel context.CancelFunc
		done   chan error
	}
	var all []*running
	for i := range 10 {
		m := &rawMember{name: fmt.Sprintf("m%d", i), client: regroupv1.NewCoordinatorClient(dial(t, ts.addr)), group: "g", topics: []string{"orders"}, session: time.Second}
		ctx, cancel := context.WithCancel(context.Background())
		r := &running{m: m, cancel: cancel, done: make(chan error, 1)}
		leave := i != 9 // m9 crashes later: it stops without leaving
		go func() { r.done <- m.run(ctx, leave) }()
		all = append(all, r)
	}
	members := func(rs []*running) []*rawMember {
		var ms []*rawMember
		for _, r := range rs {
			ms = append(ms, r.m)
		}
		return ms
	}
	waitfor.Until(t, "ten members own every partition once", func() error { return checkOwnership(admin, "g", members(all), "orders", 64) })

	// m0 leaves gracefully.
	all[0].cancel()
	if err := <-all[0].done; err != nil {
		t.Fatalf("m0 leave: %v", err)
	}
	all = all[1:]
	waitfor.Until(t, "nine members after a leave", func() error { return checkOwnership(admin, "g", members(all), "orders", 64) })

	// m9 stops heartbeating; its session (1s) expires and the rest rebalance.
	all[len(all)-1].cancel()
	<-all[len(all)-1].done
	all = all[:len(all)-1]
	waitfor.Until(t, "eight members after a crash", func() error { return checkOwnership(admin, "g", members(all), "orders", 64) })

	d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
	if err != nil {
		t.Fatal(err)
	}
	var causes []string
	for _, r := range d.GetRebalances() {
		causes = append(causes, r.GetCause())
	}
	joined := fmt.Sprint(causes)
	for _, want := range []string{"left", "expired"} {
		if !strings.Contains(joined, want) {
			t.Errorf("rebalance history %q does not mention a member that %s", causes, want)
		}
	}
	for _, r := range all {
		r.cancel()
		if err := <-r.done; err != nil {
			t.Errorf("%s: %v", r.m.name, err)
		}
	}
}

// TestStaticRestartsOverGRPC restarts ten static members in turn, each as a
// new process (new member id, same instance id) that did not release its
// partitions, within the session timeout: no rebalance, and every instance
// gets its partitions back (once the old process's lease has ended). Then
// one member stays away past its session timeout: one rebalance when it
// expires, and one when it comes back.
func TestStaticRestartsOverGRPC(t *testing.T) {
	ts := startServer(t, testConfig(), memstore.New())
	conn := dial(t, ts.addr)
	admin := regroupv1.NewAdminClient(conn)
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 40}}); err != nil {
		t.Fatal(err)
	}
	type running struct {
		m      *rawMember
		cancel context.CancelFunc
		done   chan error
	}
	start := func(i int) *running {
		// A session long enough that a loaded machine (the race detector,
		// other builds) does not expire a live member, which would
		// rebalance; short enough that i3's expiry below is quick.
		m := &rawMember{name: fmt.Sprintf("p%d", i), instance: fmt.Sprintf("i%d", i), client: regroupv1.NewCoordinatorClient(dial(t, ts.addr)),
			group: "g", topics: []string{"orders"}, session: 4 * time.Second}
		ctx, cancel := context.WithCancel(context.Background())
		r := &running{m: m, cancel: cancel, done: make(chan error, 1)}
		go func() { r.done <- m.run(ctx, false) }()
		return r
	}
	var all []*running
	for i := range 10 {
		all = append(all, start(i))
	}
	members := func() []*rawMember {
		var ms []*rawMember
		for _, r := range all {
			ms = append(ms, r.m)
		}
		return ms
	}
	waitfor.Until(t, "ten static members", func() error { return checkOwnership(admin, "g", members(), "orders", 40) })
	describe := func() *regroupv1.DescribeGroupResponse {
		d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	gen := describe().GetGeneration()
	assignments := map[string]string{}
	for _, r := range all {
		_, _, a := r.m.snapshot()
		assignments[r.m.instance] = fmt.Sprint(a)
	}

	for i := range all {
		all[i].cancel() // the process dies: no leave, no release
		<-all[i].done
		all[i] = start(i)
		waitfor.Until(t, fmt.Sprintf("restart of i%d", i), func() error { return checkOwnership(admin, "g", members(), "orders", 40) })
		if g := describe().GetGeneration(); g != gen {
			t.Fatalf("restart of i%d moved the generation from %d to %d: it rebalanced", i, gen, g)
		}
		_, _, a := all[i].m.snapshot()
		if got := fmt.Sprint(a); got != assignments[all[i].m.instance] {
			t.Fatalf("i%d got %s after its restart, had %s", i, got, assignments[all[i].m.instance])
		}
	}
	noRebalance := 0
	for _, r := range describe().GetRebalances() {
		if r.GetNoRebalance() {
			noRebalance++
		}
	}
	if noRebalance != 10 {
		t.Errorf("the history records %d replacements without a rebalance, want 10", noRebalance)
	}

	// i3 stays away past its session timeout: it is removed (one rebalance),
	// then it comes back (another).
	all[3].cancel()
	<-all[3].done
	all = append(all[:3], all[4:]...)
	waitfor.Until(t, "i3 expires", func() error { return checkOwnership(admin, "g", members(), "orders", 40) })
	afterExpiry := describe().GetGeneration()
	if afterExpiry != gen+1 {
		t.Errorf("generation %d after i3 expired, want %d (one rebalance)", afterExpiry, gen+1)
	}
	all = append(all, start(3))
	waitfor.Until(t, "i3 returns", func() error { return checkOwnership(admin, "g", members(), "orders", 40) })
	if g := describe().GetGeneration(); g != afterExpiry+1 {
		t.Errorf("generation %d after i3 returned, want %d (one rebalance)", g, afterExpiry+1)
	}
	for _, r := range all {
		r.cancel()
		<-r.done
	}
}
