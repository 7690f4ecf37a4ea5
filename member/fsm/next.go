package fsm

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// NextMember is one member's state in the next-generation group protocol
// (Protocol Next; Kafka's KIP-848 model), where one call, Reconcile, joins,
// reports, heartbeats and leaves, and the coordinator computes the group's
// assignment itself. It is driven exactly as a Member is (Machine), and
// keeps the same ownership contract: the lease (lease.go), the callbacks in
// order, the fencing tokens.
//
// The member keeps one call in flight, held by the coordinator for the
// heartbeat interval the coordinator set (spread as held heartbeats are,
// spreadPeriod) and answered early when the member's assignment changes.
// Every call carries the member's epoch (that of the last answer acted on),
// the revision of the last assignment it acted on, and the partitions it
// holds now. The member acts on every successful answer of its call at
// once (an assignment only if its revision is newer than the last one
// acted on: answers to a call and its probe may cross), and sends the next
// call at once:
//
//   - an answer with an assignment is the member's whole assignment: the
//     partitions it holds that are not in it are revoked (OnRevoked), and
//     those in it that it does not hold are its own from now on
//     (OnAssigned, with the assignment's fencing token; kept partitions
//     keep theirs). Revocations come first.
//   - when a revocation ends (OnRevoked returned, or its deadline passed)
//     or the lease ends, what the member holds has changed: a new call goes
//     at once, reporting it, so that the coordinator can hand the
//     partitions on within a round trip.
//
// A call sent before the member last acted on an answer or changed what it
// holds is superseded: its answer is ignored (a success still renews the
// lease, since it proves the session was refreshed no earlier than the
// call was sent). When a held call's answer is overdue, an unheld copy of
// it goes as a probe (Request.Probe), as for a classic heartbeat; it is
// live beside it, and the first success supersedes the other.
//
// FENCED_MEMBER_EPOCH and UNKNOWN_MEMBER_ID mean the coordinator removed
// the member: everything it holds is lost (OnLost), and it joins afresh
// (epoch 0, no member id). Coordinator and transport troubles, and
// UNRELEASED_INSTANCE_ID, are retried (base.retryLater); the codes of
// regroup's table that are fatal stop it with their advice. Stop revokes
// everything, then leaves with epoch -1, or -2 (a temporary leave that
// keeps its place) for a static member without LeaveOnStop.
type NextMember struct {
	base

	memberID string
	secret   string // the member_secret of the join's answer
	epoch    int32
	revision int64         // of the last assignment acted on
	interval time.Duration // how long to hold a call: the coordinator's heartbeat interval
	unknown  []string      // the unknown topics last reported

	// The live calls: cur, which carries the member's state, and probe,
	// a copy of it sent unheld when cur's answer is overdue. calls lists
	// every call in flight, live or superseded.
	cur, probe call
	probeAt    time.Time // when to probe for cur (zero: no probe due)
	probes     int       // probes sent for cur, none answered
	calls      []call
	held       bool // no call failed since the last success: the next may be held
	spread     bool // the last answer came at its hold's end with no news (spreadPeriod)

	// revoking is the revocation under way (at most one); queued are the
	// partitions to revoke once it ends (see revoke).
	revoking []revocation
	queued   []Partition

	revokedAll bool   // the stop's revocation was emitted
	leave      uint64 // the leave in flight
}

// call is a Reconcile in flight.
type call struct {
	beat
	lost int32 // the partitions_lost it reported
}

// revocation is an OnRevoked under way: its partitions are the member's
// until it returns or its deadline passes.
type revocation struct {
	id       uint64
	deadline time.Time
	parts    []Partition
}

// NewNext validates cfg, a Next configuration, and returns a
// next-generation member that has not started.
func NewNext(cfg Config) (*NextMember, error) {
	if err := cfg.validate(Next); err != nil {
		return nil, err
	}
	return &NextMember{base: base{cfg: cfg}, interval: cfg.HeartbeatInterval, held: true}, nil
}

// Cooperative reports true: a next-generation member gives up only the
// partitions that move.
func (m *NextMember) Cooperative() bool { return true }

// MemberID returns the member id the coordinator gave, or "".
func (m *NextMember) MemberID() string { return m.memberID }

// Generation returns the member epoch: 0 until the coordinator computed a
// target assignment that includes the member.
func (m *NextMember) Generation() int32 { return m.epoch }

// State returns the member's state: Joining until its epoch is set,
// Revoking while an OnRevoked is under way, else Stable (or Stopping,
// Stopped, Failed).
func (m *NextMember) State() State {
	if s, ok := m.ending(); ok {
		return s
	}
	switch {
	case len(m.revoking) > 0:
		return Revoking
	case m.memberID == "" || m.epoch <= 0:
		return Joining
	}
	return Stable
}

