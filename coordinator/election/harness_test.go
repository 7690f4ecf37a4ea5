package election_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/election"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// startEtcd starts an embedded etcd cluster of n members in t's temporary
// directory, closed when t ends.
func startEtcd(t testing.TB, n int) []*embedetcd.Node {
	t.Helper()
	dir := t.TempDir()
	cfgs := make([]embedetcd.Config, n)
	for i := range cfgs {
		cfgs[i] = embedetcd.Config{Dir: filepath.Join(dir, fmt.Sprint("etcd", i)), Name: fmt.Sprint("etcd", i)}
	}
	nodes, err := embedetcd.StartCluster(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Close()
		}
	})
	return nodes
}

func testLogger(t testing.TB, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Info, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func groupConfig() group.Config {
	cfg := group.DefaultConfig()
	cfg.MinSessionTimeout = 500 * time.Millisecond
	cfg.InitialRebalanceDelay = 0
	return cfg
}

// recordingElector remembers the terms it won, so that a test can try to
// write with a deposed term.
type recordingElector struct {
	*election.Elector
	mu    sync.Mutex
	terms []coordinator.Term
}

func (r *recordingElector) Campaign(ctx context.Context, address string) (coordinator.Term, error) {
	t, err := r.Elector.Campaign(ctx, address)
	if err == nil {
		r.mu.Lock()
		r.terms = append(r.terms, t)
		r.mu.Unlock()
	}
	return t, err
}

func (r *recordingElector) lastTerm() coordinator.Term {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.terms) == 0 {
		return nil
	}
	return r.terms[len(r.terms)-1]
}

// coord is one `regroup serve` process: its own etcd client, elector,
// coordinator and gRPC server on a loopback port.
type coord struct {
	name    string
	addr    string
	cli     *clientv3.Client
	elector *recordingElector
	srv     *coordinator.Server
	gs      *grpc.Server
	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
}

func startCoord(t testing.TB, name string, endpoints []string, ttl time.Duration) *coord {
	t.Helper()
	return startCoordOn(t, name, "127.0.0.1:0", endpoints, ttl)
}

func startCoordOn(t testing.TB, name, addr string, endpoints []string, ttl time.Duration) *coord {
	t.Helper()
	c, err := tryStartCoord(t, name, addr, endpoints, coordOpts{ttl: ttl, log: testLogger(t, name)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// coordOpts configure a coordinator of a test.
type coordOpts struct {
	ttl     time.Duration
	log     hclog.Logger
	metrics coordinator.Metrics
}

// tryStartCoord starts a coordinator listening on addr; it fails only if it
// cannot listen there.
func tryStartCoord(t testing.TB, name, addr string, endpoints []string, o coordOpts) (*coord, error) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	cli, err := etcdstore.NewClient(endpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	el, err := election.New(election.Config{Client: cli, TTL: o.ttl, Logger: o.log})
	if err != nil {
		t.Fatal(err)
	}
	c := &coord{name: name, addr: lis.Addr().String(), cli: cli, elector: &recordingElector{Elector: el}, done: make(chan struct{})}
	c.srv, err = coordinator.NewElected(coordinator.Config{Group: groupConfig(), Logger: o.log, Address: c.addr, Metrics: o.metrics}, c.elector)
	if err != nil {
		t.Fatal(err)
	}
	c.gs = grpc.NewServer()
	c.srv.Register(c.gs)
	go func() { _ = c.gs.Serve(lis) }()
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		_ = c.srv.Run(ctx)
	}()
	t.Cleanup(c.stop)
	return c, nil
}

// stop shuts the coordinator down gracefully: it answers parked requests,
// resigns, and stops.
func (c *coord) stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	c.srv.Close()
	c.cancel()
	<-c.done
	c.gs.Stop()
	c.elector.Close()
	c.cli.Close()
}

// crash stops the coordinator as SIGKILL would: connections drop, nothing
// is answered, and its lease is left to expire in etcd.
func (c *coord) crash() {
	c.stopped = true
	election.HoldKeepAlives(c.elector.Elector, true)
	c.gs.Stop()
	c.cancel()
	<-c.done
	c.elector.Close()
	c.cli.Close()
}

// waitLeader waits until exactly one of cs leads and returns it.
func waitLeader(t testing.TB, cs ...*coord) *coord {
	t.Helper()
	var leader *coord
	waitfor.Until(t, "one coordinator leads", func() error {
		leader = nil
		for _, c := range cs {
			if !c.stopped && c.srv.Leading() {
				if leader != nil {
					return fmt.Errorf("%s and %s both lead", leader.name, c.name)
				}
				leader = c
			}
		}
		if leader == nil {
			return errors.New("none leads")
		}
		return nil
	})
	return leader
}

// dial connects to a coordinator. Reconnections back off to at most
// 500 ms: a coordinator restarted at the address of a dead one is reached
// at once, as a member library that caps its backoff would.
func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond,
		}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// router sends a member's calls to the coordinator that leads: it follows
