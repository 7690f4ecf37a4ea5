package fsm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Response reports the answer to request id: msg on success, else err (a
// *regroup.Error for protocol errors; anything else counts as a transport
// failure and is retried). Answers to requests the member no longer waits
// for are ignored.
func (m *Member) Response(now time.Time, id uint64, msg proto.Message, err error) Output {
	var out Output
	sent, ok := m.answered(id)
	if !ok || m.done {
		return out
	}
	if err == nil {
		m.refusals = 0 // the coordinator serves the member again
	} else {
		m.transitKnown = false // it may describe a coordinator the member leaves
	}
	if hb, ok := msg.(*regroupv1.HeartbeatResponse); ok && err == nil {
		m.hbAdvised = time.Duration(hb.GetNextHoldMs()) * time.Millisecond
		switch id {
		case m.hb.id:
			m.noteTransit(now, sent, m.hb.hold, hb.GetHeldMs())
		case m.probe.id:
			m.noteTransit(now, sent, m.probe.hold, hb.GetHeldMs())
		}
	}
	switch id {
	case m.hb.id:
		b := m.hb
		m.hb = beat{}
		m.onHeartbeat(now, b, true, err, &out)
	case m.probe.id:
		b := m.probe
		m.probe = beat{}
		m.onHeartbeat(now, b, false, err, &out)
	case m.mainReq:
		kind := m.mainKind
		m.mainReq, m.mainKind = 0, 0
		switch kind {
		case stepJoin:
			m.onJoin(now, sent, msg, err, &out)
		case stepSync:
			m.onSync(now, sent, msg, err, &out)
		case stepLeave:
			m.finish(&out, nil)
			return out
		}
	}
	// The answer may have renewed the lease: a success proves the
	// coordinator refreshed the session no earlier than the request's send.
	m.expire(now, &out)
	m.advance(now, &out)
	return out
}

// resetIdentity forgets the member id: the coordinator no longer knows it.
// Everything owned is lost at once.
func (m *Member) resetIdentity(now time.Time, out *Output) {
	m.lose(now, out, now)
	m.memberID, m.secret, m.generation, m.leader = "", "", -1, false
	m.hbAt, m.refusals = time.Time{}, 0
	m.rejoin(now)
}

func (m *Member) onJoin(now, sent time.Time, msg proto.Message, err error, out *Output) {
	if err != nil {
		if f := fatal(err); f != nil {
			m.fail(now, out, f)
			return
		}
		switch {
		case errors.Is(err, regroup.ErrMemberIDRequired):
			e := asError(err)
			m.memberID, m.secret = e.Metadata[regroup.MetaMemberID], ""
			m.failures, m.refusals = 0, 0
		case errors.Is(err, regroup.ErrUnknownMemberID):
			m.resetIdentity(now, out)
		case errors.Is(err, regroup.ErrRebalanceInProgress):
			// Superseded by another join of ours, or the group changed:
			// join again.
		default:
			m.retryLater(now, out, "JoinGroup", err, m.newcomer(m.memberID))
		}
		m.next = stepJoin
		return
	}
	resp, ok := msg.(*regroupv1.JoinGroupResponse)
	if !ok {
		panic(fmt.Sprintf("fsm: the answer to a JoinGroup is a %T", msg))
	}
	m.failures = 0
	m.renew(sent)
	m.hbHeld = true // the coordinator answers: heartbeats may be held again
	// The coordinator counted the partitions the join reported lost.
	m.lostUnreported, m.lostSent = m.lostUnreported-m.lostSent, 0
	m.memberID, m.generation, m.protocol = resp.GetMemberId(), resp.GetGeneration(), resp.GetProtocolName()
	m.secret = resp.GetMemberSecret()
	m.leader = resp.GetLeaderId() == resp.GetMemberId()
	m.joinResp = resp
	m.next = stepSync
	m.hbSpread = false // the barrier answered every member at once
	if m.losses != m.joinLosses {
		// The join reported partitions lost since: the leader would plan
		// around them and the coordinator wait for their revocation. Tell
		// it the truth first.
		out.Events = append(out.Events, Event{Kind: EventRebalance, Detail: fmt.Sprintf("joined generation %d, but lost partitions since the join was sent; rejoining", m.generation)})
		m.rejoin(now)
		return
	}
	role := "a follower"
	if m.leader {
		role = "the leader"
	}
	// (Concatenated rather than formatted: every join of every member
	// builds it.)
	out.Events = append(out.Events, Event{Kind: EventJoined, Detail: detail("joined generation ", int(m.generation), " as ", role, " with protocol ", m.protocol)})
	if m.hb.id == 0 {
		m.hbAt = m.firstBeat(now)
	}
}

func (m *Member) onSync(now, sent time.Time, msg proto.Message, err error, out *Output) {
	if err != nil {
		if f := fatal(err); f != nil {
			m.fail(now, out, f)
			return
		}
		switch {
		case errors.Is(err, regroup.ErrUnknownMemberID):
			m.resetIdentity(now, out)
		case errors.Is(err, regroup.ErrRebalanceInProgress), errors.Is(err, regroup.ErrIllegalGeneration), errors.Is(err, regroup.ErrInvalidAssignment):
			if errors.Is(err, regroup.ErrRebalanceInProgress) {
				m.rebalanceNotice(sent, err)
			}
			out.Events = append(out.Events, Event{Kind: EventRebalance, Detail: fmt.Sprintf("SyncGroup: %v; rejoining", err)})
			m.rejoin(now)
		default:
			m.retryLater(now, out, "SyncGroup", err, false)
			m.next = stepSync
		}
		return
	}
	resp, ok := msg.(*regroupv1.SyncGroupResponse)
	if !ok {
		panic(fmt.Sprintf("fsm: the answer to a SyncGroup is a %T", msg))
	}
	m.failures = 0
	m.renew(sent)
	m.hbHeld = true
	m.next = 0
	m.joinResp = nil
	m.rebalanceDeadline = time.Time{}
	revoked, added, assigned := diffAssignment(m.owned, resp.GetAssignment().GetPartitions(), resp.GetFencingToken())
	out.Events = append(out.Events, Event{Kind: EventAssignment, Detail: detail("generation ", int(m.generation), ": ", assigned, " partitions, ",
		len(added), " new, ", len(revoked), " to revoke")})
	if unknown := resp.GetUnknownTopics(); len(unknown) > 0 {
		out.Events = append(out.Events, unknownTopicsEvent(unknown))
	}
	if m.hb.id == 0 {
		m.hbAt = m.firstBeat(now) // a held heartbeat at once, for the next rebalance notice
	}
	m.ownedGen = m.generation
	if len(revoked) > 0 {
		// Cooperative: give up what moved, then rejoin so that the next
		// round can hand it to its new owner.
		cb := Callback{ID: m.id(), Kind: Revoked, Partitions: revoked, Deadline: m.revokeDeadline(now, m.rebalanceDeadline)}
		m.block(out, cb, true)
	}
	if len(added) > 0 {
		m.owned = withPartitions(m.owned, added)
		out.Callbacks = append(out.Callbacks, Callback{ID: m.id(), Kind: Assigned, Partitions: added, Deadline: m.lease})
	}
	if len(revoked) == 0 && m.losses != m.joinLosses {
		// Partitions were lost after the join that reported them: the
		// coordinator may wait for their revocation. Rejoin to report what
		// the member owns now.
		m.rejoin(now)
	}
}

// unknownTopicsEvent reports that the coordinator's registry lacks topics
// the member subscribes to.
func unknownTopicsEvent(topics []string) Event {
	return Event{Kind: EventUnknownTopics, Detail: fmt.Sprintf(
		"topics %s are not in the coordinator's registry: this member owns none of their partitions until an operator creates them (regroup topics put), or until its subscription drops them", strings.Join(topics, ", "))}
}

// detail concatenates strings and ints into one string, with one
// allocation (fmt.Sprint's spacing rules do not apply).
func detail(parts ...any) string {
	var buf [128]byte
	b := buf[:0]
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			b = append(b, v...)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		}
	}
	return string(b)
}

