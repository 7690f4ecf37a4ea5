package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/cluster"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	"github.com/regroup-dev/regroup/internal/waitfor"
	memberlib "github.com/regroup-dev/regroup/member"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

const (
	shards     = 8
	ttl        = 2 * time.Second
	partitions = 16
	groups     = 12
	session    = 10 * time.Second
)

// proc is one coordinator process of the cluster: its own etcd client,
// Process and gRPC server on a loopback port.
type proc struct {
	name string
	addr string
	p    *cluster.Process
	gs   *grpc.Server
	done chan struct{}
	gone bool
}

func startProc(t *testing.T, name string, eps []string, limits ...func(*group.Config)) *proc {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := etcdstore.NewClient(eps, nil)
	if err != nil {
		t.Fatal(err)
	}
	gcfg := group.DefaultConfig()
	gcfg.MinSessionTimeout = 500 * time.Millisecond
	gcfg.InitialRebalanceDelay = 0
	for _, l := range limits {
		l(&gcfg)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: testWriter{t}})
	pr := &proc{name: name, addr: lis.Addr().String(), gs: grpc.NewServer(), done: make(chan struct{})}
	pr.p, err = cluster.New(cluster.Config{Client: cli, Shards: shards, TTL: ttl, Logger: log,
		Server: coordinator.Config{Group: gcfg, Logger: log, Address: pr.addr}})
	if err != nil {
		t.Fatal(err)
	}
	pr.p.Register(pr.gs)
	go func() { _ = pr.gs.Serve(lis) }()
	go func() {
		defer close(pr.done)
		_ = pr.p.Run(context.Background())
	}()
	t.Cleanup(func() {
		pr.stop()
		cli.Close()
	})
	return pr
}

// stop leaves the cluster gracefully, as SIGTERM does.
func (pr *proc) stop() {
	if pr.gone {
		return
	}
	pr.gone = true
	pr.p.Close()
	<-pr.done
	pr.gs.Stop()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

// placed waits until every shard is led by exactly one of ps, each
// leading its share (shards/len(ps), or one more), and returns who leads
// each shard.
func placed(t *testing.T, ps ...*proc) []string {
	t.Helper()
	var leaders []string
	waitfor.Until(t, fmt.Sprintf("%d coordinators lead their share of %d shards", len(ps), shards), func() error {
		leaders = make([]string, shards)
		for _, pr := range ps {
			led := pr.p.Led()
			if n := len(led); n < shards/len(ps) || n > (shards+len(ps)-1)/len(ps) {
				return fmt.Errorf("%s leads %d shards (%v)", pr.name, n, led)
			}
			for _, i := range led {
				if leaders[i] != "" {
					return fmt.Errorf("shard %d is led by %s and %s", i, leaders[i], pr.name)
				}
				leaders[i] = pr.name
			}
		}
		if i := slices.Index(leaders, ""); i >= 0 {
			return fmt.Errorf("shard %d has no leader", i)
		}
		return nil
	})
	return leaders
}

// recorder notes what the member libraries report, per group.
type recorder struct {
	mu      sync.Mutex
	owners  map[string]map[int32]string // group -> partition -> member
	lost    int
	overlap []string
}

func (r *recorder) listener(grp, name string) memberlib.Listener {
	return memberlib.ListenerFuncs{
		Assigned: func(_ context.Context, ps []memberlib.Partition) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, p := range ps {
				if o := r.owners[grp][p.Partition]; o != "" && o != name {
					r.overlap = append(r.overlap, fmt.Sprintf("%s partition %d assigned to %s while %s owns it", grp, p.Partition, name, o))
				}
				r.owners[grp][p.Partition] = name
			}
		},
		Revoked: func(_ context.Context, ps []memberlib.Partition) { r.release(grp, name, ps, false) },
		Lost:    func(_ context.Context, ps []memberlib.Partition) { r.release(grp, name, ps, true) },
	}
}

func (r *recorder) release(grp, name string, ps []memberlib.Partition, lost bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ps {
		if r.owners[grp][p.Partition] == name {
			delete(r.owners[grp], p.Partition)
		}
	}
	if lost {
		r.lost += len(ps)
	}
}

// owned checks that every group owns every partition once.
func (r *recorder) owned() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.overlap) > 0 {
		return fmt.Errorf("%w: two owners: %v", waitfor.ErrHopeless, r.overlap)
	}
	for g, o := range r.owners {
		if len(o) != partitions {
			return fmt.Errorf("group %s owns %d of %d partitions", g, len(o), partitions)
		}
	}
	return nil
}

func dialAdmin(t *testing.T, addr string) regroupv1.AdminClient {
	return regroupv1.NewAdminClient(dial(t, addr))
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// generations returns every group's generation, asked of admin (which
// forwards to each shard's leader), once every group is Stable with two
// members that heartbeated its coordinator after since: their session
// deadlines there are past since plus a session.
func generations(t *testing.T, admin regroupv1.AdminClient, since time.Time) map[string]int32 {
	t.Helper()
	gens := map[string]int32{}
	waitfor.Until(t, "every group is Stable with its two members, heartbeating its coordinator", func() error {
		for i := range groups {
			id := fmt.Sprint("group-", i)
			d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: id})
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != 2 {
				return fmt.Errorf("%s is %v with %d members", id, d.GetState(), len(d.GetMembers()))
			}
			for _, m := range d.GetMembers() {
				if !m.GetSessionDeadline().AsTime().After(since.Add(session)) {
					return fmt.Errorf("%s: member %s has not heartbeated its coordinator since %v", id, m.GetMemberId(), since.Format(time.StampMilli))
				}
			}
			gens[id] = d.GetGeneration()
		}
		return nil
	})
	return gens
}

