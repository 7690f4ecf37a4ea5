package election_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	"github.com/regroup-dev/regroup/internal/waitfor"
	memberlib "github.com/regroup-dev/regroup/member"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// libraryRecorder notes what the member libraries report.
type libraryRecorder struct {
	mu      sync.Mutex
	owners  map[int32]string
	lost    int
	revoked int
	overlap []string
}

func (r *libraryRecorder) listener(name string) memberlib.Listener {
	return memberlib.ListenerFuncs{
		Assigned: func(_ context.Context, ps []memberlib.Partition) {
			r.mu.Lock()
			defer r.mu.Unlock()
			for _, p := range ps {
				if o := r.owners[p.Partition]; o != "" && o != name {
					r.overlap = append(r.overlap, fmt.Sprintf("partition %d assigned to %s while %s owns it", p.Partition, name, o))
				}
				r.owners[p.Partition] = name
			}
		},
		Revoked: func(_ context.Context, ps []memberlib.Partition) { r.release(name, ps, &r.revoked) },
		Lost:    func(_ context.Context, ps []memberlib.Partition) { r.release(name, ps, &r.lost) },
	}
}

func (r *libraryRecorder) release(name string, ps []memberlib.Partition, count *int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ps {
		if r.owners[p.Partition] == name {
			delete(r.owners, p.Partition)
		}
	}
	*count += len(ps)
}

// TestMemberLibraryFollowsFailover runs ten real member libraries against
// three coordinators on a three-node etcd cluster. Five are given every
// coordinator's address with a follower's first: they follow NOT_COORDINATOR
// to the leader. Five are given only the leader's address: they learn the
// others with FindCoordinator. When the leader is killed they all move to
// the new one on their own, within their lease: no rebalance, no partition
// moved, nothing revoked or lost.
func TestMemberLibraryFollowsFailover(t *testing.T) {
	eps := embedetcd.Endpoints(startEtcd(t, 3))
	finds := map[*coord]*findCounter{}
	var cs []*coord
	for _, name := range []string{"a", "b", "c"} {
		f := &findCounter{}
		c, err := tryStartCoord(t, name, "127.0.0.1:0", eps, coordOpts{ttl: testTTL, log: testLogger(t, name), metrics: f})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		finds[c] = f
	}
	leader := waitLeader(t, cs...)
	// FindCoordinator names the coordinators the leader sees in the
	// election: all three, once each has campaigned.
	waitfor.Until(t, "the leader sees all three coordinators", func() error {
		d, err := adminOf(t, leader).DescribeCluster(context.Background(), &regroupv1.DescribeClusterRequest{})
		if err != nil {
			return err
		}
		if n := len(d.GetCoordinators()); n != 3 {
			return fmt.Errorf("it sees %d: %v", n, d.GetCoordinators())
		}
		return nil
	})
	putTopic(t, adminOf(t, leader))
	var endpoints []string
	for _, c := range cs {
		if c != leader {
			endpoints = append(endpoints, c.addr)
		}
	}
	endpoints = append(endpoints, leader.addr)

	rec := &libraryRecorder{owners: map[int32]string{}}
	a, err := assignor.Lookup("cooperative-sticky")
	if err != nil {
		t.Fatal(err)
	}
	var members []*memberlib.Member
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 10 {
		name := fmt.Sprintf("m%d", i)
		eps := endpoints
		if i >= 5 {
			eps = []string{leader.addr}
		}
		m, err := memberlib.New(memberlib.Config{
			Endpoints:         eps,
			Group:             "g",
			Topics:            []string{"orders"},
			Assignors:         []assignor.Assignor{a},
			SessionTimeout:    session,
			RebalanceTimeout:  10 * time.Second,
			HeartbeatInterval: time.Second,
			ClientID:          name,
			Listener:          rec.listener(name),
			Logger:            hclog.New(&hclog.LoggerOptions{Level: hclog.Error, Output: io.Discard}),
		})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Run(ctx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	owned := func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.overlap) > 0 {
			t.Fatalf("two owners: %v", rec.overlap)
		}
		if len(rec.owners) != partitions {
			return fmt.Errorf("%d of %d partitions owned", len(rec.owners), partitions)
		}
		return nil
	}
	describe := func(c *coord) (*regroupv1.DescribeGroupResponse, error) {
		return adminOf(t, c).DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: "g"})
	}
	waitfor.Until(t, "ten members own every partition", func() error {
		d, err := describe(leader)
		if err != nil {
			return err
		}
		if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != 10 {
			return fmt.Errorf("group is %v with %d members", d.GetState(), len(d.GetMembers()))
		}
		return owned()
	})
	// Each member asks its coordinator which coordinators there are once,
	// after its first answer: the five given only the leader's address
	// must have learned the others before the leader dies.
	waitfor.Until(t, "every member asked the leader which coordinators there are", func() error {
		if n := finds[leader].n.Load(); n < 10 {
			return fmt.Errorf("the leader answered %d FindCoordinator calls", n)
		}
		return nil
	})
	before, err := describe(leader)
	if err != nil {
		t.Fatal(err)
	}
	assignments := map[*memberlib.Member]string{}
	for _, m := range members {
		assignments[m] = fmt.Sprint(m.Assignment())
	}
	rec.mu.Lock()
	revoked, lost := rec.revoked, rec.lost
	rec.mu.Unlock()

	leader.crash()
	leader = waitLeader(t, cs...)
	elected := time.Now()
	// Every member heartbeats the new leader: its session deadline, as the
	// new leader sees it, moves past the full session it granted at load.
	waitfor.Until(t, "every member heartbeats the new leader", func() error {
		d, err := describe(leader)
		if err != nil {
			return err
		}
		if len(d.GetMembers()) != 10 {
			return fmt.Errorf("the group has %d members", len(d.GetMembers()))
		}
		for _, m := range d.GetMembers() {
			if !m.GetSessionDeadline().AsTime().After(elected.Add(session)) {
				return fmt.Errorf("member %s has not heartbeated the new leader yet", m.GetMemberId())
			}
		}
		return nil
	})
	after, err := describe(leader)
	if err != nil {
		t.Fatal(err)
	}
	if after.GetGeneration() != before.GetGeneration() || len(after.GetRebalances()) != len(before.GetRebalances()) {
		t.Errorf("the failover rebalanced: generation %d -> %d, history %d -> %d entries",
			before.GetGeneration(), after.GetGeneration(), len(before.GetRebalances()), len(after.GetRebalances()))
	}
	for _, m := range members {
		if got := fmt.Sprint(m.Assignment()); got != assignments[m] {
			t.Errorf("a member's assignment changed across the failover: %s -> %s", assignments[m], got)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.revoked != revoked || rec.lost != lost {
		t.Errorf("the failover cost %d revoked and %d lost partitions", rec.revoked-revoked, rec.lost-lost)
	}
}

// findCounter is a coordinator.Metrics that counts the FindCoordinator
// calls answered.
type findCounter struct{ n atomic.Int64 }

func (f *findCounter) GroupEvent(string, group.Event) {}
func (f *findCounter) Request(method string, _ proto.Message, _ time.Duration, code regroup.Code) {
	if method == "FindCoordinator" && code == "" {
		f.n.Add(1)
	}
}
func (f *findCounter) StoreWrite(time.Duration, error) {}
func (f *findCounter) QueueDelay(time.Duration)        {}
func (f *findCounter) Shed(string)                     {}
func (f *findCounter) Overloaded(bool)                 {}
