package election_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	"github.com/regroup-dev/regroup/internal/waitfor"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// The benchmarks run etcd (embedded, fsync on, data in the temporary
// directory), the coordinators and the members in one process on this
// machine; docs/benchmarks.md records the machine and the numbers.
//
//	go test ./coordinator/election -run '^$' -bench Failover -benchtime 5x -timeout 30m
//	go test ./coordinator/election -run '^$' -bench 'Recovery|Writes' -count 5

// median returns the median of ds.
func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkFailover kills the leader of three coordinators (three etcd
// members) serving 100 Stable groups of 10 members, and measures the time
// until every member has had a heartbeat accepted by the new leader (the
// send time of its first successful call after the kill). Each iteration
// is one failover; a new coordinator replaces the killed one.
func BenchmarkFailover(b *testing.B) {
	for _, ttl := range []time.Duration{2 * time.Second, 5 * time.Second} {
		b.Run(fmt.Sprintf("ttl=%v", ttl), func(b *testing.B) { benchFailover(b, ttl) })
	}
}

// failoverRound collects, for one kill, each member's first successful
// call on a live coordinator.
type failoverRound struct {
	at    time.Time
	dead  string
	mu    sync.Mutex
	first map[*member]time.Time
}

func benchFailover(b *testing.B, ttl time.Duration) {
	const groups, perGroup = 100, 10
	eps := embedetcd.Endpoints(startEtcd(b, 3))
	cs := []*coord{startQuietCoord(b, "c0", eps, ttl), startQuietCoord(b, "c1", eps, ttl), startQuietCoord(b, "c2", eps, ttl)}
	leader := waitLeader(b, cs...)
	putTopic(b, adminOf(b, leader))
	var addrs []string
	clients := map[string]regroupv1.CoordinatorClient{}
	for _, c := range cs {
		addrs = append(addrs, c.addr)
		clients[c.addr] = regroupv1.NewCoordinatorClient(dial(b, c.addr))
	}
	var round atomic.Pointer[failoverRound]
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	var members []*member
	for g := range groups {
		for i := range perGroup {
			m := newMember(fmt.Sprintf("g%d-m%d", g, i), fmt.Sprint("g", g), "orders", ttl+10*time.Second, sharedRouter(addrs, clients), nil)
			m.observe = func(sent time.Time, addr string) {
				r := round.Load()
				if r == nil || addr == r.dead || !sent.After(r.at) {
					return
				}
				r.mu.Lock()
				if _, ok := r.first[m]; !ok {
					r.first[m] = sent
				}
				r.mu.Unlock()
			}
			members = append(members, m)
			wg.Add(1)
			go func() { defer wg.Done(); m.run(ctx) }()
		}
	}
	waitfor.Until(b, "100 Stable groups of 10", func() error { return allStable(adminOf(b, leader), members, groups, perGroup) })

	var took []time.Duration
	b.ResetTimer()
	for i := range b.N {
		r := &failoverRound{at: time.Now(), dead: leader.addr, first: map[*member]time.Time{}}
		round.Store(r)
		leader.crash()
		waitfor.Until(b, "every member heartbeats the new leader", func() error {
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.first) < len(members) {
				return fmt.Errorf("%d of %d members", len(r.first), len(members))
			}
			return nil
		})
		var last time.Time
		for _, t := range r.first {
			if t.After(last) {
				last = t
			}
		}
		took = append(took, last.Sub(r.at))
		b.StopTimer()
		// Replace the dead coordinator, at its address, so that members'
		// endpoint lists stay valid.
		live := []*coord{}
		for _, c := range cs {
			if !c.stopped {
				live = append(live, c)
			}
		}
		leader = waitLeader(b, live...)
		cs = append(live, startQuietCoordAt(b, fmt.Sprint("r", i), r.dead, eps, ttl))
		waitfor.Until(b, "100 Stable groups of 10", func() error { return allStable(adminOf(b, leader), members, groups, perGroup) })
		b.StartTimer()
	}
	b.StopTimer()
	m := median(took)
	b.ReportMetric(m.Seconds(), "failover-s")
	b.ReportMetric((m - ttl).Seconds(), "beyond-ttl-s")
	b.ReportMetric(0, "ns/op")
}

