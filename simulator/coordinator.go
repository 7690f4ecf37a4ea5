package simulator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// coordinator is the simulated coordinator: what coordinator.Server does
// with the group state machines, on virtual time. One leader serves at a
// time; a failover ends its term and a new leader loads the groups from the
// store, as coordinator.New does.
type coordinator struct {
	s    *sim
	cfg  group.Config
	data *memstore.Data
	st   *memstore.Store
	up   bool
	upAt int64 // when the next leader takes over, while down
	// durable is false when the scenario has no failover: then nothing
	// ever reads the store, and encoding records would change nothing.
	durable    bool
	registry   map[string]int32
	actors     map[string]*actorState
	ids        []string // actors' group ids, sorted
	tombstones map[string]*storev1.GroupRecord
	waiters    waiterTable
	spare      []*waiter // retired waiters, for reuse
	nextReq    group.ReqID
	idsrc      *idSource
}

// actorState is one group in the leader's memory, with its timer.
type actorState struct {
	g        *group.Group
	timerAt  int64 // armed deadline, or -1
	timerTok uint64
	gone     bool
	spin     int // ticks in a row at one instant
	spinAt   int64
	gs       *groupState // the scenario's group, or nil
}

// waiter is a request waiting for its reply. A held heartbeat's reply
// waits in held until its time, unless a later reply replaces it. Waiters
// are reused (see retire); holdTok only grows, so that an evHold event of a
// waiter's earlier use never matches.
type waiter struct {
	req      group.ReqID
	proc     *process
	id       uint64 // the member's request id
	deadline int64  // the caller's deadline: replies after it are dropped
	holding  bool   // held is a held reply
	held     proto.Message
	holdTok  uint64
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

func newCoordinator(s *sim) *coordinator {
	c := &coordinator{
		s:          s,
		cfg:        s.sc.Coordinator.Group,
		data:       &memstore.Data{},
		registry:   map[string]int32{},
		actors:     map[string]*actorState{},
		tombstones: map[string]*storev1.GroupRecord{},
		idsrc:      &idSource{s: s, used: map[string]bool{}},
	}
	c.st = c.data.Open()
	c.up = true
	for _, a := range s.sc.Actions {
		if _, ok := a.Do.(scenario.Failover); ok {
			c.durable = true
		}
	}
	return c
}

// putTopic changes the registry as Server.PutTopic does: store the topic,
// then hand the new registry to every group.
func (c *coordinator) putTopic(name string, partitions int32) error {
	if err := c.st.PutTopic(context.Background(), &regroupv1.Topic{Name: name, Partitions: partitions}); err != nil {
		return fmt.Errorf("regroup: simulator: storing topic %s: %w", name, err)
	}
	reg := maps.Clone(c.registry)
	reg[name] = partitions
	c.registry = reg
	for _, id := range slices.Clone(c.ids) {
		a := c.actors[id]
		out, change := a.g.SetTopics(c.s.clock(), reg)
		if change != "" {
			c.s.tracef("coord", "%s: topic change: %s", id, change)
		}
		c.apply(a, out)
	}
	return nil
}

// receive handles a request of process p that reached the coordinator.
func (c *coordinator) receive(p *process, id uint64, msg proto.Message, timeout int64) {
	if !c.up {
		c.s.sendReply(p, id, nil, errConnection)
		return
	}
	gid, create := groupOf(msg)
	if err := group.ValidateGroupID(gid); err != nil {
		c.s.sendReply(p, id, nil, err)
		return
	}
	a := c.lookup(gid, create)
	if a == nil {
		r := group.AnswerUnknownGroup(c.cfg, msg)
		c.s.sendReply(p, id, r.Msg, r.Err)
		return
	}
	c.nextReq++
	req := c.nextReq
	c.waiters.add(req, c.newWaiter(req, p, id, c.s.now+timeout))
	now := c.s.clock()
	var out group.Output
	switch r := msg.(type) {
	case *regroupv1.JoinGroupRequest:
		out = a.g.Join(now, req, p.node.name, r)
	case *regroupv1.SyncGroupRequest:
		out = a.g.Sync(now, req, r)
	case *regroupv1.HeartbeatRequest:
		out = a.g.Heartbeat(now, req, r)
	case *regroupv1.LeaveGroupRequest:
		out = a.g.Leave(now, req, r)
	default:
		panic(fmt.Sprintf("simulator: a member sent a %T", msg))
	}
	c.apply(a, out)
}

// groupOf returns the group a request names and whether a request for an
// unknown group creates it (a JoinGroup with no member id).
func groupOf(msg proto.Message) (string, bool) {
	switch r := msg.(type) {
	case *regroupv1.JoinGroupRequest:
		return r.GetGroupId(), r.GetMemberId() == ""
	case *regroupv1.SyncGroupRequest:
		return r.GetGroupId(), false
	case *regroupv1.HeartbeatRequest:
		return r.GetGroupId(), false
	case *regroupv1.LeaveGroupRequest:
		return r.GetGroupId(), false
	}
	panic(fmt.Sprintf("simulator: a member sent a %T", msg))
}

// lookup finds a group, or creates it (continuing a tombstone's
// generations), as Server.lookup does.
func (c *coordinator) lookup(id string, create bool) *actorState {
	if a := c.actors[id]; a != nil {
		return a
	}
	if !create {
		return nil
	}
	var g *group.Group
	if tomb := c.tombstones[id]; tomb != nil {
		restored, _, err := group.Restore(tomb, c.cfg, c.idsrc, c.registry, c.s.clock())
		if err != nil {
			panic(fmt.Sprintf("simulator: restoring the tombstone of group %s: %v", id, err))
		}
		g = restored
	} else {
		g = group.New(id, c.cfg, c.idsrc, c.registry, c.s.clock())
	}
	return c.add(g)
}

func (c *coordinator) add(g *group.Group) *actorState {
	a := &actorState{g: g, timerAt: -1, gs: c.s.byGroup[g.ID()]}
	c.actors[g.ID()] = a
	i, _ := slices.BinarySearch(c.ids, g.ID())
	c.ids = slices.Insert(c.ids, i, g.ID())
	return a
}

// apply carries out a step's output as the driver does: persist first,
// then reply, then forget a deleted group or re-arm its timer.
func (c *coordinator) apply(a *actorState, out group.Output) {
	c.s.groupStep(a, out.Events)
	if (out.Persist || out.Delete) && c.durable {
		if err := c.st.PutGroup(context.Background(), a.g.Record()); err != nil {
			// The store of the current term never fails in the simulator.
			panic(fmt.Sprintf("simulator: storing group %s: %v", a.g.ID(), err))
		}
	}
	for _, r := range out.Replies {
		c.deliver(r)
	}
	if out.Delete {
		a.gone = true
		a.timerTok++
		delete(c.actors, a.g.ID())
		i, _ := slices.BinarySearch(c.ids, a.g.ID())
		c.ids = slices.Delete(c.ids, i, i+1)
		c.tombstones[a.g.ID()] = a.g.Record()
		return
	}
	c.arm(a)
}

// deliver sends a reply now or, held, at its HoldUntil.
func (c *coordinator) deliver(r group.Reply) {
	w := c.waiters.get(r.Req)
	if w == nil {
		return // already answered (a held reply went out), or the caller left
	}
	if c.s.now > w.deadline {
		c.retire(w)
		return // the caller's deadline passed: gRPC dropped the call
	}
	w.holding, w.held = false, nil
	w.holdTok++
	if !r.HoldUntil.IsZero() {
		w.holding, w.held = true, r.Msg
		c.s.at(int64(r.HoldUntil.Sub(epoch)), event{kind: evHold, w: w, tok: w.holdTok})
		return
	}
	proc, id := w.proc, w.id
	c.retire(w)
	c.s.sendReply(proc, id, r.Msg, r.Err)
}

// newWaiter returns a waiter for request req, reusing a retired one.
func (c *coordinator) newWaiter(req group.ReqID, p *process, id uint64, deadline int64) *waiter {
	var w *waiter
	if n := len(c.spare); n > 0 {
		w = c.spare[n-1]
		c.spare = c.spare[:n-1]
	} else {
		w = &waiter{}
	}
	w.req, w.proc, w.id, w.deadline = req, p, id, deadline
	return w
}

// retire forgets w, which no reply will use any more, and keeps it for
// reuse; its hold events, if any, will not match it again.
func (c *coordinator) retire(w *waiter) {
	c.waiters.remove(w.req)
	w.holdTok++
	w.proc, w.holding, w.held = nil, false, nil
	c.spare = append(c.spare, w)
}

// hold sends a held reply whose time has come, unless it was replaced.
func (c *coordinator) hold(w *waiter, tok uint64) {
	if !w.holding || w.holdTok != tok || c.waiters.get(w.req) != w {
		return
	}
	proc, id, msg, late := w.proc, w.id, w.held, c.s.now > w.deadline
	c.retire(w)
	if !late {
		c.s.sendReply(proc, id, msg, nil)
	}
}

// arm makes sure the group's timer fires no later than its next
// deadline. An armed timer that fires before the deadline re-arms itself
// without ticking the group, so the group is ticked only at deadlines it
// asked for, as the driver's timer does.
func (c *coordinator) arm(a *actorState) {
	next := a.g.NextDeadline()
	if next.IsZero() {
		return
	}
	at := int64(next.Sub(epoch))
	if a.timerAt >= 0 && a.timerAt <= at {
		return
	}
	a.timerTok++
	a.timerAt = at
	c.s.at(at, event{kind: evGroupTick, act: a, tok: a.timerTok})
}

// tick fires a group's timer.
func (c *coordinator) tick(a *actorState, tok uint64) {
	if a.gone || tok != a.timerTok {
		return
	}
	a.timerAt = -1
	if next := a.g.NextDeadline(); next.IsZero() || next.After(c.s.clock()) {
		c.arm(a)
		return
	}
	if a.spinAt == c.s.now {
		a.spin++
		if a.spin > 1000 {
			c.s.stop("group %s: NextDeadline stays at %v after Tick: coordinator/group asks to be ticked again and again at one instant", a.g.ID(), time.Duration(c.s.now))
			return
		}
	} else {
		a.spin, a.spinAt = 0, c.s.now
	}
	c.apply(a, a.g.Tick(c.s.clock()))
}

// failover ends the leader's term: every waiting request is answered with
// COORDINATOR_NOT_AVAILABLE (as Server.Close does), the groups are dropped
// from memory, and nobody serves until the new leader takes over at upAt.
func (c *coordinator) failover(gap int64) {
	err := regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "the coordinator lost its leadership; retry on another one")
	for _, id := range c.ids {
		a := c.actors[id]
		for _, r := range a.g.Abort(err).Replies {
			c.deliver(r)
		}
		a.gone = true
		a.timerTok++
	}
	for _, w := range c.waiters.all() {
		proc, id, late := w.proc, w.id, c.s.now > w.deadline
		c.retire(w)
		if !late {
			c.s.sendReply(proc, id, nil, err)
		}
	}
	c.actors, c.ids, c.tombstones = map[string]*actorState{}, nil, map[string]*storev1.GroupRecord{}
	c.up = false
	c.upAt = c.s.now + gap
}