// NOT_COORDINATOR to the address in its metadata, and tries the next
// endpoint when a coordinator is unavailable.
type router struct {
	mu      sync.Mutex
	addrs   []string
	clients map[string]regroupv1.CoordinatorClient
	target  string
}

func newRouter(t testing.TB, addrs []string) *router {
	clients := map[string]regroupv1.CoordinatorClient{}
	for _, a := range addrs {
		clients[a] = regroupv1.NewCoordinatorClient(dial(t, a))
	}
	return sharedRouter(addrs, clients)
}

// sharedRouter is a router over clients that other routers use too.
func sharedRouter(addrs []string, clients map[string]regroupv1.CoordinatorClient) *router {
	return &router{addrs: addrs, clients: clients, target: addrs[0]}
}

func (r *router) current() (string, regroupv1.CoordinatorClient) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.target, r.clients[r.target]
}

func (r *router) redirect(from, to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.target != from {
		return
	}
	if to == "" || r.clients[to] == nil {
		i := slices.Index(r.addrs, from)
		to = r.addrs[(i+1)%len(r.addrs)]
	}
	r.target = to
}

// call runs f against the leader until it gets an answer that is not a
// redirection, or ctx ends, backing off from 10 ms to 160 ms between
// tries. It returns the address that answered.
func (r *router) call(ctx context.Context, f func(regroupv1.CoordinatorClient) error) (string, error) {
	wait := 10 * time.Millisecond
	for {
		addr, c := r.current()
		err := rpcerr.FromStatus(f(c))
		if err == nil {
			return addr, nil
		}
		if ctx.Err() != nil {
			return addr, ctx.Err()
		}
		var e *regroup.Error
		switch {
		case errors.As(err, &e) && e.Code == regroup.CodeNotCoordinator:
			r.redirect(addr, e.Metadata[regroup.MetaLeader])
		case errors.As(err, &e) && e.Code == regroup.CodeCoordinatorNotAvailable,
			e == nil && status.Code(err) == codes.Unavailable:
			r.redirect(addr, "")
		default:
			return addr, err
		}
		select {
		case <-ctx.Done():
			return addr, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 160*time.Millisecond)
	}
}

// ownership records, from the members' side, for one group, who owned which partition
// when: from the receipt of the assignment until the member revoked it, or
// until its own lease ended (the send time of its last successful call
// plus its session timeout), whichever came first.
type ownership struct {
	mu    sync.Mutex
	spans map[int32][]span
}

type span struct {
	member   string
	from, to time.Time // to is zero while owned
}

func newOwnership() *ownership { return &ownership{spans: map[int32][]span{}} }

func (o *ownership) acquire(member string, parts []int32, at time.Time) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range parts {
		o.spans[p] = append(o.spans[p], span{member: member, from: at})
	}
}

// release ends member's open spans at at.
func (o *ownership) release(member string, at time.Time) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for p, ss := range o.spans {
		for i := range ss {
			if ss[i].member == member && ss[i].to.IsZero() {
				o.spans[p][i].to = at
			}
		}
	}
}

