package election_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/election"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

const (
	testTTL    = 2 * time.Second
	session    = 6 * time.Second
	partitions = 64
)

// fleet is a group of members running against some coordinators.
type fleet struct {
	t       testing.TB
	addrs   []string
	own     *ownership
	members []*member
	cancels []context.CancelFunc
	wg      sync.WaitGroup
}

func newFleet(t testing.TB, addrs ...string) *fleet {
	f := &fleet{t: t, addrs: addrs, own: newOwnership()}
	t.Cleanup(f.stop)
	return f
}

// add starts a member whose router starts at the given coordinator.
func (f *fleet) add(name string, first int) *member {
	addrs := append(slices.Clone(f.addrs[first:]), f.addrs[:first]...)
	m := newMember(name, "g", "orders", session, newRouter(f.t, addrs), f.own)
	ctx, cancel := context.WithCancel(context.Background())
	f.members = append(f.members, m)
	f.cancels = append(f.cancels, cancel)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		m.run(ctx)
	}()
	return m
}

// crash stops member i without a word, and removes it from the fleet.
func (f *fleet) crash(i int) *member {
	m := f.members[i]
	f.cancels[i]()
	f.members = slices.Delete(f.members, i, i+1)
	f.cancels = slices.Delete(f.cancels, i, i+1)
	return m
}

func (f *fleet) stop() {
	for _, c := range f.cancels {
		c()
	}
	f.wg.Wait()
}

// snapshot is what members see of the group.
type snapshot map[string]memberState

// mark returns what the members see now, and forgets the errors they saw
// so far.
func (f *fleet) mark() snapshot {
	s := snapshot{}
	for _, m := range f.members {
		s[m.name] = m.state()
		m.takeErrors()
	}
	return s
}

// errors returns the errors members saw since the last mark.
func (f *fleet) errors() []error {
	var errs []error
	for _, m := range f.members {
		errs = append(errs, m.takeErrors()...)
	}
	return errs
}

// stable checks, through admin, that the group is Stable with exactly the
// fleet's members, all in its generation, owning every partition once.
func (f *fleet) stable(admin regroupv1.AdminClient) error {
	d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
	if err != nil {
		return err
	}
	if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != len(f.members) {
		return fmt.Errorf("group is %v with %d members, want Stable with %d", d.GetState(), len(d.GetMembers()), len(f.members))
	}
	owner := make([]string, partitions)
	for _, m := range f.members {
		st := m.state()
		if st.generation != d.GetGeneration() {
			return fmt.Errorf("%s is at generation %d, the group at %d", m.name, st.generation, d.GetGeneration())
		}
		for _, p := range st.assignment {
			if owner[p] != "" {
				return fmt.Errorf("partition %d owned by %s and %s", p, owner[p], m.name)
			}
			owner[p] = m.name
		}
	}
	for p, o := range owner {
		if o == "" {
			return fmt.Errorf("partition %d has no owner", p)
		}
	}
	return nil
}

// heartbeatingAt waits until every member's last successful call was sent
// after since and answered by addr.
func (f *fleet) heartbeatingAt(addr string, since time.Time) {
	f.t.Helper()
	waitfor.Until(f.t, "every member heartbeats "+addr, func() error {
		for _, m := range f.members {
			st := m.state()
			if st.lastAddr != addr || !st.lastOK.After(since) {
				return fmt.Errorf("%s last succeeded at %v on %s", m.name, st.lastOK.Format(time.StampMilli), st.lastAddr)
			}
		}
		return nil
	})
}

// sameAsBefore checks that no member rebalanced since before.
func (f *fleet) sameAsBefore(before snapshot) {
	f.t.Helper()
	for _, m := range f.members {
		name, now, was := m.name, m.state(), before[m.name]
		if now.id != was.id || now.generation != was.generation || now.syncs != was.syncs || !slices.Equal(now.assignment, was.assignment) {
			f.t.Errorf("%s rebalanced: before %s gen %d syncs %d %v, after %s gen %d syncs %d %v", name,
				was.id, was.generation, was.syncs, was.assignment, now.id, now.generation, now.syncs, now.assignment)
		}
	}
}

func adminOf(t testing.TB, c *coord) regroupv1.AdminClient {
	return regroupv1.NewAdminClient(dial(t, c.addr))
}

func history(t testing.TB, admin regroupv1.AdminClient) []*regroupv1.Rebalance {
	t.Helper()
	d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
	if err != nil {
		t.Fatal(err)
	}
	return d.GetRebalances()
}

func putTopic(t testing.TB, admin regroupv1.AdminClient) {
	t.Helper()
	waitfor.Until(t, "the topic is created", func() error {
		_, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: partitions}})
		return err
	})
}