// Start begins joining the group.
func (m *NextMember) Start(now time.Time) Output {
	var out Output
	m.advance(now, &out)
	return out
}

// Stop makes the member give up its partitions (OnRevoked) and leave the
// group (a static member only releases its partitions, unless
// LeaveOnStop), then finish.
func (m *NextMember) Stop(now time.Time) Output {
	var out Output
	// A member stopped after its lease ended lost its partitions then: it
	// must not revoke them now.
	m.expire(now, &out)
	if !m.done {
		m.stopping = true
	}
	m.advance(now, &out)
	return out
}

// CallbackDone reports that callback id returned. A revocation's end
// changes what the member holds: a call reports it at once.
func (m *NextMember) CallbackDone(now time.Time, id uint64) Output {
	var out Output
	m.expire(now, &out)
	for i, r := range m.revoking {
		if r.id == id {
			m.endRevocation(now, &out, i)
			break
		}
	}
	m.advance(now, &out)
	return out
}

// Tick fires what is due: a revocation's deadline, the lease's end, a
// retry, a probe.
func (m *NextMember) Tick(now time.Time) Output {
	var out Output
	m.expire(now, &out)
	m.advance(now, &out)
	return out
}

// NextDeadline returns when Tick must be called next (zero: nothing due).
func (m *NextMember) NextDeadline() time.Time {
	next := m.soonest()
	if m.done {
		return next.t
	}
	at := next.at
	for _, r := range m.revoking {
		at(r.deadline)
	}
	switch {
	case m.leave != 0:
	case m.cur.id == 0 && m.probe.id == 0:
		at(m.retryAt)
	case m.cur.id != 0 && m.probe.id == 0:
		at(m.probeAt)
	}
	return next.t
}

// Response reports the answer to request id: msg (a
// *regroupv1.ReconcileResponse) on success, else err (a *regroup.Error for
// protocol errors; anything else counts as a transport failure and is
// retried). Answers to superseded calls are ignored, but for the lease.
func (m *NextMember) Response(now time.Time, id uint64, msg proto.Message, err error) Output {
	var out Output
	c, ok := m.answered(id)
	if !ok || m.done {
		return out
	}
	if err != nil {
		// As far as the member knows, the coordinator did not count the
		// partitions this call reported lost: the next call reports them.
		m.lostUnreported += c.lost
		m.transitKnown = false // it may describe a coordinator the member leaves
	}
	// A lease that ended before the answer came is lost first: the
	// application hears of it before anything the answer starts.
	m.expire(now, &out)
	switch {
	case id == m.leave:
		m.finish(&out, nil)
		return out
	case id != m.cur.id && id != m.probe.id:
		if err == nil && c.member != "" && c.member == m.memberID {
			m.renew(c.sent)
		}
	case err == nil:
		resp, ok := msg.(*regroupv1.ReconcileResponse)
		if !ok {
			panic(fmt.Sprintf("fsm: the answer to a Reconcile is a %T", msg))
		}
		m.noteTransit(now, c.sent, c.hold, resp.GetHeldMs())
		m.onAnswer(now, c, resp, &out)
	default:
		m.onError(now, c, err, &out)
	}
	m.expire(now, &out)
	m.advance(now, &out)
	return out
}

// answered forgets call id and returns it, or false if it is not in flight.
func (m *NextMember) answered(id uint64) (call, bool) {
	for i, c := range m.calls {
		if c.id == id {
			m.calls = slices.Delete(m.calls, i, i+1)
			return c, true
		}
	}
	return call{}, false
}

// onAnswer acts on the success of live call c, and supersedes the live
// calls: the next one goes at once.
func (m *NextMember) onAnswer(now time.Time, c call, resp *regroupv1.ReconcileResponse, out *Output) {
	m.failures, m.refusals, m.held = 0, 0, true
	m.renew(c.sent)
	joined := m.memberID == ""
	if id := resp.GetMemberId(); id != "" {
		m.memberID = id
	}
	if s := resp.GetMemberSecret(); s != "" {
		m.secret = s
	}
	if ms := resp.GetHeartbeatIntervalMs(); ms > 0 {
		m.interval = min(time.Duration(ms)*time.Millisecond, m.cfg.SessionTimeout/3)
	}
	a := resp.GetAssignment()
	news := joined || a != nil || resp.GetMemberEpoch() != m.epoch
	m.epoch = resp.GetMemberEpoch()
	if joined {
		out.Events = append(out.Events, Event{Kind: EventJoined, Detail: detail("joined as member ", m.memberID, " at epoch ", int(m.epoch))})
	}
	if u := resp.GetUnknownTopics(); !slices.Equal(u, m.unknown) {
		m.unknown = slices.Clone(u)
		if len(u) > 0 {
			out.Events = append(out.Events, unknownTopicsEvent(u))
		}
	}
	// A stopping member gives everything up: it takes nothing new. An
	// assignment no newer than the last one acted on is old news.
	if a != nil && !m.stopping && a.GetRevision() > m.revision {
		m.revision = a.GetRevision()
		m.reconcile(now, a, out)
	}
	// The member's calls keep the place in the interval that the last
	// held one's period gave them, unless the answer was news (which may
	// have reached many members at once).
	m.spread = !news && c.hold > 0
	m.supersede()
}

