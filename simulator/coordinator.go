package simulator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	cnode "github.com/regroup-dev/regroup/coordinator/node"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// coordinator is the simulated coordinator service: leaders, each the real
// node core (coordinator/node) on virtual time over a memory store, driven
// as coordinator.Server drives it. It adds only what the real world adds:
// the store's latency and faults, a leader's lease and its keep-alives,
// crashes and stop-the-world pauses of the leader's process, and the
// election of the next leader.
type coordinator struct {
	s     *sim
	shard int    // its index in cluster.shards
	name  string // in the trace: coord, or coord/SHARD when there are several
	cfg   cnode.Config
	sc    scenario.Coordinator
	data  *memstore.Data
	// lead is the leader members reach, or nil while none serves; upAt is
	// when the next one takes over, and gapErr what calls hear until then.
	lead   *leader
	upAt   int64
	gapErr error
	terms  int
	// electing: a next leader is being elected (its takeover is
	// scheduled at upAt); the leader in lead, if any, is deposed.
	electing bool
	// durable is false when no leader ever loads from the store (no
	// failover, no coordinator pause): then records need not be encoded.
	durable bool
	fault   scenario.StoreFault
	faultTo int64 // the store fault lasts until then

	waiters waiterTable
	spare   []*waiter // retired waiters, for reuse
	nextReq group.ReqID
	idsrc   *idSource
}

// leader is one coordinator process during its term of one shard.
type leader struct {
	c     *coordinator
	term  int
	n     *cnode.Node
	st    *memstore.Store
	start int64 // when its term began: keep-alives are sent every LeaseTTL/3 from then
	// pausedAt is when its process froze (-1 while it runs); inputs that
	// reach it meanwhile wait in queued until it wakes.
	pausedAt int64
	// lostAt is when its lease expired in etcd while it was frozen, or -1:
	// from then on its keep-alives fail and its term cannot be renewed.
	lostAt   int64
	queued   []event
	timerAt  int64 // armed deadline, or -1
	timerTok uint64
	spin     int // ticks in a row at one instant
	spinAt   int64
}

// waiter is a request waiting for its reply: a member's (proc set) or a
// scenario's topic change (topic set).
type waiter struct {
	req      group.ReqID
	proc     *process
	id       uint64 // the member's request id
	deadline int64  // the caller's deadline: replies after it are dropped
	topic    *regroupv1.Topic
}

// idSource mints member ids from the run's random source, "PREFIX-xxxxxxxx".
type idSource struct {
	s    *sim
	used map[string]bool
}

// MemberID implements group.IDSource.
func (i *idSource) MemberID(prefix string) string {
	for {
		id := fmt.Sprintf("%08x", i.s.rng.Uint32())
		if prefix != "" {
			id = prefix + "-" + id
		}
		if !i.used[id] {
			i.used[id] = true
			return id
		}
	}
}

func newCoordinator(s *sim, shard int, name string) *coordinator {
	c := &coordinator{
		s:      s,
		shard:  shard,
		name:   name,
		sc:     s.sc.Coordinator,
		data:   &memstore.Data{},
		gapErr: errConnection,
		idsrc:  s.ids,
	}
	c.cfg = cnode.Config{Group: c.sc.Group, IDs: c.idsrc}
	// The scenario's topics are in the store before the first leader
	// loads it: every shard's leader sees the whole registry.
	initial := c.data.Open()
	for _, t := range s.sc.Topics {
		if err := initial.PutTopic(context.Background(), &regroupv1.Topic{Name: t.Name, Partitions: t.Partitions}); err != nil {
			panic(fmt.Sprintf("simulator: the memory store failed: %v", err))
		}
	}
	for _, a := range s.sc.Actions {
		switch a.Do.(type) {
		case scenario.Failover, scenario.PauseCoordinator, scenario.AddCoordinator, scenario.RemoveCoordinator:
			c.durable = true
		}
	}
	return c
}

// validUntil is how long l's term certainly lasts: LeaseTTL after its last
// keep-alive, which it sends every LeaseTTL/3 while its process runs.
func (c *coordinator) validUntil(l *leader) int64 {
	if l.lostAt >= 0 {
		return l.lostAt
	}
	t := c.s.now
	if l.pausedAt >= 0 {
		t = l.pausedAt
	}
	period := max(int64(c.sc.LeaseTTL)/3, 1)
	last := t - (t-l.start)%period
	return last + int64(c.sc.LeaseTTL)
}

// step runs one event through l's node and carries out its output.
func (c *coordinator) step(l *leader, ev cnode.Event) {
	out := l.n.Step(cnode.Input{Now: c.s.clock(), ValidUntil: epoch.Add(time.Duration(c.validUntil(l))), Event: ev})
	c.apply(l, out)
}