// firstBeat is when the first heartbeat of a generation goes, once the
// coordinator answered a join or a sync: at once, to be held for the next
// rebalance notice; a period later with ClassicHeartbeats, as Kafka's
// classic client restarts its heartbeat timer.
func (m *Member) firstBeat(now time.Time) time.Time {
	if m.cfg.ClassicHeartbeats {
		return now.Add(m.period())
	}
	return now
}

// onHeartbeat handles the answer to heartbeat b: the one in flight (main)
// or a probe.
func (m *Member) onHeartbeat(now time.Time, b beat, main bool, err error, out *Output) {
	sent := b.sent
	stale := b.gen != m.generation || b.member != m.memberID
	if main {
		// A successful heartbeat was held by the coordinator: send the
		// next at once, so that one is always waiting for the rebalance
		// notice. So after an answer about an earlier generation or member
		// id: the next one is about the current state. An error about the
		// current state came back at once and would again: wait an
		// interval before the next. With ClassicHeartbeats nothing is held:
		// the next goes an interval after this one was sent.
		m.hbSpread = err == nil && b.hold > 0
		switch {
		case err == nil && m.cfg.ClassicHeartbeats:
			m.hbAt = sent.Add(m.period())
		case err == nil || stale:
			m.hbAt = now
		default:
			m.hbAt = now.Add(m.period())
		}
	}
	if main || err == nil {
		m.hbHeld = err == nil || stale
	}
	if err == nil {
		m.hbFailures, m.probes = 0, 0
		m.renew(sent)
		return
	}
	if f := fatal(err); f != nil {
		m.fail(now, out, f)
		return
	}
	// While a join or sync is under way the main line handles the group's
	// changes; a heartbeat only keeps the session (and the lease) alive. So
	// does one sent for an earlier generation or member id, whose news the
	// member has already acted on.
	rejoining := stale || m.next == stepJoin || m.next == stepSync || m.mainKind == stepJoin || m.mainKind == stepSync
	switch {
	case errors.Is(err, regroup.ErrRebalanceInProgress):
		m.hbFailures = 0
		m.renew(sent)
		m.rebalanceNotice(sent, err)
		if !rejoining && !m.stopping {
			out.Events = append(out.Events, Event{Kind: EventRebalance, Detail: "the group is rebalancing; rejoining"})
			m.rejoin(now)
		}
	case errors.Is(err, regroup.ErrIllegalGeneration):
		if !rejoining && !m.stopping {
			out.Events = append(out.Events, Event{Kind: EventRebalance, Detail: "the group moved to a new generation without this member; rejoining"})
			m.rejoin(now)
		}
	case errors.Is(err, regroup.ErrUnknownMemberID) && b.member == m.memberID:
		if m.stopping {
			m.lose(now, out, now)
			m.memberID, m.secret = "", ""
			return
		}
		out.Events = append(out.Events, Event{Kind: EventLost, Detail: "the coordinator no longer knows this member; joining afresh"})
		m.resetIdentity(now, out)
		if m.mainKind == stepJoin || m.mainKind == stepSync {
			m.mainReq, m.mainKind = 0, 0 // its answer would name the old id
		}
	case retriable(err) && main:
		m.hbFailures++
		if hint, ok := m.overloadHint(err); ok {
			// The protocol sheds no member's heartbeat; should a
			// coordinator do so, wait as asked, within the lease.
			m.hbAt = now.Add(m.shed(now, out, "Heartbeat", hint, false))
		} else {
			m.hbAt = now.Add(m.backoff(now, m.hbFailures))
		}
	case retriable(err):
		// The probe got no answer: probe again, its gap after it, while
		// the heartbeat is still out.
		if m.hb.id != 0 {
			m.probeAt = sent.Add(b.timeout)
		}
	}
}
