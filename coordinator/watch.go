package coordinator

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// watchBuffer is how many events a WatchGroup stream may have waiting to be
// sent before it is disconnected. A slow watcher must not slow the group
// down, and silently dropping events would show it a history that never
// happened, so it is told it fell behind and watches again.
const watchBuffer = 256

// watchers fans the events of groups out to the WatchGroup streams that
// follow them, by group id. publish runs under the group's lock, so every
// watch sees a group's events in the order they happened; it never blocks.
// The zero value is ready to use.
type watchers struct {
	mu     sync.Mutex
	byID   map[string]map[*watch]struct{}
	closed error // set by close: no new watch is accepted
}

// watch is one stream's subscription. The hub closes done, after setting
// err, when it drops the watch.
type watch struct {
	events chan *regroupv1.WatchGroupResponse
	done   chan struct{}
	err    error
}

// subscribe starts a watch of a group. Call it under the group's lock so
// that no event falls between the snapshot and the first event.
func (h *watchers) subscribe(id string) *watch {
	w := &watch{events: make(chan *regroupv1.WatchGroupResponse, watchBuffer), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed != nil {
		w.err = h.closed
		close(w.done)
		return w
	}
	if h.byID == nil {
		h.byID = map[string]map[*watch]struct{}{}
	}
	if h.byID[id] == nil {
		h.byID[id] = map[*watch]struct{}{}
	}
	h.byID[id][w] = struct{}{}
	return w
}

// cancel ends a watch; the stream went away.
func (h *watchers) cancel(id string, w *watch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remove(id, w)
}

// remove forgets w, with h.mu held.
func (h *watchers) remove(id string, w *watch) {
	delete(h.byID[id], w)
	if len(h.byID[id]) == 0 {
		delete(h.byID, id)
	}
}

// drop disconnects w with err, with h.mu held.
func (h *watchers) drop(id string, w *watch, err error) {
	h.remove(id, w)
	w.err = err
	close(w.done)
}

// publish hands one event of g to its watchers, dropping those that fell
// watchBuffer events behind.
func (h *watchers) publish(g *group.Group, now time.Time, e group.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ws := h.byID[g.ID()]
	if len(ws) == 0 {
		return
	}
	msg := watchEvent(e)
	if msg == nil {
		return
	}
	msg.Time, msg.Generation = timestamppb.New(now), g.Generation()
	for w := range ws {
		select {
		case w.events <- msg:
		default:
			h.drop(g.ID(), w, status.Errorf(codes.ResourceExhausted,
				"this watch fell %d events behind group %q and was disconnected; watch again", watchBuffer, g.ID()))
		}
	}
}

// close disconnects every watch with err and refuses new ones: the
// coordinator shuts down.
func (h *watchers) close(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = rpcerr.ToStatus(err)
	h.dropAll(h.closed)
}

// end disconnects every watch with err but accepts new ones: the
// coordinator stopped leading, and may lead again.
func (h *watchers) end(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropAll(rpcerr.ToStatus(err))
}

// dropAll disconnects every watch with err, with h.mu held.
func (h *watchers) dropAll(err error) {
	for id, ws := range h.byID {
		for w := range ws {
			h.drop(id, w, err)
		}
	}
}

// err returns the error close was given, or nil.
func (h *watchers) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// watchEvent converts an event into its stream message (without time and
// generation), or nil for kinds that are not streamed.
func watchEvent(e group.Event) *regroupv1.WatchGroupResponse {
	switch e.Kind {
	case group.EventStateChanged:
		return &regroupv1.WatchGroupResponse{Event: &regroupv1.WatchGroupResponse_StateChanged{
			StateChanged: &regroupv1.GroupStateChange{From: e.From.Proto(), To: e.To.Proto()}}}
	case group.EventRebalanceStarted:
		return &regroupv1.WatchGroupResponse{Event: &regroupv1.WatchGroupResponse_RebalanceStarted{
			RebalanceStarted: &regroupv1.RebalanceStarted{CauseKind: string(e.Cause), Cause: e.Detail}}}
	case group.EventRebalanceDone:
		r := e.Rebalance
		done := &regroupv1.RebalanceDone{
			Generation:        r.GetGeneration(),
			CauseKind:         r.GetCauseKind(),
			Cause:             r.GetCause(),
			Members:           int32(len(r.GetMembers())),
			PartitionsMoved:   r.GetPartitionsMoved(),
			PartitionsRevoked: r.GetPartitionsRevoked(),
			PartitionsUnowned: int32(e.Unowned),
			PartitionsLost:    r.GetPartitionsLost(),
		}
		if r.GetStart() != nil && r.GetEnd() != nil {
			done.Duration = durationpb.New(r.GetEnd().AsTime().Sub(r.GetStart().AsTime()))
		}
		if r.GetStart() != nil && r.GetJoinCompleted() != nil {
			done.JoinDuration = durationpb.New(r.GetJoinCompleted().AsTime().Sub(r.GetStart().AsTime()))
		}
		return &regroupv1.WatchGroupResponse{Event: &regroupv1.WatchGroupResponse_RebalanceDone{RebalanceDone: done}}
	case group.EventAssignmentRefused:
		return &regroupv1.WatchGroupResponse{Event: &regroupv1.WatchGroupResponse_AssignmentRefused{
			AssignmentRefused: &regroupv1.AssignmentRefused{LeaderId: e.Member, Reason: e.Detail}}}
	case group.EventMemberRemoved:
		return &regroupv1.WatchGroupResponse{Event: &regroupv1.WatchGroupResponse_MemberRemoved{
			MemberRemoved: &regroupv1.MemberRemoved{MemberId: e.Member, Reason: e.Detail}}}
	case group.EventMemberReplaced:
		return &regroupv1.WatchGroupResponse{Event: &regroupv1.WatchGroupResponse_MemberReplaced{
			MemberReplaced: &regroupv1.MemberReplaced{MemberId: e.Member, Detail: e.Detail}}}
	}
	return nil
}

// WatchGroup implements the Admin service: a snapshot of the group, then
// its events until the client goes away, falls behind, or the coordinator
// stops serving.
func (s *Server) WatchGroup(req *regroupv1.WatchGroupRequest, stream grpc.ServerStreamingServer[regroupv1.WatchGroupResponse]) error {
	id := req.GetGroupId()
	var w *watch
	var first *regroupv1.WatchGroupResponse
	err := s.inspect("WatchGroup", id, func(g *group.Group) {
		w = s.watchers.subscribe(id)
		first = &regroupv1.WatchGroupResponse{
			Time:       timestamppb.New(s.clock()),
			Generation: g.Generation(),
			Event:      &regroupv1.WatchGroupResponse_Snapshot{Snapshot: g.Summary()},
		}
	})
	if err != nil {
		return rpcerr.ToStatus(err)
	}
	defer s.watchers.cancel(id, w)
	if err := stream.Send(first); err != nil {
		return err
	}
	for {
		select {
		case msg := <-w.events:
			if err := stream.Send(msg); err != nil {
				return err
			}
		case <-w.done:
			return w.err
		case <-stream.Context().Done():
			return rpcerr.ToStatus(fmt.Errorf("watch of group %q ended: %w", id, stream.Context().Err()))
		}
	}
}