// apply carries out a node's output as coordinator.Server does.
func (c *coordinator) apply(l *leader, out cnode.Output) {
	for _, o := range out.Observed {
		c.s.groupStep(o.Group, o.Event)
	}
	for _, f := range out.Faults {
		c.s.tracef(c.name, "fault handled: %s", f.Detail)
		c.s.metrics.StoreFaults++
	}
	for _, w := range out.Writes {
		c.write(l, w)
	}
	for _, id := range out.Loads {
		c.s.at(c.s.now+c.latency(), event{kind: evLoadDone, lead: l, name: id})
	}
	for _, r := range out.Replies {
		c.deliver(r)
	}
	if out.Ended != "" {
		c.s.tracef(c.name, "term %d ended: %s", l.term, out.Ended)
		l.timerTok++
		return
	}
	c.arm(l)
}

// latency draws a store operation's duration.
func (c *coordinator) latency() int64 {
	if c.fault.Kind == scenario.StoreSlow && c.s.now < c.faultTo {
		return c.s.draw(c.fault.Latency)
	}
	return c.s.draw(c.sc.WriteLatency)
}

// write starts a store write of l; its outcome arrives as evWriteDone.
func (c *coordinator) write(l *leader, w cnode.Write) {
	outcome := cnode.OK
	if c.s.now < c.faultTo {
		switch c.fault.Kind {
		case scenario.StoreFail:
			outcome = cnode.Failed
		case scenario.StoreLoseAcks:
			outcome = cnode.Unknown
		}
	}
	c.s.at(c.s.now+c.latency(), event{kind: evWriteDone, lead: l, write: w, outcome: outcome})
}

// writeDone completes a write: it reaches the store (unless it failed)
// and its outcome reaches l.
func (c *coordinator) writeDone(l *leader, w cnode.Write, outcome cnode.Outcome) {
	var err error
	if outcome != cnode.Failed && (c.durable || w.Group == nil) {
		switch {
		case w.Group != nil:
			err = l.st.PutGroup(context.Background(), w.Group)
		case w.Topic != nil:
			err = l.st.PutTopic(context.Background(), w.Topic)
		default:
			err = l.st.DeleteTopic(context.Background(), w.DeleteTopic)
		}
	}
	if err == nil && w.Group != nil && outcome != cnode.Failed {
		c.stored(w.Group.GetGroupId(), w.Group.GetGeneration())
	}
	switch {
	case errors.Is(err, store.ErrFenced):
		outcome = cnode.Fenced
	case err != nil:
		panic(fmt.Sprintf("simulator: the memory store failed: %v", err))
	case outcome == cnode.Failed:
		err = errors.New("the store refused the write (simulated fault)")
	case outcome == cnode.Unknown:
		err = errors.New("the write's acknowledgement was lost (simulated fault)")
	}
	c.input(l, event{kind: evWriteDone, lead: l, write: w, outcome: outcome, err: err})
}

// stored checks that a group's stored generation never goes back.
func (c *coordinator) stored(id string, gen int32) {
	gs := c.s.byGroup[id]
	if gs == nil {
		return
	}
	if gen < gs.durableGen {
		c.s.violate("generation", "the store's generation of group %s went back from %d to %d", id, gs.durableGen, gen)
	}
	gs.durableGen = max(gs.durableGen, gen)
}

// loadDone reads a group's record for l.
func (c *coordinator) loadDone(l *leader, id string) {
	done := cnode.LoadDone{Group: id, Outcome: cnode.OK}
	if c.fault.Kind == scenario.StoreFail && c.s.now < c.faultTo {
		done.Outcome, done.Err = cnode.Failed, errors.New("the store refused the read (simulated fault)")
	} else if snap, err := l.st.Load(context.Background()); errors.Is(err, store.ErrFenced) {
		done.Outcome, done.Err = cnode.Fenced, err
	} else if err != nil {
		panic(fmt.Sprintf("simulator: the memory store failed: %v", err))
	} else {
		done.Err = snap.Broken[id]
		for _, rec := range snap.Groups {
			if rec.GetGroupId() == id {
				done.Record = rec
			}
		}
	}
	c.step(l, done)
}

// input hands an event to l, or queues it while l's process is frozen.
// Events for a leader whose term ended are dropped: its process is gone.
func (c *coordinator) input(l *leader, e event) {
	if l.n.Ended() != "" && e.kind != evToCoord {
		return
	}
	if l.pausedAt >= 0 {
		l.queued = append(l.queued, e)
		return
	}
	switch e.kind {
	case evToCoord:
		c.request(l, e.proc, e.tok, e.msg, e.dur)
	case evWriteDone:
		c.step(l, cnode.WriteDone{ID: e.write.ID, Outcome: e.outcome, Err: e.err})
	case evLoadDone:
		c.loadDone(l, e.name)
	case evCoordTick:
		c.tick(l, e.tok)
	}
}