// check returns an error if a partition ever had two owners at once.
func (o *ownership) check() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	far := time.Now().Add(time.Hour)
	for p, ss := range o.spans {
		ss = slices.Clone(ss)
		sort.Slice(ss, func(i, j int) bool { return ss[i].from.Before(ss[j].from) })
		for i := 1; i < len(ss); i++ {
			prevEnd := ss[i-1].to
			if prevEnd.IsZero() {
				prevEnd = far
			}
			if ss[i].from.Before(prevEnd) && ss[i].member != ss[i-1].member {
				return fmt.Errorf("partition %d owned by %s (from %v to %v) and %s (from %v)",
					p, ss[i-1].member, ss[i-1].from.Format(time.StampMicro), ss[i-1].to.Format(time.StampMicro),
					ss[i].member, ss[i].from.Format(time.StampMicro))
			}
		}
	}
	return nil
}

// member speaks the group protocol directly, through a router: an eager
// member that revokes everything before rejoining, with a held heartbeat
// always in flight, whose leader assigns the topic's partitions
// round-robin. It keeps its own lease: when no call has succeeded for a
// session timeout since it was sent, it considers its partitions lost.
type member struct {
	name    string
	group   string
	topic   string
	session time.Duration
	r       *router
	own     *ownership // nil: not recorded

	// observe, if set before the member runs, is called with the send
	// time and the answering coordinator of every successful call.
	observe func(sent time.Time, addr string)

	pause chan chan struct{} // a receive parks the member until the inner channel closes

	mu         sync.Mutex
	id         string
	generation int32
	assignment []int32
	lastOK     time.Time // send time of the last successful call
	lastAddr   string    // the coordinator that answered it
	syncs      int       // assignments received
	errs       []error   // failed calls other than redirections
}

func newMember(name, groupID, topic string, session time.Duration, r *router, own *ownership) *member {
	return &member{name: name, group: groupID, topic: topic, session: session, r: r, own: own, pause: make(chan chan struct{})}
}

type memberState struct {
	id         string
	generation int32
	assignment []int32
	lastOK     time.Time
	lastAddr   string
	syncs      int
}

func (m *member) state() memberState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return memberState{m.id, m.generation, m.assignment, m.lastOK, m.lastAddr, m.syncs}
}

func (m *member) ok(sent time.Time, addr string) {
	if m.observe != nil {
		m.observe(sent, addr)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if sent.After(m.lastOK) {
		m.lastOK = sent
	}
	m.lastAddr = addr
}

func (m *member) failed(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errs = append(m.errs, err)
}

// takeErrors returns the errors seen since the last call.
func (m *member) takeErrors() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := m.errs
	m.errs = nil
	return errs
}

// leaseEnd is when the member's lease ends unless a call succeeds.
func (m *member) leaseEnd() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastOK.Add(m.session)
}

// revoke gives up the member's partitions at at.
func (m *member) revoke(at time.Time) {
	m.mu.Lock()
	m.assignment = nil
	m.mu.Unlock()
	m.own.release(m.name, at)
}

// run keeps the member in the group until ctx ends, then stops as a crashed
// member would: it leaves nothing, and its partitions stay its own until its
// lease ends.
func (m *member) run(ctx context.Context) {
	defer func() { m.own.release(m.name, m.leaseEnd()) }()
	for ctx.Err() == nil {
		if err := m.joinAndSync(ctx); err != nil {
			if ctx.Err() == nil {
				m.failed(err)
				time.Sleep(20 * time.Millisecond)
			}
			continue
		}
		m.heartbeat(ctx)
	}
}

