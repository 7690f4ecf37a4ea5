// Package node is one coordinator's term as a pure state machine: everything
// a coordinator decides above one group. It keeps the table of groups
// (coordinator/group state machines), creates a group on a valid first
// join, keeps tombstones of deleted groups, fans topic-registry changes out
// to the groups that subscribe, restores the groups when the term starts,
// decides what a failed, unacknowledged or fenced store write means, and
// stops the moment the term may have ended.
//
// Like coordinator/group it reads no clock, starts no goroutine and does no
// I/O: each Input carries the time and the term's validity, and each step
// returns an Output (replies, store writes and loads to perform) and a
// NextDeadline. The coordinator's gRPC server and the simulator both drive
// it, so that whatever one does, the other does too.
//
// The rules it keeps:
//   - No reply leaves before the state it reflects is durable: a group's
//     replies wait until the write of every change before them succeeded.
//   - A failed or unacknowledged write keeps the group in memory (its
//     generation never goes down): the replies that waited on it are
//     answered COORDINATOR_NOT_AVAILABLE, and so is every call to the group
//     until a retry of the write succeeds.
//   - A group is never created over a stored record: a group that is being
//     reloaded, or whose record is broken, refuses every call.
//   - Past the term's validity the node delivers nothing, fires nothing and
//     accepts nothing: it answers every waiting call NOT_COORDINATOR and
//     ends.
package node

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/internal/minheap"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Config configures a Node.
type Config struct {
	// Group holds the protocol settings of every group.
	Group group.Config
	// IDs mints member ids and secrets.
	IDs group.IDSource
	// ForEach calls f(0), ..., f(n-1), in any order and possibly at once;
	// New restores the loaded groups through it. nil calls them in order.
	ForEach func(n int, f func(i int))
	// Overload says when the node sheds new work; the zero value never
	// does.
	Overload Overload
	// Load, if not nil, is the load meter the node shares with the other
	// nodes of its process (see Load), and Overload is ignored; nil gives
	// the node a Meter of its own.
	Load Load
}

// Retry delays after a failed store operation: they double from
// minRetry up to maxRetry.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 2 * time.Second
)

// Node is one coordinator's term. It is not safe for concurrent use: the
// driver serializes Step and the queries.
type Node struct {
	cfg        Config
	now        time.Time
	validUntil time.Time
	ended      string

	groups     map[string]*entry
	tombstones map[string]*storev1.GroupRecord
	broken     map[string]error
	registry   map[string]int32
	// admitted counts the members of all groups (group.Group.Admitted),
	// against group.Config.MaxMembers.
	admitted int

	groupKeys    string              // where group records live (store.Snapshot.GroupKeys)
	topicKeys    string              // and topic records
	brokenTopics map[string]error    // topics whose stored record is unusable
	awaitTopic   map[string][]string // broken topic -> the groups it disables

	timers timerHeap          // groups' deadlines
	holds  minheap.Heap[hold] // held replies' times
	held   map[group.ReqID]group.Reply

	nextWrite WriteID
	writes    map[WriteID]*entry // group writes in flight
	topics    topicQueue

	load Load // see Overload
	// elsewhere is what the process's other nodes hold, as of the last
	// step (Input.Elsewhere).
	elsewhere Elsewhere
	// arrivals is when each held call in the node (a Heartbeat, a
	// Reconcile) came to the driver, its step less its queueing: its answer
	// says how long the coordinator held it (see stamp).
	arrivals map[group.ReqID]time.Time

	out Output // the step's output, being built
}

// entry is a group in the node's table, with what its durability needs.
type entry struct {
	id string
	g  *group.Group // nil while loading

	// version counts the group's changes that must be durable; durable is
	// the version the store is known to hold; writing is the write in
	// flight (0 if none) and writingVersion the version it holds.
	version, durable, writingVersion uint64
	writing                          WriteID
	withheld                         []withheld
	// failing: the last write (or load) failed; nothing is accepted until
	// a retry at retryAt succeeds.
	failing  bool
	failures int
	retryAt  time.Time
	// loading: the group is being read from the store after a failure.
	loading bool
	// tomb is the tombstone being written for a deleted group.
	tomb *storev1.GroupRecord
	// admitted is what the group counted in Node.admitted at its last
	// step (group.Group.Admitted).
	admitted int
	// created: a join created the group (from origin, its tombstone, if
	// any); until its first write it is dropped as soon as it is vacant.
	created bool
	origin  *storev1.GroupRecord

	timerAt  time.Time // armed deadline in the node's heap, or zero
	timerIdx int       // index in the heap, or -1
}