// receive handles a request of process p that reached the coordinator
// service: the leader gets it, or, while none serves, the connection is
// refused.
func (c *coordinator) receive(p *process, id uint64, msg proto.Message, timeout int64) {
	if c.lead == nil {
		c.s.sendReply(p, id, nil, c.gapErr)
		return
	}
	c.input(c.lead, event{kind: evToCoord, proc: p, tok: id, msg: msg, dur: timeout})
}

// request steps l with a member's request.
func (c *coordinator) request(l *leader, p *process, id uint64, msg proto.Message, timeout int64) {
	c.nextReq++
	req := c.nextReq
	w := c.newWaiter(req)
	w.proc, w.id, w.deadline = p, id, c.s.now+timeout
	c.waiters.add(req, w)
	c.step(l, cnode.Request{Req: req, Host: p.node.name, Msg: msg})
}

// putTopic asks the leader to store a topic as the scenario has it now, as
// an operator's `regroup topics put` does; a change that fails is retried
// a second later (with the topic's latest count, so retries never undo a
// later change), and one made while no leader serves waits for the next.
func (c *coordinator) putTopic(name string) {
	if c.lead == nil || c.lead.pausedAt >= 0 {
		c.s.at(max(c.upAt, c.s.now+int64(time.Second)), event{kind: evTopic, name: name, idx: c.shard})
		return
	}
	t := &regroupv1.Topic{Name: name, Partitions: c.s.topics[name]}
	c.nextReq++
	w := c.newWaiter(c.nextReq)
	w.topic, w.deadline = t, -1
	c.waiters.add(c.nextReq, w)
	c.step(c.lead, cnode.Request{Req: c.nextReq, Msg: &regroupv1.PutTopicRequest{Topic: t}})
}

// deliver sends a reply to its caller.
func (c *coordinator) deliver(r group.Reply) {
	w := c.waiters.get(r.Req)
	if w == nil {
		return // the caller left
	}
	proc, id, late, topic := w.proc, w.id, w.deadline >= 0 && c.s.now > w.deadline, w.topic
	c.retire(w)
	switch {
	case topic != nil && r.Err != nil:
		c.s.tracef(c.name, "topic %s not stored (%v); the operator retries in 1s", topic.GetName(), r.Err)
		c.s.at(c.s.now+int64(time.Second), event{kind: evTopic, name: topic.GetName(), idx: c.shard})
	case topic != nil:
	case !late:
		c.s.sendReply(proc, id, r.Msg, r.Err)
	}
}

// newWaiter returns a waiter for request req, reusing a retired one.
func (c *coordinator) newWaiter(req group.ReqID) *waiter {
	var w *waiter
	if n := len(c.spare); n > 0 {
		w = c.spare[n-1]
		c.spare = c.spare[:n-1]
	} else {
		w = &waiter{}
	}
	*w = waiter{req: req}
	return w
}

// retire forgets w, which no reply will use any more, and keeps it for
// reuse.
func (c *coordinator) retire(w *waiter) {
	c.waiters.remove(w.req)
	w.proc, w.topic = nil, nil
	c.spare = append(c.spare, w)
}

// arm sets l's timer to its node's next deadline.
func (c *coordinator) arm(l *leader) {
	next := l.n.NextDeadline()
	if next.IsZero() {
		l.timerTok++
		l.timerAt = -1
		return
	}
	at := max(int64(next.Sub(epoch)), c.s.now)
	if l.timerAt == at {
		return
	}
	l.timerTok++
	l.timerAt = at
	c.s.at(at, event{kind: evCoordTick, lead: l, tok: l.timerTok})
}

// tick fires l's timer.
func (c *coordinator) tick(l *leader, tok uint64) {
	if tok != l.timerTok {
		return
	}
	l.timerAt = -1
	if l.spinAt == c.s.now {
		l.spin++
		if l.spin > 1000 {
			c.s.stop("coordinator: NextDeadline stays at %v after Tick: the node or a group asks to be ticked again and again at one instant", time.Duration(c.s.now))
			return
		}
	} else {
		l.spin, l.spinAt = 0, c.s.now
	}
	c.step(l, cnode.Tick{})
}

