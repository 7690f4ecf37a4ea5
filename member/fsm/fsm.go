// Package fsm is one group member's side of the group protocol as a pure
// state machine: when to join, what to report, how to compute the leader's
// assignment, which partitions to revoke, when ownership is lost, how to
// react to each error, and when to retry.
//
// There is a machine for each group protocol (Protocol): Member speaks the
// classic one (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), NextMember the
// next-generation one (Reconcile, next.go). Both are a Machine, built by
// NewMachine from a Config, and share the lease rule (lease.go) and the
// pacing of calls (pacing.go).
//
// A machine reads no clock, starts no goroutine and does no I/O. Every
// input carries the current time; every step returns an Output listing the
// requests to send, the application callbacks to run (in order, one at a
// time) and whether the member is done. The driver calls Tick at
// NextDeadline. It is not safe for concurrent use.
//
// # Ownership is a lease
//
// The member owns a partition from the moment OnAssigned is called for it
// until OnRevoked for it returns (or its deadline passes), or until its
// lease ends. The lease is the emission time of the last request the
// coordinator answered successfully (its answer proves the coordinator
// refreshed the member's session no earlier than that) plus the session
// timeout, minus a safety margin for clock drift. The coordinator hands a
// partition to a new owner only after the previous owner released it or
// that lease could have ended, so a member that stops hearing from the
// coordinator declares everything lost (OnLost) before anyone else can get
// it.
package fsm

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/assignor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Config is what the state machine needs to know about its member.
type Config struct {
	// Protocol is the group protocol the member speaks: Classic (the zero
	// value; New) or Next (NewNext). NewMachine builds either.
	Protocol   Protocol
	GroupID    string
	InstanceID string // empty for a dynamic member
	ClientID   string
	Rack       string // Classic only: Reconcile carries no rack
	Topics     []string
	// Assignors in preference order; the member is cooperative only if
	// every one supports it. Classic only: a Next member's group is
	// assigned by the coordinator (ServerAssignor).
	Assignors []assignor.Assignor
	// ServerAssignor is the coordinator's assignor that computes a Next
	// group's target assignment (a name of the coordinator's assignor
	// registry; the group's first member's choice is the group's).
	// WithDefaults fills in DefaultServerAssignor for Next; Classic
	// members leave it empty.
	ServerAssignor string
	// SessionTimeout, RebalanceTimeout and HeartbeatInterval are sent to
	// the coordinator; heartbeats are held for at most HeartbeatInterval
	// (see Jitter). A Next member holds its calls for the interval the
	// coordinator sets, HeartbeatInterval until it has said.
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	// Margin is subtracted from every lease deadline, for clock drift.
	Margin time.Duration
	// LeaveOnStop makes a static member leave the group when stopped;
	// otherwise it only releases its partitions and keeps its place, so
	// that a restart takes them back without a rebalance.
	LeaveOnStop bool
	// MinBackoff and MaxBackoff bound the retry delay after a failure,
	// which doubles on each consecutive failure.
	MinBackoff, MaxBackoff time.Duration
	// Jitter returns a number in [0, 1) that spreads retries and
	// heartbeats: a heartbeat is held for the interval less a random part
	// of it (all of it at most after an answer that reached many members
	// at once, a tenth after a held heartbeat's), so that a group's members
	// do not beat in step. nil means no jitter. The simulator injects a
	// seeded source.
	Jitter func() float64
	// ClassicHeartbeats makes the member beat as Kafka's classic client
	// does, as a baseline to compare with: no heartbeat is ever held, and
	// the next one goes a heartbeat interval after the last one was sent
	// (without jitter), so that a rebalance notice waits for the member's
	// next heartbeat instead of reaching it at once in the answer to a
	// held one. The simulator uses it (heartbeats=classic); a production
	// member should not. Classic only.
	ClassicHeartbeats bool
}