// takeOver makes a new leader: a new store term, and every group loaded
// from the store and restored with the new leader's clock, as
// coordinator.New does.
func (c *coordinator) takeOver() error {
	c.st = c.data.Open()
	snap, err := c.st.Load(context.Background())
	if err != nil {
		return fmt.Errorf("regroup: simulator: loading the store: %w", err)
	}
	if len(snap.Broken) > 0 {
		return fmt.Errorf("regroup: simulator: the store holds records that cannot be decoded: %v", snap.Broken)
	}
	c.registry = map[string]int32{}
	for _, t := range snap.Topics {
		c.registry[t.GetName()] = t.GetPartitions()
	}
	c.up = true
	for _, rec := range snap.Groups {
		if rec.GetState() == regroupv1.GroupState_GROUP_STATE_DEAD {
			c.tombstones[rec.GetGroupId()] = rec
			continue
		}
		g, out, err := group.Restore(rec, c.cfg, c.idsrc, c.registry, c.s.clock())
		if err != nil {
			c.s.violate("restore", "the new coordinator cannot restore group %s from its record: %v", rec.GetGroupId(), err)
			continue
		}
		c.s.tracef("coord", "%s: restored %v generation %d", g.ID(), g.State(), g.Generation())
		c.apply(c.add(g), out)
	}
	return nil
}