// failover kills the leader's process: its calls end with connection
// errors, and a new leader takes over gap later.
func (c *coordinator) failover(gap int64) {
	l := c.lead
	for _, r := range l.n.End("the process was killed", errConnection).Replies {
		c.deliver(r)
	}
	l.timerTok++
	c.s.metrics.ShardFailovers++
	c.lead, c.gapErr = nil, errConnection
	c.upAt, c.electing = c.s.now+gap, true
	c.s.at(c.upAt, event{kind: evLeader, idx: c.shard})
}

// handoff hands the shard off gracefully (why says to whom): its leader
// answers every waiting call NOT_COORDINATOR and resigns; its store
// writes already under way still land, or are fenced once the next leader
// holds the shard. The next leader serves Election later, once elected
// and loaded; until then calls are refused as retriable.
func (c *coordinator) handoff(why string) {
	l := c.lead
	err := regroup.Errorf(regroup.CodeNotCoordinator, "this coordinator handed the group's shard off; retry on its new leader")
	for _, r := range l.n.End(why, err).Replies {
		c.deliver(r)
	}
	l.timerTok++
	c.s.tracef(c.name, "term %d ended: %s", l.term, why)
	c.s.metrics.Handoffs++
	c.lead, c.gapErr = nil, errHandoff
	c.upAt, c.electing = c.s.now+c.s.cl.handoffGap(), true
	c.s.at(c.upAt, event{kind: evLeader, idx: c.shard})
}

// pause freezes the leader's process for d. If its lease ends meanwhile, a
// new leader is elected, and the old one wakes deposed.
func (c *coordinator) pause(d int64) {
	l := c.lead
	l.pausedAt = c.s.now
	c.s.at(c.s.now+d, event{kind: evCoordWake, lead: l})
	expiry := c.validUntil(l)
	if c.s.now+d < expiry {
		c.s.tracef(c.name, "the leader's process freezes for %v, within its lease", time.Duration(d))
		return
	}
	l.lostAt = expiry
	c.upAt, c.electing = expiry+int64(c.sc.Election), true
	c.s.tracef(c.name, "the leader's process freezes for %v; its lease ends at %s and a new leader serves from %s",
		time.Duration(d), fmtTime(expiry), fmtTime(c.upAt))
	c.s.pending++ // until the new leader serves
	c.s.metrics.ShardFailovers++
	c.s.at(c.upAt, event{kind: evLeader, idx: c.shard})
}

// wake resumes a frozen leader: what reached it meanwhile is handled now,
// in order, with its stale timers.
func (c *coordinator) wake(l *leader) {
	l.pausedAt = -1
	queued := l.queued
	l.queued = nil
	c.s.tracef(c.name, "term %d: the leader's process wakes with %d queued inputs", l.term, len(queued))
	for _, e := range queued {
		c.input(l, e)
	}
	if l.n.Ended() == "" {
		c.step(l, cnode.Tick{})
	}
	c.s.cl.woke()
}

// takeOver makes a new leader: a new store term, every group loaded from
// the store and restored with the new leader's clock. A leader it replaces
// is deposed: its store writes are fenced from now on.
func (c *coordinator) takeOver() {
	c.terms++
	c.electing = false
	l := &leader{c: c, term: c.terms, st: c.data.Open(), start: c.s.now, pausedAt: -1, lostAt: -1, timerAt: -1}
	if len(c.s.cl.shards) > 1 {
		c.s.tracef(c.name, "term %d: %s leads the shard", l.term, c.s.cl.leader[c.shard])
	}
	snap, err := l.st.Load(context.Background())
	if err != nil {
		panic(fmt.Sprintf("simulator: loading the memory store: %v", err))
	}
	var out cnode.Output
	l.n, out = cnode.New(c.cfg, snap, c.s.clock(), epoch.Add(time.Duration(c.validUntil(l))))
	for id, err := range l.n.Broken() {
		c.s.violate("restore", "the new coordinator cannot restore group %s from its record: %v", id, err)
	}
	for _, id := range l.n.GroupIDs() {
		if g, err := l.n.Group(id); err == nil {
			c.s.tracef(c.name, "%s: restored %v generation %d", id, g.State(), g.Generation())
		}
	}
	c.lead = l
	c.apply(l, out)
}

// group returns the serving leader's group id, or nil.
func (c *coordinator) group(id string) *group.Group {
	if c.lead == nil || c.lead.pausedAt >= 0 {
		return nil
	}
	g, err := c.lead.n.Group(id)
	if err != nil {
		return nil
	}
	return g
}

// up reports whether a leader serves calls now.
func (c *coordinator) up() bool { return c.lead != nil && c.lead.pausedAt < 0 }

// setFault starts a store fault.
func (c *coordinator) setFault(f scenario.StoreFault) {
	c.fault, c.faultTo = f, c.s.now+int64(f.For)
}
