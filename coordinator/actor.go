package coordinator

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store"
)

// errRetry tells a caller that the group it locked was dropped meanwhile
// (deleted, or lost after a failed write) and it must look it up again.
var errRetry = errors.New("regroup: group was dropped; look it up again")

// actor owns one group: its lock serializes the group's inputs, and it keeps
// the requests waiting for replies and the group's timer. Groups do not
// share locks, so different groups proceed in parallel.
type actor struct {
	s  *Server
	t  *tenure
	mu sync.Mutex
	g  *group.Group

	waiters map[group.ReqID]*waiter
	timer   *time.Timer
	timerAt time.Time
	gone    bool
}

// waiter is a request waiting for its reply. A held heartbeat's reply waits
// in hold until its time comes, unless a later reply replaces it.
type waiter struct {
	ch   chan group.Reply
	hold *time.Timer
}

func (s *Server) newActor(t *tenure, g *group.Group) *actor {
	return &actor{s: s, t: t, g: g, waiters: map[group.ReqID]*waiter{}}
}

// stale reports, with a.mu held, whether the actor must not step its group
// again: the group was dropped, or its tenure ended.
func (a *actor) stale() bool {
	return a.gone || a.t.ended.Load()
}

// call steps the group with one request and waits for its reply. It returns
// errRetry if the group was dropped before the request reached it.
func (a *actor) call(ctx context.Context, step func(g *group.Group, now time.Time, req group.ReqID) group.Output) (group.Reply, error) {
	req := group.ReqID(a.s.reqs.Add(1))
	w := &waiter{ch: make(chan group.Reply, 1)}
	a.mu.Lock()
	if a.stale() {
		a.mu.Unlock()
		return group.Reply{}, errRetry
	}
	a.waiters[req] = w
	a.step(func() group.Output { return step(a.g, a.s.clock(), req) })
	a.mu.Unlock()
	select {
	case r := <-w.ch:
		return r, nil
	case <-ctx.Done():
		a.mu.Lock()
		if a.waiters[req] == w {
			delete(a.waiters, req)
			if w.hold != nil {
				w.hold.Stop()
			}
		}
		a.mu.Unlock()
		// A reply may have raced in; prefer it to the context's error.
		select {
		case r := <-w.ch:
			return r, nil
		default:
		}
		return group.Reply{}, ctx.Err()
	}
}

// step runs one input of the group and applies its output, with a.mu held.
// Should the state machine panic (a bug), only this group suffers: it is
// dropped as after a failed write, its waiting requests are answered, and
// the next request reloads it from the store.
func (a *actor) step(input func() group.Output) {
	defer func() {
		if r := recover(); r != nil {
			a.s.log.Error("BUG: the group state machine panicked; dropping the group, which reloads from the store",
				"group", a.g.ID(), "panic", r, "stack", string(debug.Stack()))
			a.drop(group.Output{}, regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "internal error in group %q; retry", a.g.ID()), fmt.Errorf("panic: %v", r))
		}
	}()
	a.apply(input())
}

// apply carries out a step's Output, with a.mu held: persist first, then
// reply, then re-arm the timer. If the write fails the group is dropped:
// every request waiting on it gets the write's error, and the next request
// reloads the group from the store.
func (a *actor) apply(out group.Output) {
	a.s.observe(a.g, out)
	if out.Persist || out.Delete {
		if err := a.persist(); err != nil {
			a.drop(out, writeError(err), err)
			return
		}
	}
	for _, r := range out.Replies {
		a.deliver(r)
	}
	if out.Delete {
		a.gone = true
		a.stopTimer()
		a.t.forget(a, a.g.Record())
		return
	}
	a.arm()
}

// drop abandons the group after a failed write (or a bug): every request
// waiting on it gets rerr; cause says what happened.
func (a *actor) drop(out group.Output, rerr, cause error) {
	for _, r := range out.Replies {
		a.deliver(group.Reply{Req: r.Req, Err: rerr})
	}
	a.end(rerr)
	a.s.lost(a, cause)
}

// end answers every request still waiting on the group with err and stops
// the actor, with a.mu held.
func (a *actor) end(err error) {
	for _, r := range a.g.Abort(err).Replies {
		a.deliver(r)
	}
	for req, w := range a.waiters {
		if w.hold != nil {
			w.hold.Stop()
		}
		delete(a.waiters, req)
		w.ch <- group.Reply{Req: req, Err: err}
	}
	a.gone = true
	a.stopTimer()
}

// writeError is what members hear when the group's record could not be
// written: NOT_COORDINATOR if this coordinator was deposed, else
// COORDINATOR_NOT_AVAILABLE.
func writeError(err error) error {
	if errors.Is(err, store.ErrFenced) {
		return regroup.Errorf(regroup.CodeNotCoordinator, "this coordinator is no longer the leader")
	}
	return regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "the group's record could not be stored (%v); retry", err)
}

// deliver hands a reply to its waiter, now or, for a held heartbeat, at its
// hold time.
func (a *actor) deliver(r group.Reply) {
	w := a.waiters[r.Req]
	if w == nil {
		return // the client went away, or a held reply was already sent
	}
	if w.hold != nil {
		w.hold.Stop()
		w.hold = nil
	}
	if !r.HoldUntil.IsZero() {
		held := group.Reply{Req: r.Req, Msg: r.Msg}
		w.hold = time.AfterFunc(r.HoldUntil.Sub(a.s.clock()), func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.waiters[held.Req] == w {
				delete(a.waiters, held.Req)
				w.ch <- held
			}
		})
		return
	}
	delete(a.waiters, r.Req)
	w.ch <- r
}

// arm sets the timer to the group's next deadline.
func (a *actor) arm() {
	next := a.g.NextDeadline()
	if next.IsZero() {
		a.stopTimer()
		return
	}
	if next.Equal(a.timerAt) && a.timer != nil {
		return
	}
	a.timerAt = next
	d := next.Sub(a.s.clock())
	if a.timer == nil {
		a.timer = time.AfterFunc(d, a.tick)
		return
	}
	a.timer.Reset(d)
}

func (a *actor) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
	}
	a.timerAt = time.Time{}
}

func (a *actor) tick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stale() {
		return
	}
	a.timerAt = time.Time{}
	a.step(func() group.Output { return a.g.Tick(a.s.clock()) })
}

// abort answers every waiting request with err and stops the group's timer:
// the coordinator is shutting down or lost its leadership.
func (a *actor) abort(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.gone {
		a.end(err)
	}
}