func (m *member) joinAndSync(ctx context.Context) error {
	m.revoke(time.Now())
	m.mu.Lock()
	id := m.id
	m.mu.Unlock()
	req := &regroupv1.JoinGroupRequest{
		GroupId: m.group, MemberId: id, ClientId: m.name,
		SessionTimeoutMs: m.session.Milliseconds(), RebalanceTimeoutMs: (5 * m.session).Milliseconds(),
		Protocols: []*regroupv1.Protocol{{Name: "roundrobin", Subscription: &regroupv1.Subscription{Topics: []string{m.topic}, Generation: -1}}},
	}
	var resp *regroupv1.JoinGroupResponse
	sent := time.Now()
	addr, err := m.r.call(ctx, func(c regroupv1.CoordinatorClient) (err error) {
		sent = time.Now()
		resp, err = c.JoinGroup(ctx, req)
		return err
	})
	if errors.Is(err, regroup.ErrMemberIDRequired) {
		var e *regroup.Error
		errors.As(err, &e)
		req.MemberId = e.Metadata[regroup.MetaMemberID]
		addr, err = m.r.call(ctx, func(c regroupv1.CoordinatorClient) (err error) {
			sent = time.Now()
			resp, err = c.JoinGroup(ctx, req)
			return err
		})
	}
	if errors.Is(err, regroup.ErrUnknownMemberID) {
		m.mu.Lock()
		m.id = ""
		m.mu.Unlock()
	}
	if err != nil {
		return err
	}
	m.ok(sent, addr)
	m.mu.Lock()
	m.id = resp.GetMemberId()
	m.mu.Unlock()
	sreq := &regroupv1.SyncGroupRequest{GroupId: m.group, MemberId: resp.GetMemberId(), Generation: resp.GetGeneration()}
	if resp.GetMemberId() == resp.GetLeaderId() && !resp.GetSkipAssignment() {
		sreq.Assignments = roundRobin(resp)
	}
	var sresp *regroupv1.SyncGroupResponse
	addr, err = m.r.call(ctx, func(c regroupv1.CoordinatorClient) (err error) {
		sent = time.Now()
		sresp, err = c.SyncGroup(ctx, sreq)
		return err
	})
	if err != nil {
		return err
	}
	var parts []int32
	for _, tp := range sresp.GetAssignment().GetPartitions() {
		parts = append(parts, tp.GetPartitions()...)
	}
	now := time.Now()
	m.ok(sent, addr)
	m.own.acquire(m.name, parts, now)
	m.mu.Lock()
	m.id, m.generation, m.assignment = resp.GetMemberId(), resp.GetGeneration(), parts
	m.syncs++
	m.mu.Unlock()
	return nil
}

// heartbeat heartbeats until a rebalance, or until the member's lease ends
// without a successful heartbeat.
func (m *member) heartbeat(ctx context.Context) {
	for ctx.Err() == nil {
		select {
		case resume := <-m.pause:
			select {
			case <-resume:
			case <-ctx.Done():
				return
			}
		default:
		}
		end := m.leaseEnd()
		if !time.Now().Before(end) {
			m.failed(fmt.Errorf("%s: lease lost: no call succeeded for a session timeout", m.name))
			m.revoke(end)
			return
		}
		st := m.state()
		lctx, cancel := context.WithDeadline(ctx, end)
		var sent time.Time
		addr, err := m.r.call(lctx, func(c regroupv1.CoordinatorClient) error {
			sent = time.Now()
			// A held reply must come back while the lease still runs.
			hold := max(0, min(m.session/3, end.Sub(sent)-m.session/5))
			_, err := c.Heartbeat(lctx, &regroupv1.HeartbeatRequest{
				GroupId: m.group, MemberId: st.id, Generation: st.generation, HoldMs: hold.Milliseconds(),
			})
			return err
		})
		leaseOver := lctx.Err() != nil
		cancel()
		if err == nil {
			m.ok(sent, addr)
			continue
		}
		if ctx.Err() != nil || leaseOver {
			continue // the lease check above decides
		}
		if !errors.Is(err, regroup.ErrRebalanceInProgress) {
			m.failed(err)
		}
		return // rebalance or removal: rejoin
	}
}

// roundRobin assigns every partition of every topic to the subscribed
// members in member id order.
func roundRobin(resp *regroupv1.JoinGroupResponse) []*regroupv1.MemberAssignment {
	members := resp.GetMembers()
	plan := make([]*regroupv1.MemberAssignment, len(members))
	for i, m := range members {
		plan[i] = &regroupv1.MemberAssignment{MemberId: m.GetMemberId(), Assignment: &regroupv1.Assignment{}}
	}
	for _, t := range resp.GetTopics() {
		tps := make([]*regroupv1.TopicPartitions, len(members))
		for p := range t.GetPartitions() {
			i := int(p) % len(members)
			if tps[i] == nil {
				tps[i] = &regroupv1.TopicPartitions{Topic: t.GetName()}
				plan[i].Assignment.Partitions = append(plan[i].Assignment.Partitions, tps[i])
			}
			tps[i].Partitions = append(tps[i].Partitions, p)
		}
	}
	return plan
}