// TestShardsSpreadAndMoveWithoutLoss runs a cluster of 8 shards over three
// coordinators on one etcd, with 12 groups of two real member libraries.
// Each coordinator leads its share of the shards; a fourth joins and takes
// its share, then one leaves gracefully: the fewest shards move, each by a
// handover that costs no member its lease and no group a rebalance.
func TestShardsSpreadAndMoveWithoutLoss(t *testing.T) {
	node, err := embedetcd.Start(embedetcd.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Close)
	eps := []string{node.Endpoint()}
	ps := []*proc{startProc(t, "a", eps), startProc(t, "b", eps), startProc(t, "c", eps)}
	before := placed(t, ps...)
	admin := dialAdmin(t, ps[0].addr)
	waitfor.Until(t, "the topic is created", func() error {
		_, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: partitions}})
		return err
	})

	a, err := assignor.Lookup("cooperative-sticky")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{owners: map[string]map[int32]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	endpoints := []string{ps[0].addr, ps[1].addr, ps[2].addr}
	for i := range groups {
		grp := fmt.Sprint("group-", i)
		rec.owners[grp] = map[int32]string{}
		for j := range 2 {
			name := fmt.Sprintf("%s/m%d", grp, j)
			m, err := memberlib.New(memberlib.Config{
				Endpoints: endpoints, Group: grp, Topics: []string{"orders"}, Assignors: []assignor.Assignor{a},
				SessionTimeout: session, RebalanceTimeout: 10 * time.Second, HeartbeatInterval: time.Second,
				ClientID: name, Listener: rec.listener(grp, name),
				Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard}),
			})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := m.Run(ctx); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}()
		}
	}
	// The baseline once every partition is owned: a cooperative group is
	// Stable with partitions unowned between its two rebalances.
	waitfor.Until(t, "every group owns every partition", rec.owned)
	gens := generations(t, admin, time.Time{})

	// Each coordinator describes every shard, asking the others: every
	// group and member once.
	for _, pr := range ps {
		d, err := dialAdmin(t, pr.addr).DescribeCluster(context.Background(), &regroupv1.DescribeClusterRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var described, members int32
		for _, sh := range d.GetShards() {
			if !sh.GetCounted() {
				t.Errorf("%s: shard %d (led by %s) not counted", pr.name, sh.GetShard(), sh.GetLeaderAddress())
			}
			described += sh.GetGroups()
			members += sh.GetMembers()
		}
		if described != groups || members != 2*groups {
			t.Errorf("%s describes %d groups and %d members, want %d and %d", pr.name, described, members, groups, 2*groups)
		}
	}

	list, err := admin.ListGroups(context.Background(), &regroupv1.ListGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetGroups()) != groups {
		t.Errorf("ListGroups on one coordinator lists %d groups, want all %d of the cluster", len(list.GetGroups()), groups)
	}

	// A fourth coordinator joins: it takes two shards, the fewest moves.
	// Meanwhile groups list, asked again and again, lists every group or
	// fails: never some of them.
	joined := time.Now()
	listing := listWhileMoving(admin)
	ps = append(ps, startProc(t, "d", eps))
	after := placed(t, ps...)
	if full, failed, partial := listing(); partial != "" {
		t.Errorf("ListGroups during a handover: %s (%d full listings, %d failed)", partial, full, failed)
	} else {
		t.Logf("ListGroups during a handover: %d full listings, %d failed", full, failed)
	}
	if moved := countMoved(before, after); moved != shards/4 {
		t.Errorf("%d shards moved when a fourth coordinator joined, want %d: %v -> %v", moved, shards/4, before, after)
	}
	checkNoLoss(t, rec, admin, gens, joined)

	// One leaves gracefully: its two shards move to the others.
	left := time.Now()
	ps[1].stop()
	final := placed(t, ps[0], ps[2], ps[3])
	if moved := countMoved(after, final); moved != 2 {
		t.Errorf("%d shards moved when b left, want its 2: %v -> %v", moved, after, final)
	}
	checkNoLoss(t, rec, admin, gens, left)
}

func countMoved(before, after []string) int {
	n := 0
	for i := range before {
		if before[i] != after[i] {
			n++
		}
	}
	return n
}

// checkNoLoss checks, once every member heartbeated its coordinator after
// since, that no member lost a partition, every group still owns every
// partition, and no group rebalanced since gens.
func checkNoLoss(t *testing.T, rec *recorder, admin regroupv1.AdminClient, gens map[string]int32, since time.Time) {
	t.Helper()
	now := generations(t, admin, since)
	for id, g := range gens {
		if now[id] != g {
			t.Errorf("group %s rebalanced: generation %d -> %d", id, g, now[id])
		}
	}
	if err := rec.owned(); err != nil {
		t.Error(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.lost > 0 {
		t.Errorf("members declared %d partitions lost", rec.lost)
	}
}

// listWhileMoving lists the groups through admin until the returned
// function is called, which reports how many listings were whole, how many
// failed, and the first that was neither.
func listWhileMoving(admin regroupv1.AdminClient) func() (full, failed int, partial string) {
	stop, done := make(chan struct{}), make(chan struct{})
	var full, failed int
	var partial string
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			list, err := admin.ListGroups(ctx, &regroupv1.ListGroupsRequest{})
			cancel()
			switch {
			case err != nil:
				failed++
			case len(list.GetGroups()) == groups:
				full++
			case partial == "":
				partial = fmt.Sprintf("%d groups of %d listed", len(list.GetGroups()), groups)
			}
		}
	}()
	return func() (int, int, string) {
		close(stop)
		<-done
		return full, failed, partial
	}
}
