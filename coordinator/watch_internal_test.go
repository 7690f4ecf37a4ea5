package coordinator

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

type fixedIDs struct{}

func (fixedIDs) MemberID(prefix string) string { return prefix + "-1" }

func TestSlowWatcherIsDisconnected(t *testing.T) {
	var h watchers
	g := group.New("g", group.DefaultConfig(), fixedIDs{}, map[string]int32{}, time.Unix(0, 0))
	slow := h.subscribe("g")
	fast := h.subscribe("g")
	other := h.subscribe("h")
	e := group.Event{Kind: group.EventStateChanged, From: group.Empty, To: group.PreparingRebalance}
	for i := range watchBuffer + 1 {
		h.publish(g, time.Unix(int64(i), 0), e)
		select {
		case <-fast.events:
		default:
			t.Fatalf("event %d did not reach the watcher that keeps up", i)
		}
	}
	select {
	case <-slow.done:
	default:
		t.Fatalf("a watcher %d events behind is still connected", watchBuffer+1)
	}
	if status.Code(slow.err) != codes.ResourceExhausted {
		t.Errorf("slow watcher ended with %v, want RESOURCE_EXHAUSTED", slow.err)
	}
	select {
	case <-fast.done:
		t.Fatalf("the watcher that keeps up was disconnected: %v", fast.err)
	default:
	}
	if len(other.events) != 0 {
		t.Errorf("a watcher of group h received %d events of group g", len(other.events))
	}

	h.close(regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "shutting down"))
	for _, w := range []*watch{fast, other, h.subscribe("g")} {
		select {
		case <-w.done:
		default:
			t.Fatal("a watch is still open after close")
		}
		if status.Code(w.err) != codes.Unavailable {
			t.Errorf("watch ended with %v, want UNAVAILABLE (COORDINATOR_NOT_AVAILABLE)", w.err)
		}
	}
}

// A rebalance's done event carries the partitions members reported lost
// during it to WatchGroup.
func TestWatchEventCarriesPartitionsLost(t *testing.T) {
	msg := watchEvent(group.Event{Kind: group.EventRebalanceDone, Unowned: 2,
		Rebalance: &regroupv1.Rebalance{Generation: 3, PartitionsLost: 5}})
	done := msg.GetRebalanceDone()
	if done.GetPartitionsLost() != 5 || done.GetPartitionsUnowned() != 2 || done.GetGeneration() != 3 {
		t.Fatalf("done event %v; want generation 3, 2 unowned, 5 lost", done)
	}
}
