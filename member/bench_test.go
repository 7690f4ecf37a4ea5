package member_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/internal/cutproxy"
	"github.com/regroup-dev/regroup/internal/waitfor"
	"github.com/regroup-dev/regroup/member"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// BenchmarkRebalance measures, end to end on loopback with real member
// libraries and a heartbeat interval of 3 s, how long a group takes to own
// every partition again after a graceful leave, a join, and a crash
// (counted from the coordinator's detection of it), with the partitions
// revoked and the partition-seconds without an owner: classic
// cooperative-sticky and the next-generation protocol (its server-side
// cooperative-sticky) at 16, 100 and 1,000 members over 1,000 partitions
// and 1,000 members over 10,000; classic eager at 100 members.
//
//	go test ./member -run '^$' -bench 'Rebalance/(cooperative|next)/100x1000' -benchtime 5x
func BenchmarkRebalance(b *testing.B) {
	for _, size := range benchSizes {
		for _, proto := range benchProtocols {
			if proto.name == "eager" && size != (benchSize{100, 1000}) {
				continue
			}
			for _, event := range []string{"leave", "join", "crash"} {
				b.Run(fmt.Sprintf("%s/%dx%d/%s", proto.name, size.members, size.partitions, event), func(b *testing.B) {
					benchEvent(b, proto, size, event)
				})
			}
		}
	}
}

// benchSize is a group's members and partitions.
type benchSize struct{ members, partitions int }

var benchSizes = []benchSize{{16, 1000}, {100, 1000}, {1000, 1000}, {1000, 10000}}

// benchProtocol is how the benchmark's members rebalance: a group protocol
// and an assignor (the server-side one for the next-generation protocol).
type benchProtocol struct{ name, protocol, assignor string }

var benchProtocols = []benchProtocol{
	{"cooperative", "classic", "cooperative-sticky"},
	{"eager", "classic", "sticky"},
	{"next", "next", "cooperative-sticky"},
}

// tracker follows who owns each partition and accumulates the time
// partitions spend without an owner.
type tracker struct {
	mu        sync.Mutex
	owners    map[int32]int
	unownedAt map[int32]time.Time
	unowned   time.Duration
	complete  time.Time // when the last unowned partition got an owner
	revoked   int
	stopping  map[string]bool
	assigned  map[string]time.Time // member -> its last OnAssigned
}

func newTracker(partitions int) *tracker {
	tr := &tracker{owners: map[int32]int{}, unownedAt: map[int32]time.Time{}, stopping: map[string]bool{}, assigned: map[string]time.Time{}}
	start := time.Now()
	for p := range int32(partitions) {
		tr.unownedAt[p] = start
	}
	return tr
}

func (tr *tracker) listener(name string) member.Listener {
	change := func(ps []member.Partition, delta int, revoked bool) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		now := time.Now()
		for _, p := range ps {
			tr.owners[p.Partition] += delta
			switch {
			case tr.owners[p.Partition] == 0:
				tr.unownedAt[p.Partition] = now
			case delta > 0 && tr.owners[p.Partition] == 1:
				if since, ok := tr.unownedAt[p.Partition]; ok {
					tr.unowned += now.Sub(since)
					delete(tr.unownedAt, p.Partition)
				}
				if len(tr.unownedAt) == 0 {
					tr.complete = now
				}
			}
		}
		if revoked {
			tr.revoked += len(ps)
		}
	}
	return member.ListenerFuncs{
		Assigned: func(_ context.Context, ps []member.Partition) {
			change(ps, +1, false)
			tr.mu.Lock()
			tr.assigned[name] = time.Now()
			tr.mu.Unlock()
		},
		Revoked: func(_ context.Context, ps []member.Partition) { change(ps, -1, true) },
		Lost:    func(_ context.Context, ps []member.Partition) { change(ps, -1, false) },
	}
}

// reset starts a new measurement: unowned time and revocations from now.
func (tr *tracker) reset() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.unowned, tr.revoked = 0, 0
	now := time.Now()
	for p := range tr.unownedAt {
		tr.unownedAt[p] = now
	}
}

// settled reports whether every partition is owned, with the time the last
// one got its owner, the unowned partition-seconds and the revocations since
// reset.
func (tr *tracker) settled() (bool, time.Time, time.Duration, int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.unownedAt) == 0, tr.complete, tr.unowned, tr.revoked
}

// benchGroup is a benchmark's coordinator and group, formed.
type benchGroup struct {
	c     *coordinatorProc
	admin regroupv1.AdminClient
	tr    *tracker
	live  []*running
	start func() *running
}