// Partition is one owned partition and the fencing token it was acquired
// with: pass the token to every system written to on the partition's
// behalf, and have it refuse smaller tokens than the largest it has seen.
type Partition struct {
	Topic     string
	Partition int32
	Token     int64
}

// CallbackKind says which Listener method a Callback calls.
type CallbackKind int

// The callbacks.
const (
	// Assigned: the member now owns Partitions.
	Assigned CallbackKind = iota + 1
	// Revoked: the member gives Partitions up; the callback should finish
	// its work (commit) before Deadline.
	Revoked
	// Lost: the member lost Partitions at Deadline (already past): it must
	// stop using them at once, without committing.
	Lost
)

// String returns "assigned", "revoked" or "lost".
func (k CallbackKind) String() string {
	switch k {
	case Assigned:
		return "assigned"
	case Revoked:
		return "revoked"
	case Lost:
		return "lost"
	}
	return fmt.Sprintf("CallbackKind(%d)", int(k))
}

// Callback asks the driver to call the application's listener. Callbacks
// run one at a time, in the order emitted; the driver reports each one's
// end with CallbackDone. The context given to the application ends at
// Deadline.
type Callback struct {
	ID         uint64
	Kind       CallbackKind
	Partitions []Partition
	Deadline   time.Time
}

// Request asks the driver to send a message (a *regroupv1.JoinGroupRequest,
// SyncGroupRequest, HeartbeatRequest or LeaveGroupRequest; a Next member's
// are all *regroupv1.ReconcileRequest) and to report the answer with
// Response, giving up after Timeout.
type Request struct {
	ID      uint64
	Msg     proto.Message
	Timeout time.Duration
	// Probe marks an unheld heartbeat (or Reconcile) sent because the
	// coordinator went silent (a held call's answer is overdue): a driver that knows
	// several coordinators sends it to all of them at once, since the one
	// it used may be hung or cut off, and follows whichever answers.
	Probe bool
}

// EventKind says what an Event reports.
type EventKind int

// The kinds of Event.
const (
	// EventJoined: the member joined a generation (Detail says as what).
	EventJoined EventKind = iota + 1
	// EventRebalance: a rebalance started; the member rejoins.
	EventRebalance
	// EventAssignment: the member received its assignment.
	EventAssignment
	// EventLost: the member's lease ended; it lost its partitions.
	EventLost
	// EventRetry: a request failed and will be retried.
	EventRetry
	// EventFatal: the member cannot continue; Output.Err says why.
	EventFatal
	// EventOverload: the coordinator shed one of the member's calls
	// (COORDINATOR_OVERLOADED); the member retries when it asked. Only the
	// first refusal of an overload (until a call succeeds) is reported.
	EventOverload
	// EventUnknownTopics: the member subscribes to topics that are not in
	// the coordinator's registry; it owns none of their partitions until
	// they are created. Reported with each assignment that says so.
	EventUnknownTopics
)

// Event reports something worth logging.
type Event struct {
	Kind   EventKind
	Detail string
}

// Output is what one step asks of the driver.
type Output struct {
	Requests  []Request
	Callbacks []Callback
	Events    []Event
	// Done means the member has finished (stopped, or failed with Err).
	Done bool
	Err  error
}

// State is where the member is in the protocol.
type State int

