package simulator_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
)

// simToRealFaults is a scenario with the faults the node core handles:
// three static members join; the store refuses writes for half a second
// while a fourth joins; then the leader is killed and another coordinator
// takes over from the store. The outage and the write's retries (50 ms
// doubling) end within the members' 2 s sessions, so that no member's
// session is left to chance: a longer outage expires some of them or not,
// depending on where their retries land.
const simToRealFaults = `
coordinator initial-delay=1s min-session=500ms
network delay=0s..1ms
topic orders partitions=12
group g assignors=range static session=2s rebalance=5s heartbeat=500ms margin=200ms on-revoked=0s
at 0s join m1..m3
at 5s store fail for=500ms
at 5.1s join m4
at 10s failover gap=200ms
run until=20s
`

// TestSimToRealWithFaults runs simToRealFaults in the simulator and on real
// coordinators over a store that refuses writes on demand, and checks that
// both count the same rebalances, keep the same generation through the
// failover and end with the same assignment.
func TestSimToRealWithFaults(t *testing.T) {
	res := simulateForReal(t, "sim-to-real-faults", simToRealFaults)
	if res.Metrics.StoreFaults == 0 {
		t.Fatal("the simulated store refused no write")
	}
	rebalances, generation, assignment := runRealWithFaults(t)
	compareWithReal(t, res, rebalances, assignment)
	if generation != res.Metrics.Generation {
		t.Errorf("generation after the failover: %d on the real coordinators, %d in the simulator", generation, res.Metrics.Generation)
	}
}

// faultyStore is a memstore term whose group writes fail while failing is
// set, as an etcd cluster without quorum refuses them.
type faultyStore struct {
	store.Store
	failing *atomic.Bool
	refused *atomic.Int32
}

func (s faultyStore) PutGroup(ctx context.Context, rec *storev1.GroupRecord) error {
	if s.failing.Load() {
		s.refused.Add(1)
		return errors.New("etcdserver: request timed out (simulated)")
	}
	return s.Store.PutGroup(ctx, rec)
}

func runRealWithFaults(t *testing.T) (rebalances int, generation int32, assignment map[string][]string) {
	data := &memstore.Data{}
	var failing atomic.Bool
	var refused atomic.Int32

	// serve starts a coordinator on a fresh term of data.
	var mu sync.Mutex
	var addr string
	serve := func() func() {
		a, stop := startCoordinator(t, faultyStore{Store: data.Open(), failing: &failing, refused: &refused})
		mu.Lock()
		addr = a
		mu.Unlock()
		return stop
	}
	target := func() string {
		mu.Lock()
		defer mu.Unlock()
		return addr
	}
	stopA := serve()

	rg := newRealGroup(t, target)
	for _, name := range []string{"m1", "m2", "m3"} {
		rg.start(name, false)
	}
	before := rg.settle("m1", "m2", "m3").GetGeneration()
	failing.Store(true)
	rg.start("m4", false)
	time.Sleep(500 * time.Millisecond) // the store's outage, as in the scenario
	failing.Store(false)
	if refused.Load() == 0 {
		t.Fatal("the store refused no write: the outage tested nothing")
	}
	d := rg.settle("m1", "m2", "m3", "m4")
	if d.GetGeneration() <= before {
		t.Fatalf("generation %d after the outage, was %d: a failed write lowered or reset it", d.GetGeneration(), before)
	}
	stopA()
	serve()
	d = rg.settle("m1", "m2", "m3", "m4")
	for _, r := range d.GetRebalances() {
		if !r.GetNoRebalance() {
			rebalances++
		}
	}
	return rebalances, d.GetGeneration(), rg.assignment("m1", "m2", "m3", "m4")
}