// allStable checks that every group is Stable with perGroup members, and
// that every member is in its group's generation.
func allStable(admin regroupv1.AdminClient, members []*member, groups, perGroup int) error {
	l, err := admin.ListGroups(context.Background(), &regroupv1.ListGroupsRequest{})
	if err != nil {
		return err
	}
	gen := map[string]int32{}
	for _, g := range l.GetGroups() {
		if g.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || g.GetMembers() != int32(perGroup) {
			return fmt.Errorf("group %s is %v with %d members", g.GetGroupId(), g.GetState(), g.GetMembers())
		}
		gen[g.GetGroupId()] = g.GetGeneration()
	}
	if len(gen) != groups {
		return fmt.Errorf("%d groups", len(gen))
	}
	for _, m := range members {
		if st := m.state(); st.generation != gen[m.group] || st.syncs == 0 {
			return fmt.Errorf("%s is at generation %d, its group at %d", m.name, st.generation, gen[m.group])
		}
	}
	return nil
}

func quietLogger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard})
}

func startQuietCoord(b *testing.B, name string, eps []string, ttl time.Duration) *coord {
	return startQuietCoordAt(b, name, "127.0.0.1:0", eps, ttl)
}

func startQuietCoordAt(b *testing.B, name, addr string, eps []string, ttl time.Duration) *coord {
	b.Helper()
	var c *coord
	waitfor.Until(b, "the address is free", func() error {
		var err error
		c, err = tryStartCoord(b, name, addr, eps, coordOpts{ttl: ttl, log: quietLogger()})
		return err
	})
	return c
}

// startMemCoord serves a coordinator over st on a loopback port and returns
// its address.
func startMemCoord(b *testing.B, st store.Store) string {
	b.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := coordinator.New(context.Background(), coordinator.Config{Group: groupConfig(), Logger: quietLogger()}, st)
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	b.Cleanup(func() { srv.Close(); gs.Stop() })
	return lis.Addr().String()
}

// sampleRecord forms one group of 10 members on a coordinator over the
// memory store and returns its stored record.
func sampleRecord(b *testing.B) *storev1.GroupRecord {
	b.Helper()
	d := &memstore.Data{}
	ts := startMemCoord(b, d.Open())
	putTopic(b, regroupv1.NewAdminClient(dial(b, ts)))
	f := newFleet(b, ts)
	f.own = nil
	formGroup(b, f, regroupv1.NewAdminClient(dial(b, ts)), 10)
	f.stop()
	snap, err := d.Open().Load(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return snap.Groups[0]
}

// fill writes n copies of rec, as groups g0..g(n-1), in batches.
func fill(b *testing.B, cli *clientv3.Client, rec *storev1.GroupRecord, n int) {
	b.Helper()
	var ops []clientv3.Op
	flush := func() {
		if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		r := proto.CloneOf(rec)
		r.GroupId = fmt.Sprint("g", i)
		v, err := proto.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops, clientv3.OpPut(etcdstore.GroupsPrefix(etcdstore.DefaultPrefix)+r.GroupId, string(v)))
		if len(ops) == 100 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
	}
}