// withheld is a reply that waits until version need is durable.
type withheld struct {
	reply group.Reply
	need  uint64
}

// New starts a term from what the store holds, at now. Every group gets a
// full session timeout from now (see group.Restore). Records that cannot
// be restored are reported by Broken; their groups refuse every call.
func New(cfg Config, snap *store.Snapshot, now, validUntil time.Time) (*Node, Output) {
	n := &Node{
		cfg:        cfg,
		now:        now,
		validUntil: validUntil,
		groups:     map[string]*entry{},
		tombstones: map[string]*storev1.GroupRecord{},
		broken:     map[string]error{},
		registry:   map[string]int32{},

		groupKeys:    snap.GroupKeys,
		brokenTopics: map[string]error{},
		awaitTopic:   map[string][]string{},
		held:         map[group.ReqID]group.Reply{},
		arrivals:     map[group.ReqID]time.Time{},
		writes:       map[WriteID]*entry{},
		load:         cfg.Load,
	}
	if n.load == nil {
		n.load = NewMeter(cfg.Overload)
	}
	n.loadTopics(snap)
	maps.Copy(n.broken, snap.Broken)
	type restored struct {
		g   *group.Group
		out group.Output
		err error
	}
	res := make([]restored, len(snap.Groups))
	restore := func(i int) {
		if rec := snap.Groups[i]; !isDead(rec) && n.usesBrokenTopic(rec) == "" {
			res[i].g, res[i].out, res[i].err = group.Restore(rec, cfg.Group, cfg.IDs, n.registry, now)
		}
	}
	if cfg.ForEach != nil {
		cfg.ForEach(len(snap.Groups), restore)
	} else {
		for i := range snap.Groups {
			restore(i)
		}
	}
	for i, rec := range snap.Groups {
		id := rec.GetGroupId()
		switch {
		case isDead(rec):
			n.tombstones[id] = rec
		case n.usesBrokenTopic(rec) != "":
			n.breakForTopic(id, n.usesBrokenTopic(rec))
		case res[i].err != nil:
			n.broken[id] = n.brokenRecord(rec, res[i].err)
		default:
			e := n.add(id, res[i].g)
			n.after(e, res[i].out)
		}
	}
	return n, n.take()
}

// Step runs one input and returns what the driver must do.
func (n *Node) Step(in Input) Output {
	if in.Now.After(n.now) {
		n.now = in.Now
	}
	if !in.ValidUntil.IsZero() {
		n.validUntil = in.ValidUntil
	}
	n.elsewhere = in.Elsewhere
	if n.ended == "" && !n.validUntil.IsZero() && !n.now.Before(n.validUntil) {
		n.endWith("the term's lease may have expired", nil)
	}
	if n.ended != "" {
		if r, ok := in.Event.(Request); ok {
			n.send(group.Reply{Req: r.Req, Err: n.endError()})
		}
		return n.take()
	}
	switch e := in.Event.(type) {
	case Request:
		n.load.Observe(n.now, in.Queued)
		switch e.Msg.(type) {
		case *regroupv1.HeartbeatRequest, *regroupv1.ReconcileRequest:
			n.arrivals[e.Req] = n.now.Add(-in.Queued)
		}
		n.request(e)
	case Tick:
		n.load.Observe(n.now, in.Queued)
		n.tick()
	case WriteDone:
		n.writeDone(e)
	case LoadDone:
		n.loadDone(e)
	case TopicsStored:
		n.topics.stored(n, e)
	default:
		panic(fmt.Sprintf("node: Step with event %T", in.Event))
	}
	return n.take()
}

// take returns the output built so far and starts a new one.
func (n *Node) take() Output {
	out := n.out
	n.out = Output{}
	return out
}

// Ended returns why the term ended, or "" while it lasts.
func (n *Node) Ended() string { return n.ended }

