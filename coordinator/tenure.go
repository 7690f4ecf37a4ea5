package coordinator

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regroup-dev/regroup/coordinator/auth"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/node"
	"github.com/regroup-dev/regroup/coordinator/store"
)

// tenure is what a Server holds while it leads: the term's store and the
// node core that serves the term's groups. mu serializes the node's steps;
// the driver around it only moves messages: it hands calls to the node,
// delivers the node's replies, performs its store operations and wakes it
// at its deadline. A tenure ends once, when the term does (or the Server
// closes); the next term starts from the store with a new tenure.
type tenure struct {
	s     *Server
	st    store.Store
	term  Term // nil for a Server made by New
	since time.Time

	box inbox // calls waiting for the node; see run

	mu      sync.Mutex
	node    *node.Node
	waiters map[group.ReqID]chan group.Reply
	timerAt time.Time // the deadline its wake is set for (wakes), or zero
	part    *share    // what its node holds, in the process's counts

	// topicReads asks for a read of the topic registry (see
	// followTopics); nil if the store is this coordinator's alone.
	topicReads chan struct{}

	ended   atomic.Bool
	done    chan struct{} // closed by end
	endOnce sync.Once
}

// validUntil returns the term's validity, the zero time for a lone
// coordinator.
func (t *tenure) validUntil() time.Time {
	if t.term == nil {
		return time.Time{}
	}
	return t.term.ValidUntil()
}

// valid reports whether the tenure may still serve at now: it has not
// ended and its term's lease certainly has not expired.
func (t *tenure) valid(now time.Time) bool {
	return !t.ended.Load() && (t.term == nil || now.Before(t.term.ValidUntil()))
}

// call hands one request, which arrived at arrived, to the node (through
// the inbox) and waits for its answer, or for ctx. The time it waited
// before the node got to it is the node's measure of its load (see
// node.Overload).
func (t *tenure) call(ctx context.Context, host string, arrived time.Time, msg node.Request) (group.Reply, error) {
	if t.ended.Load() {
		return group.Reply{}, errEnded
	}
	ch := make(chan group.Reply, 1)
	msg.Req = group.ReqID(t.s.reqs.Add(1))
	msg.Host = host
	msg.Identity = auth.FromContext(ctx).Name
	if !t.box.put(queuedCall{ctx: ctx, arrived: arrived, msg: msg, ch: ch}) {
		return group.Reply{}, errEnded
	}
	select {
	case r := <-ch:
		return settled(r)
	case <-ctx.Done():
		select {
		case r := <-ch: // a reply raced in; prefer it to the context's error
			return settled(r)
		default:
		}
		t.box.drop(msg.Req)
		return group.Reply{}, ctx.Err()
	}
}

// settled turns the reply of a call that was queued when its tenure
// ended into errEnded.
func settled(r group.Reply) (group.Reply, error) {
	if r.Err == errEnded {
		return group.Reply{}, errEnded
	}
	return r, nil
}

// errEnded tells a caller that the tenure it found has ended; it looks up
// the current one.
var errEnded = errors.New("regroup: the tenure ended")

// step runs one event through the node, with t.mu held, and carries out the
// output.
func (t *tenure) step(ev node.Event) { t.stepQueued(ev, 0) }

// stepQueued is step for a call or a tick that waited queued before the
// node got to it.
func (t *tenure) stepQueued(ev node.Event, queued time.Duration) {
	out := t.node.Step(node.Input{Now: t.s.clock(), ValidUntil: t.validUntil(), Event: ev, Queued: queued, Elsewhere: t.part.elsewhere()})
	t.apply(out)
	t.part.publish(t.node.Counts())
	t.noteLoad()
}

// noteLoad tells operators when the node starts or stops shedding load,
// with t.mu held.
func (t *tenure) noteLoad() { t.setOverloaded(t.node.Overloaded(), "taking new work again") }

// setOverloaded records whether the process sheds load, and reports a
// change to the metrics and the log; why says why shedding ended.
func (t *tenure) setOverloaded(on bool, why string) {
	t.s.shared.noteOverloaded(on, func() {
		t.s.cfg.Metrics.Overloaded(on)
		if on {
			t.s.log.Warn("overloaded: shedding new members, groups not yet formed and Admin reads (COORDINATOR_OVERLOADED) while asking members to beat less often", "cause", t.node.OverloadCause())
		} else {
			t.s.log.Info("no longer overloaded: " + why)
		}
	})
}

// queued returns how long a call that arrived at arrived waited for the
// node, and reports it to the metrics; call it with t.mu held, just
// before the node gets to the call.
func (t *tenure) queued(arrived time.Time) time.Duration {
	return t.measured(time.Since(arrived))
}

// measured reports a queueing delay d to the metrics and returns it (0 if
// negative).
func (t *tenure) measured(d time.Duration) time.Duration {
	d = max(d, 0)
	t.s.cfg.Metrics.QueueDelay(d)
	return d
}

// admit asks the node whether it takes an Admin read that arrived at
// arrived (see node.Node.Admit), with t.mu held.
func (t *tenure) admit(method string, arrived time.Time) error {
	err := t.node.Admit(t.s.clock(), t.queued(arrived))
	t.noteLoad()
	if err != nil {
		t.s.cfg.Metrics.Shed(method)
	}
	return err
}