// formBenchGroup starts a coordinator and size.members members of proto,
// and waits until the group is Stable with every partition owned.
func formBenchGroup(b *testing.B, proto benchProtocol, size benchSize, proxied bool) *benchGroup {
	c := startCoordinator(b)
	g := &benchGroup{c: c, admin: c.admin(), tr: newTracker(size.partitions)}
	if _, err := g.admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: int32(size.partitions)}}); err != nil {
		b.Fatal(err)
	}
	n := 0
	var all []*running
	g.start = func() *running {
		n++
		r := startBenchMember(b, c, g.tr, fmt.Sprintf("m%d", n), proto, proxied)
		all = append(all, r)
		return r
	}
	// A run that fails leaves no member behind to load the next one.
	b.Cleanup(func() {
		for _, r := range all {
			r.cancel()
		}
	})
	for range size.members {
		g.live = append(g.live, g.start())
	}
	waitfor.Until(b, "the group forms", g.stable(size.members))
	return g
}

// stable reports whether the group is Stable with members members and
// every partition owned.
func (g *benchGroup) stable(members int) func() error {
	return func() error {
		d, err := g.admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
		if err != nil {
			return err
		}
		if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != members {
			return fmt.Errorf("%v with %d members", d.GetState(), len(d.GetMembers()))
		}
		if ok, _, _, _ := g.tr.settled(); !ok {
			return fmt.Errorf("not every partition is owned")
		}
		return nil
	}
}

// stop ends every member still running.
func (g *benchGroup) stop() {
	for _, r := range g.live {
		r.cancel()
	}
	for _, r := range g.live {
		<-r.done
	}
}

func benchEvent(b *testing.B, proto benchProtocol, size benchSize, event string) {
	// Only a crash needs a link the test can cut; the others connect
	// directly, so that the proxy's copying does not count.
	g := formBenchGroup(b, proto, size, event == "crash")
	admin, tr, stable, start := g.admin, g.tr, g.stable, g.start
	live := g.live

	var latencies []time.Duration
	var unowned []float64
	var revoked []int
	b.ResetTimer()
	for i := range b.N {
		time.Sleep(200 * time.Millisecond) // let the previous round's last callbacks run
		tr.reset()
		var t0 time.Time
		members := len(live)
		switch event {
		case "leave":
			victim := live[i%len(live)]
			live = append(live[:i%len(live)], live[i%len(live)+1:]...)
			t0 = time.Now()
			victim.cancel()
			<-victim.done
			members--
		case "join":
			t0 = time.Now()
			live = append(live, start())
			members++
		case "crash":
			victim := live[i%len(live)]
			live = append(live[:i%len(live)], live[i%len(live)+1:]...)
			cut := time.Now()
			victim.proxy.Sever()
			members--
			// Measure from this crash's detection: the expiry rebalance
			// that started after the cut, not an earlier round's.
			waitfor.Until(b, "the crash is detected", func() error {
				d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
				if err != nil {
					return err
				}
				for _, r := range d.GetRebalances() {
					if r.GetCauseKind() == "member-expired" && r.GetStart().AsTime().After(cut) {
						t0 = r.GetStart().AsTime()
						return nil
					}
				}
				return fmt.Errorf("no expiry since the cut yet")
			})
			defer func() { victim.cancel(); <-victim.done }()
		}
		waitfor.Until(b, "every partition is owned again", stable(members))
		_, complete, un, rv := tr.settled()
		if complete.Before(t0) {
			complete = t0 // nothing became unowned
		}
		latencies = append(latencies, complete.Sub(t0))
		unowned = append(unowned, un.Seconds())
		revoked = append(revoked, rv)
		// Restore the group's size for the next round, outside the
		// measurement.
		b.StopTimer()
		switch event {
		case "leave", "crash":
			live = append(live, start())
		case "join":
			victim := live[0]
			live = live[1:]
			victim.cancel()
			<-victim.done
		}
		waitfor.Until(b, "the group recovers", stable(size.members))
		b.StartTimer()
	}
	b.StopTimer()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	sort.Float64s(unowned)
	sort.Ints(revoked)
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(revoked[len(revoked)/2]), "revoked")
	b.ReportMetric(unowned[len(unowned)/2], "unowned-partition-s")
	g.live = live
	g.stop()
}

// BenchmarkPausedMember pauses one member of 100 (over 1,000 partitions)
// for a second, as a stop-the-world pause would, and at once makes another
// leave gracefully; it reports how long the other members took to receive
// what the leave gave them (from the leave to the last OnAssigned of a
// member other than the paused one). The classic protocol's barrier waits
// for the paused member; the next-generation protocol does not.
//
//	go test ./member -run '^$' -bench PausedMember -benchtime 5x
func BenchmarkPausedMember(b *testing.B) {
	for _, proto := range []benchProtocol{benchProtocols[0], benchProtocols[2]} {
		b.Run(proto.name, func(b *testing.B) {
			g := formBenchGroup(b, proto, benchSize{100, 1000}, false)
			var took []time.Duration
			b.ResetTimer()
			for range b.N {
				time.Sleep(200 * time.Millisecond)
				paused, leaver := g.live[0], g.live[1]
				g.live = g.live[2:]
				g.tr.mu.Lock()
				clear(g.tr.assigned)
				g.tr.mu.Unlock()
				paused.m.PauseForTest(time.Second)
				t0 := time.Now()
				leaver.cancel()
				<-leaver.done
				// Everyone but the paused member has what it will get once
				// nothing more arrives for a while.
				var last time.Time
				waitfor.Until(b, "the others receive the leaver's partitions", func() error {
					g.tr.mu.Lock()
					defer g.tr.mu.Unlock()
					last = time.Time{}
					for name, at := range g.tr.assigned {
						if name != paused.name && at.After(last) {
							last = at
						}
					}
					if last.IsZero() || time.Since(last) < 1500*time.Millisecond {
						return fmt.Errorf("assignments still arriving")
					}
					return nil
				})
				took = append(took, last.Sub(t0))
				b.StopTimer()
				g.live = append(g.live, paused, g.start())
				waitfor.Until(b, "the group recovers", g.stable(100))
				b.StartTimer()
			}
			b.StopTimer()
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "others-ms")
			g.stop()
		})
	}
}