// End ends the term at once, for the reason given (the driver is shutting
// down, or learned that the lease is gone): every waiting call is answered
// with err (NOT_COORDINATOR if nil) and the node refuses all calls from now
// on.
func (n *Node) End(reason string, err error) Output {
	if n.ended == "" {
		n.endWith(reason, err)
	}
	return n.take()
}

func (n *Node) endError() error {
	return regroup.Errorf(regroup.CodeNotCoordinator, "this coordinator stopped leading (%s); retry on another one", n.ended)
}

// endWith ends the term: every waiting call is answered with err, or
// NOT_COORDINATOR naming reason if err is nil.
func (n *Node) endWith(reason string, err error) {
	n.ended = reason
	if err == nil {
		err = n.endError()
	}
	for _, id := range slices.Sorted(maps.Keys(n.groups)) {
		e := n.groups[id]
		for _, w := range e.withheld {
			n.send(group.Reply{Req: w.reply.Req, Err: err})
		}
		e.withheld = nil
		if e.g != nil {
			n.abort(e, err)
		}
	}
	for _, req := range slices.Sorted(maps.Keys(n.held)) {
		n.send(group.Reply{Req: req, Err: err})
	}
	n.topics.fail(n, err)
	n.out.Ended = reason
}

// abort answers the group's parked requests with err. A group whose state
// machine panics here is left alone (a bug, already reported): its parked
// calls end at their callers' deadlines.
func (n *Node) abort(e *entry, err error) {
	defer func() { _ = recover() }()
	for _, r := range e.g.Abort(err).Replies {
		n.send(r)
	}
}

// NextDeadline returns when the node must be ticked next, or the zero time.
func (n *Node) NextDeadline() time.Time {
	if n.ended != "" {
		return time.Time{}
	}
	next := n.validUntil
	at := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if len(n.timers) > 0 {
		at(n.timers[0].timerAt)
	}
	for len(n.holds) > 0 {
		h := n.holds[0]
		if r, ok := n.held[h.req]; ok && r.HoldUntil.Equal(h.at) {
			at(h.at)
			break
		}
		n.holds.Pop()
	}
	return next
}

// tick fires whatever is due: held replies, groups' timers, retries.
func (n *Node) tick() {
	for len(n.holds) > 0 && !n.holds[0].at.After(n.now) {
		h := n.holds.Pop()
		if r, ok := n.held[h.req]; ok && r.HoldUntil.Equal(h.at) {
			delete(n.held, h.req)
			n.deliver(r)
		}
	}
	// Take the due groups first, so that each is ticked once per Tick even
	// if it asks to be ticked again at once.
	var due []*entry
	for len(n.timers) > 0 && !n.timers[0].timerAt.After(n.now) {
		e := n.timers[0]
		n.timers.remove(e)
		due = append(due, e)
	}
	for _, e := range due {
		switch {
		case e.failing && e.loading:
			e.failing = false
			n.out.Loads = append(n.out.Loads, e.id)
		case e.failing:
			n.flush(e, true)
			n.arm(e)
		case e.g != nil:
			n.stepGroup(e, func(g *group.Group) group.Output { return g.Tick(n.now) })
		}
	}
}

// add puts a group in the table.
func (n *Node) add(id string, g *group.Group) *entry {
	e := &entry{id: id, g: g, timerIdx: -1}
	n.groups[id] = e
	return e
}

// forget drops a group from the table.
func (n *Node) forget(e *entry) {
	n.timers.remove(e)
	delete(n.groups, e.id)
	n.admitted -= e.admitted
	e.admitted = 0
}

// stepGroup runs one input of e's group and carries out its output. Should
// the state machine panic (a bug), only this group suffers: its waiting
// calls are answered COORDINATOR_NOT_AVAILABLE and it is reloaded from the
// store.
// It reports whether the step completed.
func (n *Node) stepGroup(e *entry, input func(g *group.Group) group.Output) bool {
	out, ok := n.safely(e, input)
	if ok {
		n.after(e, out)
		n.dropIfVacant(e)
	}
	return ok
}