// formGroup starts n members spread over the coordinators and waits until
// the group is Stable.
func formGroup(t testing.TB, f *fleet, admin regroupv1.AdminClient, n int) {
	t.Helper()
	for i := range n {
		f.add(fmt.Sprint("m", i), i%len(f.addrs))
	}
	waitfor.Until(t, fmt.Sprintf("%d members form a Stable group", n), func() error { return f.stable(admin) })
}

// TestRestartWithoutRebalance stops a single coordinator as SIGKILL would
// while a group of 10 is Stable, and starts a new one at the same address
// on the same etcd: the members heartbeat through the restart and keep
// their generation and assignments.
func TestRestartWithoutRebalance(t *testing.T) {
	eps := embedetcd.Endpoints(startEtcd(t, 1))
	a := startCoord(t, "a", eps, testTTL)
	waitLeader(t, a)
	putTopic(t, adminOf(t, a))
	f := newFleet(t, a.addr)
	formGroup(t, f, adminOf(t, a), 10)
	before, hist := f.mark(), history(t, adminOf(t, a))

	a.crash()
	restarted := time.Now()
	b := startCoordAt(t, "b", a.addr, eps, testTTL)
	waitLeader(t, b)
	f.heartbeatingAt(b.addr, restarted)

	f.sameAsBefore(before)
	if err := f.stable(adminOf(t, b)); err != nil {
		t.Fatal(err)
	}
	if after := history(t, adminOf(t, b)); len(after) != len(hist) {
		t.Errorf("the restart added rebalances to the history: %v", after[len(hist):])
	}
	if errs := f.errors(); len(errs) > 0 {
		t.Errorf("members saw errors: %v", errs)
	}
	if err := f.own.check(); err != nil {
		t.Error(err)
	}
}

// TestFailover runs three coordinators on a three-node etcd cluster. Killing
// the leader while a group of 10 is Stable moves no partition and starts no
// rebalance; killing the next leader in the middle of a rebalance lets the
// rebalance complete on the one left.
func TestFailover(t *testing.T) {
	eps := embedetcd.Endpoints(startEtcd(t, 3))
	cs := []*coord{startCoord(t, "a", eps, testTTL), startCoord(t, "b", eps, testTTL), startCoord(t, "c", eps, testTTL)}
	addrs := []string{cs[0].addr, cs[1].addr, cs[2].addr}
	leader := waitLeader(t, cs...)
	follower := cs[0]
	if follower == leader {
		follower = cs[1]
	}
	// Admin calls to a follower are forwarded to the leader.
	putTopic(t, adminOf(t, follower))
	f := newFleet(t, addrs...)
	formGroup(t, f, adminOf(t, follower), 10)
	checkCluster(t, leader, follower)

	before, hist := f.mark(), history(t, adminOf(t, leader))
	leader.crash()
	killed := time.Now()
	leader = waitLeader(t, cs...)
	t.Logf("new leader %s elected %v after the kill", leader.name, time.Since(killed))
	f.heartbeatingAt(leader.addr, killed)
	f.sameAsBefore(before)
	if err := f.stable(adminOf(t, leader)); err != nil {
		t.Fatal(err)
	}
	if after := history(t, adminOf(t, leader)); len(after) != len(hist) {
		t.Errorf("the failover added rebalances to the history: %v", after[len(hist):])
	}
	if errs := f.errors(); len(errs) > 0 {
		t.Errorf("members saw errors: %v", errs)
	}

	// Mid-rebalance: m9 stops answering (so the join barrier waits for it)
	// and a new member joins; the leader dies before the barrier closes.
	resume := make(chan struct{})
	f.members[9].pause <- resume
	f.add("m10", 0)
	admin := adminOf(t, leader)
	waitfor.Until(t, "a rebalance is in progress", func() error {
		d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
		if err != nil {
			return err
		}
		if d.GetState() != regroupv1.GroupState_GROUP_STATE_PREPARING_REBALANCE {
			return fmt.Errorf("group is %v", d.GetState())
		}
		return nil
	})
	leader.crash()
	leader = waitLeader(t, cs...)
	close(resume)
	waitfor.Until(t, "the rebalance completes on the new leader with 11 members", func() error { return f.stable(adminOf(t, leader)) })
	if err := f.own.check(); err != nil {
		t.Error(err)
	}
}