// reconcile makes assignment a the member's: revoke what it lacks, then
// take what is new.
func (m *NextMember) reconcile(now time.Time, a *regroupv1.ReconcileAssignment, out *Output) {
	revoked, added, n := diffAssignment(m.owned, a.GetPartitions(), a.GetFencingToken())
	out.Events = append(out.Events, Event{Kind: EventAssignment, Detail: detail("epoch ", int(m.epoch), ": ", n, " partitions, ",
		len(added), " new, ", len(revoked), " to revoke")})
	// What waits to be revoked and is in the assignment again stays.
	m.queued = withoutPartitions(m.queued, withoutPartitions(m.queued, revoked))
	m.revoke(now, out, revoked)
	if len(added) > 0 {
		m.owned = withPartitions(m.owned, added)
		out.Callbacks = append(out.Callbacks, Callback{ID: m.id(), Kind: Assigned, Partitions: added, Deadline: m.lease})
	}
}

// onError handles the failure of live call c.
func (m *NextMember) onError(now time.Time, c call, err error, out *Output) {
	if c.id == m.probe.id {
		m.probe = call{}
	} else {
		m.cur = call{}
	}
	if f := fatal(err); f != nil {
		out.Events = append(out.Events, Event{Kind: EventFatal, Detail: f.Error()})
		m.lose(now, out, now)
		m.finish(out, f)
		return
	}
	if errors.Is(err, regroup.ErrFencedMemberEpoch) || errors.Is(err, regroup.ErrUnknownMemberID) {
		out.Events = append(out.Events, Event{Kind: EventLost, Detail: fmt.Sprintf("the coordinator removed this member (%v): every partition is lost; joining afresh", err)})
		m.lose(now, out, now)
		m.revoking, m.queued = nil, nil
		m.memberID, m.secret, m.epoch, m.revision, m.unknown = "", "", 0, 0, nil
		m.refusals = 0
		m.supersede()
		return
	}
	m.held = false // until a call succeeds, none is held: the lease is renewed within a round trip
	if retriable(err) && (m.cur.id != 0 || m.probe.id != 0) {
		// The other live call may yet be answered; a failed probe is
		// followed by another one its gap after it.
		if m.cur.id != 0 {
			m.probeAt = c.sent.Add(c.timeout)
		}
		return
	}
	m.supersede()
	m.retryLater(now, out, "Reconcile", err, m.newcomer(m.memberID))
}

// expire ends what is due at now: revocations whose deadline passed, then
// the lease (everything still held is lost at its end). Either changes what
// the member holds, which a new call reports at once.
func (m *NextMember) expire(now time.Time, out *Output) {
	for i := len(m.revoking) - 1; i >= 0; i-- {
		if !now.Before(m.revoking[i].deadline) {
			m.endRevocation(now, out, i)
		}
	}
	if m.leaseEnded(now, out) {
		m.revoking, m.queued = nil, nil
		m.supersede()
	}
}

// revoke starts OnRevoked for the partitions of parts that are not under
// revocation already. One revocation runs at a time: partitions to revoke
// while one runs wait for it (the member still holds them, and reports
// them), then go in the next OnRevoked, with a deadline of its own. Queued
// behind the running callback, a second OnRevoked would start after its
// deadline had begun to run (or passed), while the application, not yet
// told, still worked on its partitions.
func (m *NextMember) revoke(now time.Time, out *Output, parts []Partition) {
	for _, r := range m.revoking {
		parts = withoutPartitions(parts, r.parts)
	}
	if len(m.revoking) > 0 {
		m.queued = withPartitions(m.queued, withoutPartitions(parts, m.queued))
		return
	}
	parts = withPartitions(m.queued, withoutPartitions(parts, m.queued))
	m.queued = nil
	if len(parts) == 0 {
		return
	}
	cb := Callback{ID: m.id(), Kind: Revoked, Partitions: slices.Clone(parts), Deadline: m.revokeDeadline(now, time.Time{})}
	out.Callbacks = append(out.Callbacks, cb)
	m.revoking = append(m.revoking, revocation{id: cb.ID, deadline: cb.Deadline, parts: cb.Partitions})
}