// dropIfVacant forgets a group that a join created and that never got a
// member (see group.Group.Vacant): nothing of it was stored, so nothing is
// written; a tombstone it continued is kept again.
func (n *Node) dropIfVacant(e *entry) {
	if !e.created || e.version > 0 || !e.g.Vacant() {
		return
	}
	n.forget(e)
	if e.origin != nil {
		n.tombstones[e.id] = e.origin
	}
}

func (n *Node) safely(e *entry, input func(g *group.Group) group.Output) (out group.Output, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			n.reload(e, fmt.Sprintf("BUG: the group state machine panicked: %v", r))
			ok = false
		}
	}()
	return input(e.g), true
}

// after carries out a group step's output: its events are observed, its
// changes made durable before its replies leave, and its timer re-armed.
func (n *Node) after(e *entry, out group.Output) {
	n.admitted += e.g.Admitted() - e.admitted
	e.admitted = e.g.Admitted()
	for _, ev := range out.Events {
		n.out.Observed = append(n.out.Observed, Observed{Group: e.g, Event: ev})
	}
	if out.Persist || out.Delete {
		e.version++
	}
	if out.Delete {
		e.tomb = e.g.Record()
	}
	for _, r := range out.Replies {
		if e.durable >= e.version {
			n.send(r)
		} else {
			e.withheld = append(e.withheld, withheld{reply: r, need: e.version})
		}
	}
	n.flush(e, false)
	n.arm(e)
}

// send delivers a reply now or, held, at its HoldUntil. A reply replaces
// a held reply to the same call.
func (n *Node) send(r group.Reply) {
	if !r.HoldUntil.IsZero() && r.HoldUntil.After(n.now) {
		n.held[r.Req] = r
		n.holds.Push(hold{at: r.HoldUntil, req: r.Req})
		return
	}
	delete(n.held, r.Req)
	n.deliver(r)
}

// deliver puts r in the step's output, stamped (see stamp).
func (n *Node) deliver(r group.Reply) {
	if at, ok := n.arrivals[r.Req]; ok {
		delete(n.arrivals, r.Req)
		if r.Err == nil {
			r.Msg = n.stamp(r.Msg, n.now.Sub(at))
		}
	}
	n.out.Replies = append(n.out.Replies, group.Reply{Req: r.Req, Msg: r.Msg, Err: r.Err})
}

// stamp returns the answer msg of a held call that the coordinator held
// for held: it says so (held_ms), from which the member learns the transit
// it reports (see Overload), and while the node is overloaded a heartbeat's
// answer asks the member to hold its next heartbeat longer, a Reconcile
// answer sets a longer interval. The stamped answer is a new message,
// because a group shares one answer between a member's held call and the
// next, and the first may be on its way out.
func (n *Node) stamp(msg proto.Message, held time.Duration) proto.Message {
	advice := n.load.AdvisedHold(n.now).Milliseconds()
	switch m := msg.(type) {
	case *regroupv1.HeartbeatResponse:
		return &regroupv1.HeartbeatResponse{NextHoldMs: advice, HeldMs: held.Milliseconds()}
	case *regroupv1.ReconcileResponse:
		c := proto.CloneOf(m)
		c.HeldMs = held.Milliseconds()
		c.HeartbeatIntervalMs = max(c.GetHeartbeatIntervalMs(), advice)
		return c
	}
	return msg
}

// arm puts e's next deadline in the node's timer heap: its group's, or,
// while failing, its retry's once no write is in flight. A group being
// deleted or loaded waits for its store operation instead.
func (n *Node) arm(e *entry) {
	var at time.Time
	switch {
	case e.failing:
		if e.writing == 0 {
			at = e.retryAt
		}
	case e.g != nil && e.tomb == nil && !e.loading:
		at = e.g.NextDeadline()
	}
	if at.Equal(e.timerAt) && (e.timerIdx >= 0) == !at.IsZero() {
		return
	}
	n.timers.remove(e)
	if !at.IsZero() {
		e.timerAt = at
		n.timers.push(e)
	}
}

// retryDelay is the delay before retry number k (1, 2, ...).
func retryDelay(k int) time.Duration {
	d := minRetry
	for i := 1; i < k && d < maxRetry; i++ {
		d *= 2
	}
	return min(d, maxRetry)
}