// The member's states.
const (
	Joining State = iota + 1
	Syncing
	Stable
	Revoking
	Stopping
	Stopped
	Failed
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case Joining:
		return "Joining"
	case Syncing:
		return "Syncing"
	case Stable:
		return "Stable"
	case Revoking:
		return "Revoking"
	case Stopping:
		return "Stopping"
	case Stopped:
		return "Stopped"
	case Failed:
		return "Failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// beat is a held call in flight (id 0: none): a heartbeat, or a Next
// member's Reconcile.
type beat struct {
	id      uint64
	member  string
	gen     int32 // the generation, or the member epoch, it carries
	sent    time.Time
	hold    time.Duration
	timeout time.Duration
}

// overdue is when a held call's answer is late enough to send a probe
// beside it: its hold (zero if not held) plus the slack (base.slack).
func (b beat) overdue(slack time.Duration) time.Time {
	return b.sent.Add(b.hold + slack)
}

// step is what the member does next on its main line of requests.
type step int

const (
	stepJoin step = iota + 1
	stepSync
	stepLeave
)

// Member is one member's state in the classic protocol (JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup).
type Member struct {
	base
	cooperative bool

	memberID   string
	generation int32 // -1 before the first generation
	ownedGen   int32 // generation of the last assignment received
	leader     bool
	protocol   string

	// secret is the member_secret of memberID's JoinGroup answers, which
	// proves a LeaveGroup is this member's own.
	secret string

	// The main line: join, sync, leave, one at a time; its retries are
	// base's failures and retryAt.
	next      step
	mainReq   uint64
	mainKind  step
	joinResp  *regroupv1.JoinGroupResponse
	stopAfter bool // the stop's revocation was emitted

	// A revocation that must end before the main line continues: when it
	// does (or its deadline passes), its partitions are no longer owned,
	// and with rejoinAfter the member rejoins.
	blocking         uint64
	blockingDeadline time.Time
	blockingParts    []Partition
	rejoinAfter      bool

	// Heartbeats: one in flight (hb), which the coordinator may hold, plus a
	// probe when hb's answer is overdue.
	hb         beat
	probe      beat
	probeAt    time.Time // when to probe for hb (zero: no probe due)
	probes     int       // probes sent for hb, none answered
	hbAt       time.Time // when to send the next hb
	hbFailures int
	hbHeld     bool // the last heartbeat succeeded: the next may be held
	// hbSpread: the last heartbeat was held and answered after its hold,
	// so the member's heartbeats keep the place in the interval that
	// period gave them.
	hbSpread bool
	// hbAdvised: the last heartbeat's answer asked for longer holds (the
	// coordinator is overloaded; HeartbeatResponse.next_hold_ms), or 0.
	hbAdvised time.Duration

	rebalanceDeadline time.Time // announced by the coordinator

	sentAt  []sentAt  // requests in flight; starts in sentBuf
	sentBuf [4]sentAt // room for the usual ones, in the member itself

	// joinLosses is base's losses when the last JoinGroup was sent. If
	// they differ, that join reported partitions the member no longer
	// owns.
	joinLosses int

	// base's lostUnreported counts the partitions lost since the
	// coordinator last answered a JoinGroup: every JoinGroup reports it
	// (partitions_lost), until one is answered. lostSent is what the last
	// JoinGroup sent reported.
	lostSent int32
}

// New validates cfg, a Classic configuration, and returns a classic member
// that has not started.
func New(cfg Config) (*Member, error) {
	if err := cfg.validate(Classic); err != nil {
		return nil, err
	}
	m := &Member{
		base:        base{cfg: cfg},
		cooperative: assignor.ProtocolFor(cfg.Assignors) == assignor.Cooperative,
		generation:  -1,
		ownedGen:    -1,
		next:        stepJoin,
	}
	m.sentAt = m.sentBuf[:0]
	return m, nil
}

// Cooperative reports whether the member uses incremental cooperative
// rebalancing (every assignor it offers supports it).
func (m *Member) Cooperative() bool { return m.cooperative }

// MemberID returns the member id the coordinator gave, or "".
func (m *Member) MemberID() string { return m.memberID }

// Generation returns the generation the member belongs to, or -1.
func (m *Member) Generation() int32 { return m.generation }

// Leader reports whether the member leads its generation.
func (m *Member) Leader() bool { return m.leader }

// State returns the member's state.
func (m *Member) State() State {
	if s, ok := m.ending(); ok {
		return s
	}
	switch {
	case m.blocking != 0:
		return Revoking
	case m.mainKind == stepSync || m.next == stepSync:
		return Syncing
	case m.mainKind == stepJoin || m.next == stepJoin:
		return Joining
	}
	return Stable
}

// sentAt is the emission time of a request in flight.
type sentAt struct {
	id   uint64
	time time.Time
}

// sent records that request id was emitted at now.
func (m *Member) sent(id uint64, now time.Time) {
	m.sentAt = append(m.sentAt, sentAt{id, now})
}

// answered forgets request id and returns when it was emitted, or false if
// it is not in flight. A member has few requests in flight (its main line,
// a heartbeat, a probe, and those it stopped waiting for).
func (m *Member) answered(id uint64) (time.Time, bool) {
	for i, s := range m.sentAt {
		if s.id == id {
			last := len(m.sentAt) - 1
			m.sentAt[i] = m.sentAt[last]
			m.sentAt = m.sentAt[:last]
			return s.time, true
		}
	}
	return time.Time{}, false
}

// Start begins joining the group.
func (m *Member) Start(now time.Time) Output {
	var out Output
	m.expire(now, &out)
	m.advance(now, &out)
	return out
}

// Stop makes the member give up its partitions (OnRevoked), leave the group
// (a static member only releases its partitions, unless LeaveOnStop), and
// finish.
func (m *Member) Stop(now time.Time) Output {
	var out Output
	// A member stopped after its lease ended (it was paused, say) lost its
	// partitions then: it must not revoke them now.
	m.expire(now, &out)
	if !m.done && !m.stopping {
		m.stopping = true
		m.retryAt = time.Time{}
		if m.mainKind == stepJoin || m.mainKind == stepSync {
			// Do not wait at a barrier to leave: its answer is ignored.
			m.mainReq, m.mainKind = 0, 0
		}
	}
	m.advance(now, &out)
	return out
}

// CallbackDone reports that the callback id returned.
func (m *Member) CallbackDone(now time.Time, id uint64) Output {
	var out Output
	m.expire(now, &out)
	if id == m.blocking {
		m.unblock(now)
	}
	m.advance(now, &out)
	return out
}

// Tick fires what is due: the lease's end, a blocking callback's deadline,
// a retry, the next heartbeat.
func (m *Member) Tick(now time.Time) Output {
	var out Output
	m.expire(now, &out)
	m.advance(now, &out)
	return out
}

// expire ends what is due at now, in order: a revocation whose deadline
// passed (ownership of its partitions ended at that deadline, which is never
// after the lease's end), then the lease itself (everything still owned is
// lost at the lease's end).
func (m *Member) expire(now time.Time, out *Output) {
	if m.blocking != 0 && !now.Before(m.blockingDeadline) {
		m.unblock(now)
	}
	m.checkLease(now, out)
}

// NextDeadline returns when Tick must be called next (zero: nothing due).
func (m *Member) NextDeadline() time.Time {
	next := m.soonest()
	if m.done {
		return next.t
	}
	at := next.at
	if m.blocking != 0 {
		at(m.blockingDeadline)
	}
	if m.mainReq == 0 && m.blocking == 0 {
		at(m.retryAt)
	}
	if m.heartbeating() {
		switch {
		case m.hb.id == 0:
			at(m.hbAt)
		case m.probe.id == 0 && !m.probeAt.IsZero():
			at(m.probeAt)
		}
	}
	return next.t
}

// checkLease declares everything lost once the lease has ended; the member
// then rejoins, unless it is stopping.
func (m *Member) checkLease(now time.Time, out *Output) {
	if m.leaseEnded(now, out) && !m.stopping {
		m.rejoin(now)
	}
}

// rejoin makes the main line join again once free.
func (m *Member) rejoin(now time.Time) {
	m.next = stepJoin
	m.joinResp = nil
	if m.mainKind == stepSync {
		m.mainReq, m.mainKind = 0, 0
	}
}

// block holds the main line until revocation cb ends or its deadline
// passes; then the member rejoins if rejoin is set.
func (m *Member) block(out *Output, cb Callback, rejoin bool) {
	out.Callbacks = append(out.Callbacks, cb)
	m.blocking, m.blockingDeadline = cb.ID, cb.Deadline
	m.blockingParts, m.rejoinAfter = cb.Partitions, rejoin
}

// unblock ends the blocking revocation: its partitions are given up.
func (m *Member) unblock(now time.Time) {
	parts, rejoin := m.blockingParts, m.rejoinAfter
	m.blocking, m.blockingDeadline = 0, time.Time{}
	m.blockingParts, m.rejoinAfter = nil, false
	m.owned = withoutPartitions(m.owned, parts)
	if rejoin {
		m.rejoin(now)
	}
}

// revokeAll revokes every owned partition.
func (m *Member) revokeAll(now time.Time, out *Output) {
	cb := Callback{ID: m.id(), Kind: Revoked, Partitions: slices.Clone(m.owned), Deadline: m.revokeDeadline(now, m.rebalanceDeadline)}
	m.block(out, cb, false)
}

// advance sends what the main line and the heartbeat need next.
func (m *Member) advance(now time.Time, out *Output) {
	m.advanceMain(now, out)
	m.maybeHeartbeat(now, out)
}

func (m *Member) advanceMain(now time.Time, out *Output) {
	if m.done || m.blocking != 0 || m.mainReq != 0 {
		return
	}
	if m.stopping {
		m.advanceStop(now, out)
		return
	}
	if now.Before(m.retryAt) {
		return
	}
	switch m.next {
	case stepJoin:
		if !m.cooperative && len(m.owned) > 0 {
			// Eager: revoke everything before rejoining.
			m.revokeAll(now, out)
			return
		}
		m.joinLosses, m.lostSent = m.losses, m.lostUnreported
		b := m.joinRequest()
		m.send(now, out, stepJoin, &b.req, m.cfg.RebalanceTimeout+m.cfg.SessionTimeout, b.room[:0])
	case stepSync:
		b, err := m.syncRequest()
		if err != nil {
			m.fail(now, out, err)
			return
		}
		m.send(now, out, stepSync, &b.req, m.cfg.RebalanceTimeout+m.cfg.SessionTimeout, b.room[:0])
	}
}

func (m *Member) advanceStop(now time.Time, out *Output) {
	if !m.stopAfter {
		m.stopAfter = true
		if len(m.owned) > 0 {
			m.revokeAll(now, out)
			return
		}
	}
	if m.memberID == "" || m.mainKind == stepLeave {
		m.finish(out, nil)
		return
	}
	// The secret makes the coordinator take the leave as this member's own
	// and release its partitions at once (without it they stay held until
	// the lease ends, and a temporary leave is refused).
	entry := &regroupv1.LeaveMember{MemberId: m.memberID, GroupInstanceId: m.cfg.InstanceID, Reason: "the member stopped", MemberSecret: m.secret}
	if m.cfg.InstanceID != "" && !m.cfg.LeaveOnStop {
		entry.Temporary = true
		entry.Reason = "the static member stopped; it keeps its place for a restart"
	}
	m.send(now, out, stepLeave, &regroupv1.LeaveGroupRequest{GroupId: m.cfg.GroupID, Members: []*regroupv1.LeaveMember{entry}}, m.cfg.SessionTimeout, nil)
}

func (m *Member) finish(out *Output, err error) {
	m.done = true
	out.Done, out.Err = true, err
	m.mainReq, m.hb, m.probe, m.probeAt = 0, beat{}, beat{}, time.Time{}
}

func (m *Member) fail(now time.Time, out *Output, err error) {
	out.Events = append(out.Events, Event{Kind: EventFatal, Detail: err.Error()})
	m.lose(now, out, now)
	m.finish(out, err)
}

// send emits msg on the main line; room, if not nil, is where an output
// without requests may list it (allocated with the message).
func (m *Member) send(now time.Time, out *Output, kind step, msg proto.Message, timeout time.Duration, room []Request) {
	id := m.id()
	m.mainReq, m.mainKind = id, kind
	m.retryAt = time.Time{}
	if out.Requests == nil {
		out.Requests = room
	}
	out.Requests = append(out.Requests, Request{ID: id, Msg: msg, Timeout: timeout})
	m.sent(id, now)
}

// joinRequest builds the JoinGroup request, reporting what the member owns
// if it is cooperative.
func (m *Member) joinRequest() *joinBlock {
	// The messages of a join live in one block: every member rejoins on
	// every rebalance.
	b := &joinBlock{}
	sub := &b.sub
	sub.Topics, sub.Generation, sub.Rack = m.cfg.Topics, -1, m.cfg.Rack
	if m.cooperative && len(m.owned) > 0 {
		sub.Generation = m.ownedGen
		sub.OwnedPartitions = m.ownedLists(&b.list, b.lists[:0])
	}
	req := &b.req
	req.GroupId, req.MemberId, req.GroupInstanceId, req.ClientId = m.cfg.GroupID, m.memberID, m.cfg.InstanceID, m.cfg.ClientID
	req.SessionTimeoutMs, req.RebalanceTimeoutMs = m.cfg.SessionTimeout.Milliseconds(), m.cfg.RebalanceTimeout.Milliseconds()
	req.PartitionsLost = m.lostUnreported
	req.Protocols = b.protocols[:0]
	for i, a := range m.cfg.Assignors {
		p := &b.protocol
		if i > 0 {
			p = &regroupv1.Protocol{}
		}
		p.Name, p.Subscription = a.Name(), sub
		req.Protocols = append(req.Protocols, p)
	}
	return b
}

// joinBlock holds a JoinGroup request with its first protocol and first
// owned list, and room for the output's list of requests, so that a join
// with one of each allocates them at once.
type joinBlock struct {
	req       regroupv1.JoinGroupRequest
	room      [1]Request
	sub       regroupv1.Subscription
	protocol  regroupv1.Protocol
	protocols [1]*regroupv1.Protocol
	list      regroupv1.TopicPartitions
	lists     [1]*regroupv1.TopicPartitions
}

// syncRequest builds the SyncGroup request (in a block with room for the
// output's list); a leader computes the plan with the selected assignor.
func (m *Member) syncRequest() (*syncBlock, error) {
	resp := m.joinResp
	b := &syncBlock{}
	req := &b.req
	req.GroupId, req.Generation, req.MemberId = m.cfg.GroupID, resp.GetGeneration(), resp.GetMemberId()
	req.GroupInstanceId, req.ProtocolName = m.cfg.InstanceID, resp.GetProtocolName()
	if !m.leader || resp.GetSkipAssignment() {
		return b, nil
	}
	var a assignor.Assignor
	for _, c := range m.cfg.Assignors {
		if c.Name() == resp.GetProtocolName() {
			a = c
		}
	}
	if a == nil {
		return nil, fmt.Errorf("regroup: member: the group selected assignor %q, which this member does not have", resp.GetProtocolName())
	}
	plan, err := a.Assign(assignor.InputFromJoin(resp))
	if err != nil {
		return nil, fmt.Errorf("regroup: member: assignor %q failed: %w", a.Name(), err)
	}
	req.Assignments = plan.Assignments()
	return b, nil
}

// syncBlock holds a SyncGroup request and room for the output's list of
// requests.
type syncBlock struct {
	req  regroupv1.SyncGroupRequest
	room [1]Request
}

func (m *Member) heartbeating() bool {
	return !m.done && m.memberID != "" && m.generation >= 0 && !(m.stopping && m.mainKind == stepLeave)
}

// maybeHeartbeat sends the next heartbeat when it is due, and a probe when
// the answer of the heartbeat in flight is overdue (past its hold, if held,
// by the slack): lost on the way, slow, or stuck on a coordinator that hung. The probe is not held, so its answer renews the lease
// within a round trip; the heartbeat is not given up, because its answer
// may yet come (a process frozen by a pause sees its timers fire and its
// answers arrive at once when it wakes). A probe that gets no answer within
// its gap (probeGap) is followed by another, until one is answered: a
// network blip shorter than the lease costs nothing.
func (m *Member) maybeHeartbeat(now time.Time, out *Output) {
	if !m.heartbeating() {
		return
	}
	switch {
	case m.hb.id == 0 && !now.Before(m.hbAt):
		m.hb = m.beat(now, out, m.hold(now), 0)
		m.probeAt, m.probes = m.hb.overdue(m.slack(now, m.hb.hold)), 0
	case m.hb.id != 0 && m.probe.id == 0 && !m.probeAt.IsZero() && !now.Before(m.probeAt):
		m.probe = m.beat(now, out, 0, m.probeGap(now, m.probes))
		out.Requests[len(out.Requests)-1].Probe = true
		m.probeAt = time.Time{}
		m.probes++
	}
}

// beat sends one heartbeat held for up to hold, which times out after
// timeout (zero: the hold plus a third of the session).
func (m *Member) beat(now time.Time, out *Output, hold, timeout time.Duration) beat {
	if timeout == 0 {
		timeout = hold + m.cfg.SessionTimeout/3
	}
	b := beat{id: m.id(), member: m.memberID, gen: m.generation, sent: now, hold: hold, timeout: timeout}
	m.sent(b.id, now)
	// The request and, for an output with no other request, the output's
	// list are one allocation: every member beats every few seconds.
	blk := &beatBlock{}
	msg := &blk.msg
	msg.GroupId, msg.Generation, msg.MemberId = m.cfg.GroupID, m.generation, m.memberID
	msg.GroupInstanceId, msg.HoldMs, msg.TransitMs = m.cfg.InstanceID, hold.Milliseconds(), m.takeTransit()
	if out.Requests == nil {
		out.Requests = blk.list[:0]
	}
	out.Requests = append(out.Requests, Request{ID: b.id, Msg: msg, Timeout: timeout})
	return b
}

// beatBlock holds a heartbeat request and room for an output's list of
// requests.
type beatBlock struct {
	msg  regroupv1.HeartbeatRequest
	list [1]Request
}

// hold is how long the coordinator may hold a heartbeat: the period (at
// most the heartbeat interval), within the lease (holdWithinLease). After a
// heartbeat that did not succeed (an error, a timeout, a coordinator
// change), none is held until one succeeds: the lease is renewed within a
// round trip. While an overloaded coordinator asks for longer holds, the
// period is what it asks, up to a third of the session (the most the
// coordinator holds a call), within the same bound of the lease: a
// member's heartbeats are most of a coordinator's work.
func (m *Member) hold(now time.Time) time.Duration {
	if !m.hbHeld || m.cfg.ClassicHeartbeats {
		return 0
	}
	return m.holdWithinLease(now, max(m.period(), min(m.hbAdvised, m.cfg.SessionTimeout/3)))
}

// period is how long the member's next heartbeat is held, or how long it
// waits after an answer that came at once: the heartbeat interval, spread
// (spreadPeriod); with ClassicHeartbeats the interval, as in Kafka's
// classic client.
func (m *Member) period() time.Duration {
	if m.cfg.ClassicHeartbeats {
		return m.cfg.HeartbeatInterval
	}
	return m.spreadPeriod(m.cfg.HeartbeatInterval, m.hbSpread)
}

// rebalanceNotice records the deadline a REBALANCE_IN_PROGRESS announced.
func (m *Member) rebalanceNotice(sent time.Time, err error) {
	e := asError(err)
	if e == nil {
		return
	}
	ms, perr := strconv.ParseInt(e.Metadata[regroup.MetaRebalanceTimeoutMs], 10, 64)
	if perr != nil {
		return
	}
	m.rebalanceDeadline = sent.Add(time.Duration(ms)*time.Millisecond - m.cfg.Margin)
}
