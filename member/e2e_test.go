package member_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/node"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/internal/cutproxy"
	"github.com/regroup-dev/regroup/internal/waitfor"
	"github.com/regroup-dev/regroup/member"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// coordinatorProc is a coordinator on a fixed loopback address that can be
// stopped and started again on the same store, as a restarted process.
type coordinatorProc struct {
	t    testing.TB
	addr string
	data *memstore.Data
	srv  *coordinator.Server
	gs   *grpc.Server
	// overload is the coordinator's load shedding (none by default).
	overload node.Overload
}

func quietLogger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard})
}

func testGroupConfig() group.Config {
	cfg := group.DefaultConfig()
	cfg.MinSessionTimeout = 500 * time.Millisecond
	cfg.InitialRebalanceDelay = 200 * time.Millisecond
	return cfg
}

func startCoordinator(t testing.TB) *coordinatorProc {
	return startShedding(t, node.Overload{})
}

// startShedding starts a coordinator that sheds load as overload says.
func startShedding(t testing.TB, overload node.Overload) *coordinatorProc {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &coordinatorProc{t: t, addr: lis.Addr().String(), data: &memstore.Data{}, overload: overload}
	c.serve(lis)
	t.Cleanup(c.stop)
	return c
}

func (c *coordinatorProc) serve(lis net.Listener) {
	srv, err := coordinator.New(context.Background(), coordinator.Config{
		Group:    testGroupConfig(),
		Logger:   hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard}),
		Overload: c.overload,
	}, c.data.Open())
	if err != nil {
		c.t.Fatal(err)
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	c.srv, c.gs = srv, gs
}

func (c *coordinatorProc) stop() {
	if c.gs != nil {
		c.srv.Close()
		c.gs.Stop()
		c.gs = nil
	}
}

// restart stops the coordinator and starts a new one on the same address
// and store, as a process restart would.
func (c *coordinatorProc) restart() {
	c.stop()
	var lis net.Listener
	var err error
	for range 100 {
		if lis, err = net.Listen("tcp", c.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.serve(lis)
}

func (c *coordinatorProc) admin() regroupv1.AdminClient {
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return regroupv1.NewAdminClient(conn)
}

type tp struct {
	topic string
	p     int32
}

type interval struct {
	member     string
	start, end time.Time // end is zero while owned
}

// recorder notes every ownership change that the member libraries report,
// with its time, and checks that no partition ever had two owners at once.
// Ownership starts when OnAssigned is called, and ends when OnRevoked
// returns or its context ends, whichever is first, or at OnLost's context
// deadline (the instant the library's lease ended).
type recorder struct {
	mu       sync.Mutex
	owned    map[tp][]*interval
	revoked  []revocation
	assigned int
	revokes  int
	lost     map[string]int // partitions each member declared lost (OnLost)
	stopping map[string]bool
}

type revocation struct {
	member string
	p      tp
	at     time.Time
}

func newRecorder() *recorder {
	return &recorder{owned: map[tp][]*interval{}, lost: map[string]int{}, stopping: map[string]bool{}}
}

func (r *recorder) listener(name string) member.Listener {
	return member.ListenerFuncs{
		Assigned: func(ctx context.Context, ps []member.Partition) {
			r.mu.Lock()
			defer r.mu.Unlock()
			now := time.Now()
			for _, p := range ps {
				k := tp{p.Topic, p.Partition}
				r.owned[k] = append(r.owned[k], &interval{member: name, start: now})
			}
			r.assigned += len(ps)
		},
		Revoked: func(ctx context.Context, ps []member.Partition) {
			r.end(name, ctx, ps, true)
		},
		Lost: func(ctx context.Context, ps []member.Partition) {
			r.end(name, ctx, ps, false)
		},
	}
}

func (r *recorder) end(name string, ctx context.Context, ps []member.Partition, revoked bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	end := time.Now()
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	for _, p := range ps {
		k := tp{p.Topic, p.Partition}
		for _, iv := range r.owned[k] {
			if iv.member == name && iv.end.IsZero() {
				iv.end = end
			}
		}
		if revoked && !r.stopping[name] {
			r.revoked = append(r.revoked, revocation{member: name, p: k, at: end})
		}
	}
	if revoked {
		r.revokes += len(ps)
	} else {
		r.lost[name] += len(ps)
	}
}

// lostExcept returns how many partitions the members other than except
// declared lost.
func (r *recorder) lostExcept(except string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for name, k := range r.lost {
		if name != except {
			n += k
		}
	}
	return int64(n)
}

// check reports any instant at which a partition had two owners.
func (r *recorder) check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, ivs := range r.owned {
		for i, a := range ivs {
			for _, b := range ivs[i+1:] {
				if a.member == b.member {
					continue
				}
				aEnd, bEnd := a.end, b.end
				if aEnd.IsZero() {
					aEnd = time.Now().Add(time.Hour)
				}
				if bEnd.IsZero() {
					bEnd = time.Now().Add(time.Hour)
				}
				if a.start.Before(bEnd) && b.start.Before(aEnd) {
					return fmt.Errorf("%w: partition %s/%d owned by %s [%v, %v] and %s [%v, %v] at once", errTwoOwners,
						k.topic, k.p, a.member, a.start.Format(time.StampMicro), a.end.Format(time.StampMicro),
						b.member, b.start.Format(time.StampMicro), b.end.Format(time.StampMicro))
				}
			}
		}
	}
	return nil
}

// movedOnly reports a revocation of a partition whose next owner was the
// member that revoked it: a member kept a partition yet was asked to give
// it up (cooperative rebalancing must not do that).
func (r *recorder) movedOnly() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rv := range r.revoked {
		var next *interval
		for _, iv := range r.owned[rv.p] {
			if !iv.start.Before(rv.at) && (next == nil || iv.start.Before(next.start)) {
				next = iv
			}
		}
		if next != nil && next.member == rv.member {
			return fmt.Errorf("%s revoked %s/%d and got it back: it should have kept it", rv.member, rv.p.topic, rv.p.p)
		}
	}
	return nil
}

