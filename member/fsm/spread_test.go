package fsm_test

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/member/fsm"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestHeartbeatsSpreadOverInterval forms a group of many members at one
// instant (one join barrier, one sync barrier, as a coordinator answers
// them), then answers every held heartbeat exactly at the end of its hold
// for a few intervals. With jitter, the group's heartbeats spread over the
// interval: no tenth of it gets much more or less than its share. Without
// it, every member beats in the same instant, forever. Holds never exceed
// the interval and no lease ends: the lease budget is unchanged.
func TestHeartbeatsSpreadOverInterval(t *testing.T) {
	const members, interval = 1000, 3 * time.Second
	rng := rand.New(rand.NewPCG(20, 1))
	sends := beatGroup(t, members, interval, 6*interval, rng.Float64)
	bins := binSends(sends, interval, 2*interval, 6*interval)
	total := 0
	for _, n := range bins {
		total += n
	}
	mean := float64(total) / float64(len(bins))
	t.Logf("heartbeats per tenth of an interval, from 2 to 6 intervals after the formation: %v", bins)
	for i, n := range bins {
		if float64(n) > 1.5*mean || float64(n) < 0.6*mean {
			t.Errorf("with jitter, tenth %d of the window holds %d heartbeats, the mean is %.0f: not spread (all: %v)", i, n, mean, bins)
			break
		}
	}
	// Each member beats about once per interval (periods lose at most a
	// tenth once spread): the rate rises by no more than a twentieth or so.
	if perMember := float64(total) / members / 4; perMember > 1.08 {
		t.Errorf("with jitter, %.3f heartbeats per member per interval; want at most 1.08", perMember)
	}

	// The check catches synchronised heartbeats.
	sends = beatGroup(t, members, interval, 6*interval, nil)
	bins = binSends(sends, interval, 2*interval, 6*interval)
	busiest := 0
	for _, n := range bins {
		busiest = max(busiest, n)
	}
	if busiest < members {
		t.Errorf("without jitter, the busiest tenth of an interval holds %d heartbeats; want all %d members together", busiest, members)
	}
}

// binSends counts the sends in [from, to) per tenth of an interval.
func binSends(sends []time.Duration, interval, from, to time.Duration) []int {
	bin := interval / 10
	bins := make([]int, (to-from)/bin)
	for _, s := range sends {
		if s >= from && s < to {
			bins[(s-from)/bin]++
		}
	}
	return bins
}

// beatGroup forms a group of n members at one instant and answers their
// held heartbeats at the end of each hold until horizon; it returns every
// held heartbeat's send time, as an offset from the formation.
func beatGroup(t *testing.T, n int, interval, horizon time.Duration, jitter func() float64) []time.Duration {
	t.Helper()
	coop, _ := assignor.Lookup("cooperative-sticky")
	var (
		ms    []*fsm.Member
		sends []time.Duration
		due   answers
	)
	// expect takes member i's output: at most one request, a held
	// heartbeat, whose answer it schedules.
	expect := func(i int, now time.Duration, out fsm.Output) {
		t.Helper()
		if len(out.Callbacks) > 0 && out.Callbacks[0].Kind == fsm.Lost {
			t.Fatalf("member %d lost its lease at %v: %+v", i, now, out.Events)
		}
		for _, r := range out.Requests {
			hb, ok := r.Msg.(*regroupv1.HeartbeatRequest)
			if !ok {
				t.Fatalf("member %d sent a %T at %v; want only heartbeats", i, r.Msg, now)
			}
			hold := time.Duration(hb.GetHoldMs()) * time.Millisecond
			if hold <= 0 || hold > interval {
				t.Fatalf("member %d held a heartbeat for %v; want (0, %v]", i, hold, interval)
			}
			sends = append(sends, now)
			heap.Push(&due, answer{at: now + hold, member: i, id: r.ID})
		}
	}
	for i := range n {
		m, err := fsm.New(fsm.Config{
			GroupID: "g", ClientID: "c", Topics: []string{"orders"}, Assignors: []assignor.Assignor{coop},
			SessionTimeout: 20 * time.Second, RebalanceTimeout: 30 * time.Second, HeartbeatInterval: interval,
			Margin: 2 * time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, Jitter: jitter,
		})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
		join := m.Start(epoch).Requests[0]
		out := m.Response(epoch, join.ID, &regroupv1.JoinGroupResponse{
			MemberId: fmt.Sprintf("m-%d", i), Generation: 1, LeaderId: "another", ProtocolName: "cooperative-sticky",
		}, nil)
		var sync uint64
		for _, r := range out.Requests {
			if _, ok := r.Msg.(*regroupv1.SyncGroupRequest); ok {
				sync = r.ID
				continue
			}
			expect(i, 0, fsm.Output{Requests: []fsm.Request{r}})
		}
		expect(i, 0, m.Response(epoch, sync, &regroupv1.SyncGroupResponse{
			Assignment:   &regroupv1.Assignment{Partitions: []*regroupv1.TopicPartitions{{Topic: "orders", Partitions: []int32{int32(i)}}}},
			FencingToken: 1 << 32,
		}, nil))
	}
	for due.Len() > 0 && due[0].at < horizon {
		a := heap.Pop(&due).(answer)
		if next := ms[a.member].NextDeadline(); !next.IsZero() && next.Before(epoch.Add(a.at)) {
			t.Fatalf("member %d wants a tick at %v, before its heartbeat's answer at %v", a.member, next.Sub(epoch), a.at)
		}
		expect(a.member, a.at, ms[a.member].Response(epoch.Add(a.at), a.id, &regroupv1.HeartbeatResponse{}, nil))
	}
	return sends
}

// answer is a heartbeat's answer due at an offset from the formation.
type answer struct {
	at     time.Duration
	member int
	id     uint64
}

// answers is a min-heap of answers by time.
type answers []answer

func (a answers) Len() int           { return len(a) }
func (a answers) Less(i, j int) bool { return a[i].at < a[j].at }
func (a answers) Swap(i, j int)      { a[i], a[j] = a[j], a[i] }
func (a *answers) Push(x any)        { *a = append(*a, x.(answer)) }
func (a *answers) Pop() any {
	old := *a
	x := old[len(old)-1]
	*a = old[:len(old)-1]
	return x
}