// apply carries out a node's output, with t.mu held.
func (t *tenure) apply(out node.Output) {
	for _, o := range out.Observed {
		t.s.observe(o.Group, o.Event)
	}
	for _, f := range out.Faults {
		t.s.log.Error("store or state fault handled", "group", f.Group, "detail", f.Detail)
	}
	for _, w := range out.Writes {
		go t.write(w)
	}
	for _, id := range out.Loads {
		go t.load(id)
	}
	if out.ReadTopics && t.topicReads != nil {
		t.wantTopics()
	}
	for _, r := range out.Replies {
		if ch := t.waiters[r.Req]; ch != nil {
			delete(t.waiters, r.Req)
			ch <- r
		}
	}
	if out.Ended != "" {
		t.ended.Store(true)
		t.stopTimer()
		go t.s.stepDown(t, out.Ended, false)
		return
	}
	t.arm()
}

// timerSlack is how long after the node's next deadline its timer fires,
// so that the deadlines that fall due within it are served in one wake.
// Held heartbeats of a group spread over the interval (member/fsm); with a
// wake each, 1,000 members cost the coordinator 19% of a core against 7%
// when they beat in step (bench/scale). Every deadline the node keeps is
// one it may serve late: a held answer or a barrier a few milliseconds
// later, a session that ends later (members fence themselves on their own
// clocks, from their send times).
const timerSlack = 5 * time.Millisecond

// arm asks for a wake timerSlack after the node's next deadline (see
// wakes).
func (t *tenure) arm() {
	next := t.node.NextDeadline()
	if next.IsZero() {
		t.stopTimer()
		return
	}
	if !t.timerAt.IsZero() && !next.Before(t.timerAt) && next.Before(t.timerAt.Add(timerSlack)) {
		return // the armed wake serves next too
	}
	t.timerAt = next
	t.s.shared.wakes.set(t, time.Now().Add(next.Sub(t.s.clock())+timerSlack))
}

func (t *tenure) stopTimer() {
	t.s.shared.wakes.clear(t)
	t.timerAt = time.Time{}
}

func (t *tenure) tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended.Load() {
		return
	}
	var late time.Duration
	if !t.timerAt.IsZero() {
		late = t.measured(t.s.clock().Sub(t.timerAt) - timerSlack)
	}
	t.timerAt = time.Time{}
	t.stepQueued(node.Tick{}, late)
}

// write performs one of the node's store writes and reports its outcome.
func (t *tenure) write(w node.Write) {
	ctx, cancel := context.WithTimeout(context.Background(), t.s.cfg.WriteTimeout)
	start := time.Now()
	var err error
	switch {
	case w.Group != nil:
		err = t.st.PutGroup(ctx, w.Group)
	case w.Topic != nil:
		err = t.st.PutTopic(ctx, w.Topic)
	default:
		err = t.st.DeleteTopic(ctx, w.DeleteTopic)
	}
	cancel()
	t.s.cfg.Metrics.StoreWrite(time.Since(start), err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ended.Load() {
		t.step(node.WriteDone{ID: w.ID, Outcome: outcomeOf(err), Err: err})
	}
}

// load reads one group's record for the node.
func (t *tenure) load(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), t.s.cfg.WriteTimeout)
	snap, err := t.st.Load(ctx)
	cancel()
	done := node.LoadDone{Group: id, Outcome: outcomeOf(err), Err: err}
	if err == nil {
		if berr := snap.Broken[id]; berr != nil {
			done.Err = berr
		}
		for _, rec := range snap.Groups {
			if rec.GetGroupId() == id {
				done.Record = rec
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ended.Load() {
		t.step(done)
	}
}

// outcomeOf classifies a store operation's error for the node.
func outcomeOf(err error) node.Outcome {
	switch {
	case err == nil:
		return node.OK
	case errors.Is(err, store.ErrFenced):
		return node.Fenced
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return node.Unknown
	}
	return node.Failed
}

// end ends the tenure: the node answers every waiting call with err, and
// calls the node never answered get it too. It returns the number of
// groups the tenure served. Only the first call does anything.
func (t *tenure) end(reason string, err error) int {
	n := 0
	t.endOnce.Do(func() {
		t.mu.Lock()
		n = len(t.node.GroupIDs())
		out := t.node.End(reason, err)
		out.Ended = ""
		out.Writes, out.Loads = nil, nil
		t.ended.Store(true)
		t.box.close()
		t.apply(out)
		t.stopTimer()
		if t.part.leave() {
			t.setOverloaded(false, "no longer leading") // the process sheds nothing now
		}
		for req, ch := range t.waiters {
			delete(t.waiters, req)
			ch <- group.Reply{Req: req, Err: err}
		}
		t.mu.Unlock()
		close(t.done)
	})
	return n
}

// inspect runs f on a group under the tenure's lock, for an Admin read
// (method) that arrived at arrived, or returns the error that answers it:
// COORDINATOR_OVERLOADED while the node sheds reads, or the group's.
func (t *tenure) inspect(method string, arrived time.Time, id string, f func(g *group.Group)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended.Load() {
		return errEnded
	}
	if err := t.admit(method, arrived); err != nil {
		return err
	}
	g, err := t.node.Group(id)
	if err != nil {
		return err
	}
	f(g)
	return nil
}