// fence returns a fence on a key that lives as long as the benchmark.
func fence(b *testing.B, cli *clientv3.Client) etcdstore.Fence {
	b.Helper()
	key := etcdstore.ElectionPrefix(etcdstore.DefaultPrefix) + "/bench"
	resp, err := cli.Put(context.Background(), key, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return etcdstore.Fence{Key: key, Revision: resp.Header.Revision}
}

// filledEtcd starts an embedded etcd that holds n copies of rec (fill)
// and returns a client of it.
func filledEtcd(b *testing.B, rec *storev1.GroupRecord, n int) *clientv3.Client {
	b.Helper()
	node, err := embedetcd.Start(embedetcd.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(node.Close)
	cli, err := etcdstore.NewClient([]string{node.Endpoint()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	fill(b, cli, rec, n)
	return cli
}

// BenchmarkRecovery measures what a newly elected leader does before it
// serves: load 10,000 groups of 10 members from etcd and restore them.
func BenchmarkRecovery(b *testing.B) {
	const groups = 10000
	rec := sampleRecord(b)
	cli := filledEtcd(b, rec, groups)
	st := etcdstore.New(cli, "", fence(b, cli))
	size := proto.Size(rec)
	var loads, totals []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		snap, err := st.Load(context.Background())
		if err != nil || len(snap.Groups) != groups {
			b.Fatalf("load: %v, %d groups", err, len(snap.Groups))
		}
		loads = append(loads, time.Since(start))
		start = time.Now()
		srv, err := coordinator.New(context.Background(), coordinator.Config{Group: groupConfig(), Logger: quietLogger()}, st)
		if err != nil {
			b.Fatal(err)
		}
		totals = append(totals, time.Since(start))
		b.StopTimer()
		srv.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(median(loads).Microseconds())/1000, "etcd-load-ms")
	b.ReportMetric(float64(median(totals).Microseconds())/1000, "load+restore-ms")
	b.ReportMetric(float64(size), "record-bytes")
}

// BenchmarkShardLoads measures the start of a lone coordinator of a
// cluster of 64 shards (the default): every shard's leader loads its own
// groups of 10,000 at once (etcdstore.Store.OfShard: the keys, then its
// own records), against one load of every group, in the same run.
func BenchmarkShardLoads(b *testing.B) {
	const groups, shards = 10000, 64
	cli := filledEtcd(b, sampleRecord(b), groups)
	key := etcdstore.ShardElectionPrefix(etcdstore.DefaultPrefix, 0) + "/bench"
	put, err := cli.Put(context.Background(), key, "bench")
	if err != nil {
		b.Fatal(err)
	}
	st := etcdstore.New(cli, "", etcdstore.Fence{Key: key, Revision: put.Header.Revision})
	var ones, all []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if snap, err := st.Load(context.Background()); err != nil || len(snap.Groups) != groups {
			b.Fatalf("load: %v", err)
		}
		ones = append(ones, time.Since(start))
		start = time.Now()
		var wg sync.WaitGroup
		var loaded atomic.Int64
		for i := range shards {
			wg.Go(func() {
				snap, err := st.OfShard(i, shards).Load(context.Background())
				if err != nil {
					b.Error(err)
					return
				}
				loaded.Add(int64(len(snap.Groups)))
			})
		}
		wg.Wait()
		if loaded.Load() != groups {
			b.Fatalf("the shards loaded %d groups, want %d", loaded.Load(), groups)
		}
		all = append(all, time.Since(start))
	}
	b.ReportMetric(float64(median(ones).Microseconds())/1000, "one-load-ms")
	b.ReportMetric(float64(median(all).Microseconds())/1000, "64-shard-loads-ms")
}

// writeRecorder counts store writes and rebalances.
type writeRecorder struct {
	mu         sync.Mutex
	writes     []time.Duration
	rebalances int
}

func (w *writeRecorder) GroupEvent(_ string, e group.Event) {
	if e.Kind == group.EventRebalanceDone {
		w.mu.Lock()
		w.rebalances++
		w.mu.Unlock()
	}
}
func (w *writeRecorder) Request(string, proto.Message, time.Duration, regroup.Code) {}
func (w *writeRecorder) QueueDelay(time.Duration)                                   {}
func (w *writeRecorder) Shed(string)                                                {}
func (w *writeRecorder) Overloaded(bool)                                            {}
func (w *writeRecorder) StoreWrite(d time.Duration, err error) {
	w.mu.Lock()
	w.writes = append(w.writes, d)
	w.mu.Unlock()
}

func (w *writeRecorder) take() ([]time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws, n := w.writes, w.rebalances
	w.writes, w.rebalances = nil, 0
	return ws, n
}

// BenchmarkRebalanceWrites measures the store writes of a rebalance on
// embedded etcd with fsync on: a group of 10 is Stable, and each iteration
// adds a member and waits until the group is Stable again.
func BenchmarkRebalanceWrites(b *testing.B) {
	eps := embedetcd.Endpoints(startEtcd(b, 1))
	rec := &writeRecorder{}
	c, err := tryStartCoord(b, "c", "127.0.0.1:0", eps, coordOpts{ttl: 5 * time.Second, log: quietLogger(), metrics: rec})
	if err != nil {
		b.Fatal(err)
	}
	waitLeader(b, c)
	admin := adminOf(b, c)
	putTopic(b, admin)
	f := newFleet(b, c.addr)
	f.own = nil
	formGroup(b, f, admin, 10)
	rec.take()
	b.ResetTimer()
	for i := range b.N {
		f.add(fmt.Sprint("n", i), 0)
		waitfor.Until(b, "the group is Stable with the new member", func() error { return f.stable(admin) })
	}
	b.StopTimer()
	writes, rebalances := rec.take()
	var sum time.Duration
	for _, w := range writes {
		sum += w
	}
	b.ReportMetric(float64(len(writes))/float64(rebalances), "writes/rebalance")
	b.ReportMetric(float64(median(writes).Microseconds())/1000, "write-p50-ms")
	b.ReportMetric(float64(sum.Microseconds())/1000/float64(rebalances), "write-ms/rebalance")
}

// bigRecord is the record of a Stable group of members members over one
// topic of partitions partitions, each member's partitions reported as
// owned in its subscription too (cooperative).
func bigRecord(members, partitions int) *storev1.GroupRecord {
	rec := &storev1.GroupRecord{GroupId: "big", Generation: 7, ProtocolName: "cooperative-sticky", State: regroupv1.GroupState_GROUP_STATE_STABLE}
	for m := range members {
		var ps []int32
		for i := m; i < partitions; i += members {
			ps = append(ps, int32(i))
		}
		tp := []*regroupv1.TopicPartitions{{Topic: "orders", Partitions: ps}}
		id := fmt.Sprintf("consumer-%d-4f1c2d3e-1234-4abc-8def-0123456789ab", m)
		rec.Members = append(rec.Members, &storev1.MemberRecord{
			MemberId: id, ClientId: "consumer", ClientHost: "10.0.0.1", SessionTimeoutMs: 45000, RebalanceTimeoutMs: 300000,
			Protocols:  []*regroupv1.Protocol{{Name: "cooperative-sticky", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}, OwnedPartitions: tp, Generation: 6}}},
			Assignment: &regroupv1.Assignment{Partitions: tp}, AssignmentGeneration: 7, FencingToken: 7 << 32, Owned: tp,
		})
		if m == 0 {
			rec.LeaderId = id
		}
	}
	return rec
}

// BenchmarkPutGroup measures one fenced write of a group record on embedded
// etcd with fsync on, for a group of 10 (as formed by real members) and for
// the largest group the design aims at.
func BenchmarkPutGroup(b *testing.B) {
	node, err := embedetcd.Start(embedetcd.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(node.Close)
	cli, err := etcdstore.NewClient([]string{node.Endpoint()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	st := etcdstore.New(cli, "", fence(b, cli))
	for _, bc := range []struct {
		name string
		rec  func() *storev1.GroupRecord
	}{
		{"10-members", func() *storev1.GroupRecord { return sampleRecord(b) }},
		{"2000-members-1M-partitions", func() *storev1.GroupRecord { return bigRecord(2000, 1000000) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rec := bc.rec()
			b.SetBytes(int64(proto.Size(rec)))
			b.ResetTimer()
			for range b.N {
				if err := st.PutGroup(context.Background(), rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