// checkCluster checks DescribeCluster on a leader and a follower.
func checkCluster(t *testing.T, leader, follower *coord) {
	t.Helper()
	l, err := adminOf(t, leader).DescribeCluster(context.Background(), &regroupv1.DescribeClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if l.GetRole() != regroupv1.CoordinatorRole_COORDINATOR_ROLE_LEADER || l.GetAddress() != leader.addr || l.GetLeaderAddress() != leader.addr ||
		l.GetLeaseTtlMs() != testTTL.Milliseconds() || l.GetLeaseRemainingMs() <= 0 || l.GetLeaseId() == 0 || l.GetElectionKey() == "" {
		t.Errorf("leader %s describes itself as %v", leader.addr, l)
	}
	fl, err := adminOf(t, follower).DescribeCluster(context.Background(), &regroupv1.DescribeClusterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if fl.GetRole() != regroupv1.CoordinatorRole_COORDINATOR_ROLE_FOLLOWER || fl.GetAddress() != follower.addr || fl.GetLeaderAddress() != leader.addr {
		t.Errorf("follower %s describes itself as %v", follower.addr, fl)
	}
}

// TestHeldKeepAlivesDepose holds back the leader's keep-alives while a
// group of 10 is Stable and one member crashes. The leader stops serving
// before anyone else leads; a write of its term is refused; the new leader
// gives the crashed member a full session before expiring it, and no
// partition ever has two owners.
func TestHeldKeepAlivesDepose(t *testing.T) {
	eps := embedetcd.Endpoints(startEtcd(t, 3))
	cs := []*coord{startCoord(t, "a", eps, testTTL), startCoord(t, "b", eps, testTTL), startCoord(t, "c", eps, testTTL)}
	old := waitLeader(t, cs...)
	putTopic(t, adminOf(t, old))
	f := newFleet(t, cs[0].addr, cs[1].addr, cs[2].addr)
	formGroup(t, f, adminOf(t, old), 10)
	before := f.mark()

	// Watch who leads: the others first, then the old leader, so that a
	// sample showing both proves an overlap.
	var overlap atomic.Value
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(time.Millisecond):
			}
			for _, c := range cs {
				if c != old && c.srv.Leading() && old.srv.Leading() {
					overlap.Store(fmt.Sprintf("%s leads while %s still does", c.name, old.name))
				}
			}
		}
	}()

	election.HoldKeepAlives(old.elector.Elector, true)
	crashed := f.crash(3)
	held := time.Now()
	waitfor.Until(t, "the old leader stops serving", func() error {
		if old.srv.Leading() {
			return errors.New("still leading")
		}
		return nil
	})
	t.Logf("old leader stopped %v after its keep-alives were held", time.Since(held))
	var next *coord
	waitfor.Until(t, "another coordinator leads", func() error {
		for _, c := range cs {
			if c != old && c.srv.Leading() {
				next = c
				return nil
			}
		}
		return errors.New("none")
	})
	t.Logf("%s leads %v after the keep-alives were held", next.name, time.Since(held))

	oldTerm := old.elector.lastTerm()
	err := oldTerm.Store().PutGroup(context.Background(), &storev1.GroupRecord{GroupId: "zombie", Generation: 1})
	if !errors.Is(err, store.ErrFenced) {
		t.Errorf("a write of the deposed term: got %v, want store.ErrFenced", err)
	}
	f.heartbeatingAt(next.addr, held)
	f.sameAsBefore(before)

	// The crashed member's session runs out on the new leader; the others
	// take its partitions.
	waitfor.Until(t, "the group rebalances without the crashed member", func() error { return f.stable(adminOf(t, next)) })
	if st := crashed.state(); !time.Now().After(st.lastOK.Add(session)) {
		t.Errorf("the crashed member was expired before its lease could end")
	}
	election.HoldKeepAlives(old.elector.Elector, false)
	waitfor.Until(t, "the old leader follows the new one", func() error {
		d, err := adminOf(t, old).DescribeCluster(context.Background(), &regroupv1.DescribeClusterRequest{})
		if err != nil {
			return err
		}
		if d.GetRole() != regroupv1.CoordinatorRole_COORDINATOR_ROLE_FOLLOWER || d.GetLeaderAddress() != next.addr {
			return fmt.Errorf("it describes itself as %v", d)
		}
		return nil
	})
	close(stopWatch)
	<-watched
	if o := overlap.Load(); o != nil {
		t.Error(o)
	}
	if err := f.own.check(); err != nil {
		t.Error(err)
	}
}

