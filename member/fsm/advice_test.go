package fsm_test

import (
	"testing"
	"time"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/member/fsm"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestOverloadAdviceLengthensHolds: while an overloaded coordinator's
// heartbeat answers ask for longer holds (next_hold_ms), the member holds
// its next heartbeat that long, capped at a third of its session and at
// half its lease, and probes no earlier; an answer without advice brings
// it back to its interval. No lease ends.
func TestOverloadAdviceLengthensHolds(t *testing.T) {
	const interval, session = 3 * time.Second, 20 * time.Second
	coop, _ := assignor.Lookup("cooperative-sticky")
	m, err := fsm.New(fsm.Config{
		GroupID: "g", ClientID: "c", Topics: []string{"orders"}, Assignors: []assignor.Assignor{coop},
		SessionTimeout: session, RebalanceTimeout: 30 * time.Second, HeartbeatInterval: interval,
		Margin: 2 * time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	join := m.Start(epoch).Requests[0]
	out := m.Response(epoch, join.ID, &regroupv1.JoinGroupResponse{
		MemberId: "m-1", Generation: 1, LeaderId: "another", ProtocolName: "cooperative-sticky",
	}, nil)
	var hb fsm.Request
	var sync uint64
	for _, r := range out.Requests {
		if _, ok := r.Msg.(*regroupv1.SyncGroupRequest); ok {
			sync = r.ID
		} else {
			hb = r
		}
	}
	out = m.Response(epoch, sync, &regroupv1.SyncGroupResponse{
		Assignment:   &regroupv1.Assignment{Partitions: []*regroupv1.TopicPartitions{{Topic: "orders", Partitions: []int32{0}}}},
		FencingToken: 1 << 32,
	}, nil)
	if len(out.Requests) > 0 {
		hb = out.Requests[0]
	}
	sent := time.Duration(0)
	// beat answers the heartbeat in flight at the end of its hold with
	// advice, and returns the next one's hold.
	beat := func(advice time.Duration) time.Duration {
		t.Helper()
		req, ok := hb.Msg.(*regroupv1.HeartbeatRequest)
		if !ok {
			t.Fatalf("want a heartbeat in flight, have %T", hb.Msg)
		}
		at := sent + time.Duration(req.GetHoldMs())*time.Millisecond
		if next := m.NextDeadline(); !next.IsZero() && next.Before(epoch.Add(at)) {
			t.Fatalf("the member wants to act at %v, before its held heartbeat's answer at %v", next.Sub(epoch), at)
		}
		out := m.Response(epoch.Add(at), hb.ID, &regroupv1.HeartbeatResponse{NextHoldMs: advice.Milliseconds()}, nil)
		for _, c := range out.Callbacks {
			if c.Kind == fsm.Lost {
				t.Fatalf("the lease ended at %v", at)
			}
		}
		if len(out.Requests) != 1 {
			t.Fatalf("after the answer at %v: %d requests, want the next heartbeat", at, len(out.Requests))
		}
		hb, sent = out.Requests[0], at
		return time.Duration(hb.Msg.(*regroupv1.HeartbeatRequest).GetHoldMs()) * time.Millisecond
	}
	if h := beat(0); h <= 0 || h > interval {
		t.Fatalf("without advice the hold is %v; want (0, %v]", h, interval)
	}
	// Capped at a third of the session and at half the lease left (about
	// 4.8 s here, once the holds have settled).
	for range 5 {
		if h := beat(16 * time.Second); h <= 4*time.Second || h > session/3 {
			t.Fatalf("advised 16s: the hold is %v; want more than 4s (the interval is %v), at most a third of the session", h, interval)
		}
	}
	if h := beat(4 * time.Second); h != 4*time.Second {
		t.Fatalf("advised 4s: the hold is %v; want 4s", h)
	}
	if h := beat(0); h <= 0 || h > interval {
		t.Fatalf("once the advice ends the hold is %v; want (0, %v] again", h, interval)
	}
}