func startBenchMember(b testing.TB, c *coordinatorProc, tr *tracker, name string, proto benchProtocol, proxied bool) *running {
	var px *cutproxy.Proxy
	endpoint := c.addr
	if proxied {
		px = cutproxy.Start(b, func() string { return c.addr })
		endpoint = px.Addr()
	}
	cfg := member.Config{
		Endpoints:         []string{endpoint},
		Group:             "g",
		Topics:            []string{"orders"},
		Protocol:          proto.protocol,
		SessionTimeout:    9 * time.Second,
		RebalanceTimeout:  20 * time.Second,
		HeartbeatInterval: 3 * time.Second,
		ClientID:          name,
		Listener:          tr.listener(name),
		Logger:            quietLogger(),
	}
	if proto.protocol == "next" {
		cfg.ServerAssignor = proto.assignor
	} else {
		cfg.Assignors = lookupAll(b, proto.assignor)
	}
	m, err := member.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{name: name, m: m, proxy: px, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx) }()
	return r
}

// BenchmarkRollingRestart restarts each of 10 members in turn (a clean
// stop, then a new process), static (same instance id) and dynamic, with
// cooperative-sticky over 100 partitions, and reports the rebalances, the
// partitions that moved between members, the partitions revoked by members
// that were not restarting, and the time the whole restart took.
//
//	go test ./member -run '^$' -bench RollingRestart -benchtime 3x
func BenchmarkRollingRestart(b *testing.B) {
	for _, static := range []bool{true, false} {
		name := "dynamic"
		if static {
			name = "static"
		}
		b.Run(name, func(b *testing.B) {
			var rebalances, moved, revokedByOthers []int
			var took []time.Duration
			for range b.N {
				r, m, rv, d := rollingRestart(b, static)
				rebalances, moved, revokedByOthers, took = append(rebalances, r), append(moved, m), append(revokedByOthers, rv), append(took, d)
			}
			sort.Ints(rebalances)
			sort.Ints(moved)
			sort.Ints(revokedByOthers)
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(rebalances[len(rebalances)/2]), "rebalances")
			b.ReportMetric(float64(moved[len(moved)/2]), "moved")
			b.ReportMetric(float64(revokedByOthers[len(revokedByOthers)/2]), "revoked-by-others")
			b.ReportMetric(took[len(took)/2].Seconds(), "restart-s")
		})
	}
}

func rollingRestart(b *testing.B, static bool) (rebalances, moved, revokedByOthers int, took time.Duration) {
	const members, partitions = 10, 100
	c := startCoordinator(b)
	defer c.stop()
	admin := c.admin()
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: partitions}}); err != nil {
		b.Fatal(err)
	}
	rec := newRecorder()
	a := lookupAll(b, "cooperative-sticky")
	start := func(i, incarnation int) *running {
		instance := ""
		if static {
			instance = fmt.Sprintf("i%d", i)
		}
		return startMember(b, c, rec, fmt.Sprintf("p%d.%d", i, incarnation), instance, a)
	}
	var live []*running
	for i := range members {
		live = append(live, start(i, 0))
	}
	waitfor.Until(b, "the group forms", func() error { return converged(admin, rec, live, partitions) })
	describe := func() *regroupv1.DescribeGroupResponse {
		d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	rec.mu.Lock()
	revokedBefore := len(rec.revoked)
	rec.mu.Unlock()
	t0 := time.Now()
	for i := range live {
		rec.mu.Lock()
		rec.stopping[live[i].name] = true
		rec.mu.Unlock()
		live[i].stop(b)
		live[i] = start(i, 1)
		waitfor.Until(b, fmt.Sprintf("restart %d", i), func() error { return converged(admin, rec, live, partitions) })
	}
	took = time.Since(t0)
	after := describe()
	for _, r := range after.GetRebalances() {
		if r.GetEnd() != nil && r.GetEnd().AsTime().After(t0) && !r.GetNoRebalance() {
			rebalances++
			moved += int(r.GetPartitionsMoved())
		}
	}
	rec.mu.Lock()
	revokedByOthers = len(rec.revoked) - revokedBefore
	rec.mu.Unlock()
	if err := rec.check(); err != nil {
		b.Fatal(err)
	}
	for _, r := range live {
		r.stop(b)
	}
	return rebalances, moved, revokedByOthers, took
}