type running struct {
	name   string
	m      *member.Member
	proxy  *cutproxy.Proxy
	cancel context.CancelFunc
	done   chan error
}

func (r *running) stop(t testing.TB) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("%s: Run: %v", r.name, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: Run did not return 30s after its context ended", r.name)
	}
}

// startMember runs a member of group g with the tests' short timeouts;
// opts change its configuration (withProtocol).
func startMember(t testing.TB, c *coordinatorProc, rec *recorder, name, instance string, assignors []assignor.Assignor, opts ...func(*member.Config)) *running {
	px := cutproxy.Start(t, func() string { return c.addr })
	cfg := member.Config{
		Endpoints:         []string{px.Addr()},
		Group:             "g",
		Topics:            []string{"orders"},
		InstanceID:        instance,
		Assignors:         assignors,
		SessionTimeout:    2 * time.Second,
		RebalanceTimeout:  5 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		SafetyMargin:      200 * time.Millisecond,
		ClientID:          name,
		Listener:          rec.listener(name),
		Logger:            quietLogger(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := member.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{name: name, m: m, proxy: px, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx) }()
	return r
}

// converged checks that the members own every partition of orders exactly
// once between them, that the group is Stable with them, and that the
// recorder saw no overlap.
func converged(admin regroupv1.AdminClient, rec *recorder, members []*running, partitions int32) error {
	if err := rec.check(); err != nil {
		return err
	}
	d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
	if err != nil {
		return err
	}
	if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != len(members) {
		return fmt.Errorf("group is %v with %d members, want Stable with %d", d.GetState(), len(d.GetMembers()), len(members))
	}
	owner := make([]string, partitions)
	for _, r := range members {
		for _, p := range r.m.Assignment() {
			if owner[p.Partition] != "" {
				return fmt.Errorf("partition %d owned by %s and %s", p.Partition, owner[p.Partition], r.name)
			}
			owner[p.Partition] = r.name
		}
	}
	var missing []int
	for p, o := range owner {
		if o == "" {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("partitions %v have no owner", missing)
	}
	return nil
}

// errTwoOwners marks a safety violation: waiting longer cannot fix it.
var errTwoOwners = fmt.Errorf("two owners (%w)", waitfor.ErrHopeless)

func lookupAll(t testing.TB, names ...string) []assignor.Assignor {
	var as []assignor.Assignor
	for _, n := range names {
		a, err := assignor.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	return as
}

// withProtocol sets a member's group protocol ("classic" or "next").
func withProtocol(protocol string) func(*member.Config) {
	return func(c *member.Config) { c.Protocol = protocol }
}

// TestOwnershipThroughFaults runs groups of 10 members over 64 partitions,
// eager and cooperative with the classic protocol and with the
// next-generation one (whose members the coordinator assigns), through
// joins one by one, a graceful leave, a member cut off from the
// coordinator (a crash, as the others see it), a member paused past its
// session timeout, and a coordinator restart. After each step every
// partition has exactly one owner, and at no recorded instant did two
// members own one.
func TestOwnershipThroughFaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		protocol  string
		assignors []string
	}{
		{"cooperative", "classic", []string{"cooperative-sticky"}},
		{"eager", "classic", []string{"sticky"}},
		{"next", "next", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const partitions = 64
			c := startCoordinator(t)
			admin := c.admin()
			if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: partitions}}); err != nil {
				t.Fatal(err)
			}
			rec := newRecorder()
			var live []*running
			for i := range 10 {
				live = append(live, startMember(t, c, rec, fmt.Sprintf("m%d", i), "", lookupAll(t, tc.assignors...), withProtocol(tc.protocol)))
				waitfor.Until(t, fmt.Sprintf("%d members converge", i+1), func() error { return converged(admin, rec, live, partitions) })
			}

			// m0 leaves gracefully.
			rec.mu.Lock()
			rec.stopping["m0"] = true
			rec.mu.Unlock()
			live[0].stop(t)
			live = live[1:]
			waitfor.Until(t, "after a graceful leave", func() error { return converged(admin, rec, live, partitions) })

			// m1 is cut off from the coordinator: it must self-fence, and
			// the others take its partitions after its session expires.
			cut := live[0]
			cut.proxy.Sever()
			live = live[1:]
			waitfor.Until(t, "after a member is cut off", func() error { return converged(admin, rec, live, partitions) })
			if a := cut.m.Assignment(); len(a) != 0 {
				t.Errorf("the cut-off member still believes it owns %v", a)
			}

			// m2 is paused past its session timeout, then resumes and rejoins.
			paused := live[0]
			paused.m.PauseForTest(4 * time.Second)
			waitfor.Until(t, "the paused member declares its partitions lost", func() error {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				if rec.lost[paused.name] == 0 {
					return fmt.Errorf("%s has declared nothing lost", paused.name)
				}
				return nil
			})
			waitfor.Until(t, "after a pause past the session timeout", func() error { return converged(admin, rec, live, partitions) })

			// The members that lost partitions reported them when they
			// rejoined (the cut-off member never could): the coordinator
			// counted each once, in its metrics and in the history.
			waitfor.Until(t, "the coordinator counts the partitions members declared lost", func() error {
				want := rec.lostExcept(cut.name)
				var got int64
				for _, st := range c.srv.GroupStats() {
					got += st.PartitionsLost
				}
				d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
				if err != nil {
					return err
				}
				var inHistory int32
				for _, r := range d.GetRebalances() {
					inHistory += r.GetPartitionsLost()
				}
				if got != want || inHistory == 0 {
					return fmt.Errorf("the coordinator counts %d lost partitions (%d in its history), the members declared %d", got, inHistory, want)
				}
				return nil
			})

			// The coordinator restarts; the members ride through.
			c.restart()
			waitfor.Until(t, "after a coordinator restart", func() error { return converged(admin, rec, live, partitions) })

			if tc.name != "eager" {
				if err := rec.movedOnly(); err != nil {
					t.Error(err)
				}
			}
			for _, r := range live {
				rec.mu.Lock()
				rec.stopping[r.name] = true
				rec.mu.Unlock()
				r.stop(t)
			}
			cut.cancel()
			<-cut.done
			if err := rec.check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestStaticRollingRestart restarts ten static members one at a time,
// with either protocol: each new process takes its predecessor's place and
// partitions with no rebalance, and no other member revokes anything.
func TestStaticRollingRestart(t *testing.T) {
	for _, protocol := range []string{"classic", "next"} {
		t.Run(protocol, func(t *testing.T) { staticRollingRestart(t, protocol) })
	}
}

func staticRollingRestart(t *testing.T, protocol string) {
	const partitions = 64
	c := startCoordinator(t)
	admin := c.admin()
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: partitions}}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	var assignors []assignor.Assignor // a next-generation group is assigned by the coordinator
	if protocol == "classic" {
		assignors = lookupAll(t, "cooperative-sticky")
	}
	var live []*running
	for i := range 10 {
		live = append(live, startMember(t, c, rec, fmt.Sprintf("p%d", i), fmt.Sprintf("i%d", i), assignors, withProtocol(protocol)))
	}
	waitfor.Until(t, "ten static members converge", func() error { return converged(admin, rec, live, partitions) })
	d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
	if err != nil {
		t.Fatal(err)
	}
	gen := d.GetGeneration()
	before := map[string][]member.Partition{}
	for i, r := range live {
		before[fmt.Sprintf("i%d", i)] = stripTokens(r.m.Assignment())
	}
	rec.mu.Lock()
	revokesBefore := rec.revokes
	rec.mu.Unlock()

	for i := range live {
		old := live[i]
		rec.mu.Lock()
		rec.stopping[old.name] = true
		rec.mu.Unlock()
		old.stop(t)
		rec.mu.Lock()
		revokesBefore += len(before[fmt.Sprintf("i%d", i)]) // the stopping process revokes its own
		rec.mu.Unlock()
		live[i] = startMember(t, c, rec, fmt.Sprintf("p%d'", i), fmt.Sprintf("i%d", i), assignors, withProtocol(protocol))
		waitfor.Until(t, fmt.Sprintf("restart of i%d", i), func() error { return converged(admin, rec, live, partitions) })
	}
	d, err = admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if d.GetGeneration() != gen {
		t.Errorf("generation moved from %d to %d during the rolling restart: it rebalanced", gen, d.GetGeneration())
	}
	for i, r := range live {
		if got, want := stripTokens(r.m.Assignment()), before[fmt.Sprintf("i%d", i)]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("instance i%d: assignment %v after its restart, %v before", i, got, want)
		}
	}
	rec.mu.Lock()
	if rec.revokes != revokesBefore {
		t.Errorf("%d partitions were revoked by members that did not restart", rec.revokes-revokesBefore)
	}
	rec.mu.Unlock()
	for _, r := range live {
		r.stop(t)
	}
	if err := rec.check(); err != nil {
		t.Error(err)
	}
}

func stripTokens(ps []member.Partition) []member.Partition {
	out := make([]member.Partition, len(ps))
	for i, p := range ps {
		out[i] = member.Partition{Topic: p.Topic, Partition: p.Partition}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out
}