// TestEtcdMemberLoss kills etcd's leader among three members while a group
// of 10 is Stable: the coordinator keeps leading, members see nothing, and
// the rebalance that a new member causes is stored on the two left.
func TestEtcdMemberLoss(t *testing.T) {
	nodes := startEtcd(t, 3)
	eps := embedetcd.Endpoints(nodes)
	const ttl = 5 * time.Second
	cs := []*coord{startCoord(t, "a", eps, ttl), startCoord(t, "b", eps, ttl)}
	leader := waitLeader(t, cs...)
	putTopic(t, adminOf(t, leader))
	f := newFleet(t, cs[0].addr, cs[1].addr)
	formGroup(t, f, adminOf(t, leader), 10)
	before := f.mark()
	describe := func() (*regroupv1.DescribeClusterResponse, error) {
		return adminOf(t, leader).DescribeCluster(context.Background(), &regroupv1.DescribeClusterRequest{})
	}
	desc := func() *regroupv1.DescribeClusterResponse {
		d, err := describe()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	was := desc()

	victim := etcdLeader(t, leader, nodes)
	t0 := time.Now()
	victim.Close()
	killed := time.Now()
	t.Logf("closing etcd member %s took %v", victim.Name(), killed.Sub(t0))
	// Wait for a keep-alive sent after the kill to succeed.
	waitfor.Until(t, "the lease is renewed through the remaining etcd members", func() error {
		// A call may fail while etcd elects a new leader on a loaded
		// machine: ask again.
		d, err := describe()
		if err != nil {
			return err
		}
		validUntil := time.Now().Add(time.Duration(d.GetLeaseRemainingMs()) * time.Millisecond)
		if validUntil.Before(killed.Add(ttl - ttl/10)) {
			return fmt.Errorf("lease valid until %v only", validUntil.Format(time.StampMilli))
		}
		return nil
	})
	if now := desc(); now.GetRole() != regroupv1.CoordinatorRole_COORDINATOR_ROLE_LEADER || !now.GetLeadingSince().AsTime().Equal(was.GetLeadingSince().AsTime()) {
		t.Fatalf("the coordinator's leadership changed: before %v, after %v", was, now)
	}
	t.Logf("lease renewed %v after the kill", time.Since(killed))
	f.heartbeatingAt(leader.addr, killed)
	f.sameAsBefore(before)
	if errs := f.errors(); len(errs) > 0 {
		t.Errorf("members saw errors: %v", errs)
	}
	f.add("m10", 0)
	waitfor.Until(t, "11 members form a Stable group", func() error { return f.stable(adminOf(t, leader)) })
	if err := f.own.check(); err != nil {
		t.Error(err)
	}
}

// etcdLeader returns the etcd node that is the raft leader.
func etcdLeader(t *testing.T, c *coord, nodes []*embedetcd.Node) *embedetcd.Node {
	t.Helper()
	for _, n := range nodes {
		st, err := c.cli.Status(context.Background(), n.Endpoint())
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader == st.Header.MemberId {
			return n
		}
	}
	t.Fatal("no etcd member is the leader")
	return nil
}

// startCoordAt is startCoord on a given address, for a restart: it waits
// until the address is free.
func startCoordAt(t testing.TB, name, addr string, eps []string, ttl time.Duration) *coord {
	t.Helper()
	var c *coord
	waitfor.Until(t, "the address is free again", func() error {
		var err error
		c, err = tryStartCoord(t, name, addr, eps, coordOpts{ttl: ttl, log: testLogger(t, name)})
		return err
	})
	return c
}

// TestEtcdLostWhileServing cuts a lone coordinator off from etcd while a
// group of 10 is Stable: it stops answering as leader at once, and leads
// again (the group as it was) once it can prove its leadership.
func TestEtcdLostWhileServing(t *testing.T) {
	eps := embedetcd.Endpoints(startEtcd(t, 1))
	c := startCoord(t, "a", eps, testTTL)
	waitLeader(t, c)
	putTopic(t, adminOf(t, c))
	f := newFleet(t, c.addr)
	formGroup(t, f, adminOf(t, c), 10)
	before := f.mark()

	election.HoldKeepAlives(c.elector.Elector, true)
	cut := time.Now()
	waitfor.Until(t, "the coordinator stops leading", func() error {
		if c.srv.Leading() {
			return errors.New("still leading")
		}
		return nil
	})
	_, err := regroupv1.NewCoordinatorClient(dial(t, c.addr)).Heartbeat(context.Background(), &regroupv1.HeartbeatRequest{
		GroupId: "g", MemberId: before["m0"].id, Generation: before["m0"].generation,
	})
	if code := regroup.CodeOf(rpcerr.FromStatus(err)); code != regroup.CodeNotCoordinator && code != regroup.CodeCoordinatorNotAvailable {
		t.Fatalf("a heartbeat while cut off from etcd: got %v, want NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE", err)
	}
	election.HoldKeepAlives(c.elector.Elector, false)
	waitLeader(t, c)
	f.heartbeatingAt(c.addr, cut)
	f.sameAsBefore(before)
	if err := f.own.check(); err != nil {
		t.Error(err)
	}
}
