package node_test

import (
	"testing"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/node"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/internal/scenario"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestSharedMeter shows that the nodes of one process shed together when
// they share a Meter: a queue that stands before one of them (the
// process's CPU is short) makes the other refuse newcomers at its first
// call, which a node with a meter of its own takes.
func TestSharedMeter(t *testing.T) {
	o := node.Overload{Delay: 200 * time.Millisecond}
	start := func(m node.Load) *node.Node {
		snap := &store.Snapshot{Broken: map[string]error{}, GroupKeys: "groups/", TopicKeys: "topics/"}
		n, _ := node.New(node.Config{Group: group.DefaultConfig(), IDs: &scenario.SeqIDs{}, Overload: o, Load: m}, snap, epoch, time.Time{})
		return n
	}
	slow := 300 * time.Millisecond
	for _, tc := range []struct {
		name   string
		shared bool
		want   regroup.Code
	}{
		{"shared", true, regroup.CodeCoordinatorOverloaded},
		{"own", false, regroup.CodeMemberIDRequired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m node.Load
			if tc.shared {
				m = node.NewMeter(o)
			}
			a, b := start(m), start(m)
			// Two whole intervals of slow reads on a.
			for _, at := range []time.Duration{0, 500 * time.Millisecond, 1100 * time.Millisecond, 1600 * time.Millisecond, 2200 * time.Millisecond} {
				_ = a.Admit(epoch.Add(at), slow)
			}
			if !a.Overloaded() {
				t.Fatal("a: not overloaded after two intervals of slow calls; the test shows nothing")
			}
			out := b.Step(node.Input{Now: epoch.Add(2300 * time.Millisecond), Queued: slow, Event: node.Request{Req: 1,
				Msg: &regroupv1.JoinGroupRequest{GroupId: "g", ClientId: "c", SessionTimeoutMs: 10_000, RebalanceTimeoutMs: 30_000,
					Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}}}}}}})
			if len(out.Replies) != 1 {
				t.Fatalf("b: %d replies to a newcomer's join, want 1", len(out.Replies))
			}
			if got := regroup.CodeOf(out.Replies[0].Err); got != tc.want {
				t.Fatalf("b: a newcomer's join answered %v (%v), want %s", got, out.Replies[0].Err, tc.want)
			}
		})
	}
}