// endRevocation ends revocation i: its partitions are given up, and a new
// call reports it; the partitions queued behind it are revoked next.
func (m *NextMember) endRevocation(now time.Time, out *Output, i int) {
	m.owned = withoutPartitions(m.owned, m.revoking[i].parts)
	m.revoking = slices.Delete(m.revoking, i, i+1)
	m.revoke(now, out, nil)
	m.supersede()
}

// supersede makes the live calls stale: the next call goes at once.
func (m *NextMember) supersede() {
	m.cur, m.probe, m.probeAt = call{}, call{}, time.Time{}
	m.retryAt = time.Time{}
}

// advance sends what is due: the leave once a stopping member has revoked
// everything, else the next call and a probe.
func (m *NextMember) advance(now time.Time, out *Output) {
	if m.done || m.stopping && m.advanceStop(now, out) {
		return
	}
	if m.cur.id == 0 && m.probe.id == 0 && !now.Before(m.retryAt) {
		hold := m.hold(now)
		m.cur = m.send(now, out, m.epoch, hold, hold+m.cfg.SessionTimeout/3, false)
		m.probeAt, m.probes = time.Time{}, 0
		if m.memberID != "" {
			// A join is never probed: a second one would add a second
			// member.
			m.probeAt = m.cur.overdue(m.slack(now, m.cur.hold))
		}
	}
	if m.cur.id != 0 && m.probe.id == 0 && !m.probeAt.IsZero() && !now.Before(m.probeAt) {
		m.probe = m.send(now, out, m.cur.gen, 0, m.probeGap(now, m.probes), true)
		m.probeAt = time.Time{}
		m.probes++
	}
}

// advanceStop revokes everything, then leaves once no revocation is under
// way; it reports whether the member is done with its calls (it left, or
// it never joined). Until then the member's calls go on, keeping its
// session.
func (m *NextMember) advanceStop(now time.Time, out *Output) bool {
	if m.leave != 0 {
		return true
	}
	if m.memberID == "" {
		// Not joined (a join in flight is dropped): nothing to leave.
		m.finish(out, nil)
		return true
	}
	if !m.revokedAll {
		m.revokedAll = true
		m.revoke(now, out, m.owned)
	}
	if len(m.revoking) > 0 || len(m.queued) > 0 {
		return false
	}
	epoch := int32(-1)
	if m.cfg.InstanceID != "" && !m.cfg.LeaveOnStop {
		epoch = -2 // a temporary leave: the place is kept for a restart
	}
	m.supersede()
	m.leave = m.send(now, out, epoch, 0, m.cfg.SessionTimeout, false).id
	return true
}

func (m *NextMember) finish(out *Output, err error) {
	m.done = true
	out.Done, out.Err = true, err
	m.cur, m.probe, m.probeAt = call{}, call{}, time.Time{}
}

// hold is how long the coordinator may hold the next call: the interval it
// set, spread (spreadPeriod), at most a third of the session, within the
// lease (holdWithinLease); not at all after a failure, until a call
// succeeds.
func (m *NextMember) hold(now time.Time) time.Duration {
	if !m.held {
		return 0
	}
	return m.holdWithinLease(now, min(m.spreadPeriod(m.interval, m.spread), m.cfg.SessionTimeout/3))
}

// send emits a Reconcile carrying epoch, held for hold and given up after
// timeout, and returns it. All but probes report the partitions lost since
// the last answered call.
func (m *NextMember) send(now time.Time, out *Output, epoch int32, hold, timeout time.Duration, probe bool) call {
	c := call{beat: beat{id: m.id(), member: m.memberID, gen: epoch, sent: now, hold: hold, timeout: timeout}}
	if !probe {
		c.lost, m.lostUnreported = m.lostUnreported, 0
	}
	m.calls = append(m.calls, c)
	req := &regroupv1.ReconcileRequest{
		GroupId:            m.cfg.GroupID,
		MemberId:           m.memberID,
		MemberEpoch:        epoch,
		GroupInstanceId:    m.cfg.InstanceID,
		ClientId:           m.cfg.ClientID,
		SessionTimeoutMs:   m.cfg.SessionTimeout.Milliseconds(),
		RebalanceTimeoutMs: m.cfg.RebalanceTimeout.Milliseconds(),
		SubscribedTopics:   m.cfg.Topics,
		ServerAssignor:     m.cfg.ServerAssignor,
		Owned:              m.ownedLists(&regroupv1.TopicPartitions{}, nil),
		HoldMs:             hold.Milliseconds(),
		MemberSecret:       m.secret,
		PartitionsLost:     c.lost,
		AssignmentRevision: m.revision,
		TransitMs:          m.takeTransit(),
	}
	out.Requests = append(out.Requests, Request{ID: c.id, Msg: req, Timeout: timeout, Probe: probe})
	return c
}
