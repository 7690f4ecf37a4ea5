package group

import (
	"crypto/subtle"
	"fmt"
	"slices"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/assignor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// The next-generation protocol (Kafka's KIP-848 model) runs in the same
// Group as the classic one, with the same members, holds, leases, fencing
// tokens, records and history; a group is of one kind or the other, chosen
// by its first member (see claimKind). Its differences:
//
//   - The generation is the group epoch: a join, a leave, an expiry, a
//     subscription or topic change bumps it. The coordinator computes the
//     target assignment itself (the group's server-side assignor, named
//     by protocol) at most once per Config.AssignmentInterval, and its
//     epoch becomes assignEpoch.
//   - Each member converges to its part of the target on its own
//     (reconcileMember): it is told to give up what is not in its target,
//     reports that it did, moves to assignEpoch and is given the
//     partitions of its target that no other member holds and no hold
//     covers. A partition is never given while someone else may still hold
//     it: a member that does not report releasing it within its rebalance
//     timeout is removed, and its partitions wait for its lease.
//   - A member's assigned partitions are what it was told it owns, owned
//     what it may still hold (assigned and what it has yet to report
//     released). Every change of assigned is a new revision; a call names
//     the last revision the member acted on, and its report releases only
//     what the member left out of an assignment it has seen: a member may
//     have several calls in flight, and a report sent before an answer
//     arrived says nothing of what that answer gives.

// DefaultServerAssignor is the server-side assignor of a next-generation
// group whose first member names none.
const DefaultServerAssignor = "cooperative-sticky"

// GroupProtocol names the group's protocol: "classic" or "next".
func (g *Group) GroupProtocol() string {
	if g.next {
		return "next"
	}
	return "classic"
}

// claimKind checks that a call of the next-generation protocol (next) or of
// the classic one may act on the group: a group takes the kind of the
// first call that gives it a member, and keeps it until it is empty again.
func (g *Group) claimKind(next bool) error {
	if g.next == next {
		return nil
	}
	if len(g.members) == 0 && g.pending.len() == 0 && g.state == Empty {
		g.next = next
		return nil
	}
	want, is := "classic (JoinGroup, SyncGroup, Heartbeat, LeaveGroup)", "the next-generation protocol (Reconcile)"
	if next {
		want, is = is, want
	}
	return regroup.Errorf(regroup.CodeGroupProtocolMismatch,
		"group %q uses %s, this call is of %s; a group keeps its first member's protocol until it is empty: configure every member alike, or use another group id", g.id, is, want)
}

// Reconcile handles a next-generation member's call: a join (no member
// id), a leave (epoch -1 or -2), or a report and heartbeat. The answer may
// be held (see Reply.HoldUntil) and replaced as soon as the member's
// assignment changes.
func (g *Group) Reconcile(now time.Time, req ReqID, c Caller, r *regroupv1.ReconcileRequest) Output {
	g.now = now
	var out Output
	if err := g.cfg.validateReconcile(r); err != nil {
		out.fail(req, err)
		return out
	}
	if g.state == Dead {
		out.fail(req, regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "group %q was deleted", g.id))
		return out
	}
	if err := g.claimKind(true); err != nil {
		out.fail(req, err)
		return out
	}
	if r.GetMemberId() == "" {
		g.reconcileJoin(now, &out, req, c, r)
	} else {
		g.reconcileCall(now, &out, req, c, r)
	}
	g.settle(now, &out)
	return out
}

// reconcileJoin adds a member, or gives a static member's place to a
// restarted process once the previous one left temporarily.
func (g *Group) reconcileJoin(now time.Time, out *Output, req ReqID, c Caller, r *regroupv1.ReconcileRequest) {
	if len(g.members) == 0 {
		name := r.GetServerAssignor()
		if name == "" {
			name = DefaultServerAssignor
		}
		if _, err := assignor.Lookup(name); err != nil {
			out.fail(req, regroup.Errorf(regroup.CodeUnsupportedAssignor, "server_assignor %q: the coordinator's assignors are %v", name, assignor.Names()))
			return
		}
		g.protocol = name
	}
	join := joinOf(r, g.protocol)
	if inst := r.GetGroupInstanceId(); inst != "" && g.instances[inst] != nil {
		old := g.instances[inst]
		if !old.absent {
			out.fail(req, regroup.Errorf(regroup.CodeUnreleasedInstanceID,
				"instance %q of group %q is member %s, which has not left; retry once it left or its session of %v ended", inst, g.id, old.id, old.sessionTimeout))
			return
		}
		if err := g.authorize(old, c); err != nil {
			out.fail(req, err)
			return
		}
		g.dropNext(now, out, old, "replaced by a restart of its instance", true, nil)
		m := g.addNext(now, c, join, r)
		m.target, m.epoch = old.target, old.epoch
		g.addHistory(&regroupv1.Rebalance{
			Generation: g.generation, NoRebalance: true, Start: nowStamp(now), End: nowStamp(now),
			Cause: fmt.Sprintf("static member %s (instance %s) replaced %s", m.id, inst, old.id), CauseKind: string(CauseStaticReplaced),
		})
		out.event(Event{Kind: EventMemberReplaced, Member: m.id, Detail: "replaced " + old.id})
		g.countLostNext(out, r)
		g.parkCall(now, out, req, m, r, true)
		g.reconcileMember(now, out, m)
		return
	}
	if g.cfg.MaxSize > 0 && len(g.members) >= g.cfg.MaxSize {
		out.fail(req, g.maxSizeError())
		return
	}
	if err := g.checkJoinBudget(nil, join, c.Host); err != nil {
		out.fail(req, err)
		return
	}
	m := g.addNext(now, c, join, r)
	g.bumpEpoch(now, out, CauseMemberJoined, "member "+m.id+" joined")
	g.countLostNext(out, r) // in the rebalance its join starts
	g.parkCall(now, out, req, m, r, true)
}

// joinOf is the JoinGroup a Reconcile join amounts to: the member's
// subscription under the group's assignor, its only protocol.
func joinOf(r *regroupv1.ReconcileRequest, assignorName string) *regroupv1.JoinGroupRequest {
	return &regroupv1.JoinGroupRequest{
		GroupId:            r.GetGroupId(),
		GroupInstanceId:    r.GetGroupInstanceId(),
		ClientId:           r.GetClientId(),
		SessionTimeoutMs:   r.GetSessionTimeoutMs(),
		RebalanceTimeoutMs: r.GetRebalanceTimeoutMs(),
		Protocols:          []*regroupv1.Protocol{{Name: assignorName, Subscription: &regroupv1.Subscription{Topics: r.GetSubscribedTopics()}}},
	}
}

// addNext adds a next-generation member, alive from now.
func (g *Group) addNext(now time.Time, c Caller, join *regroupv1.JoinGroupRequest, r *regroupv1.ReconcileRequest) *member {
	prefix := r.GetGroupInstanceId()
	if prefix == "" {
		prefix = r.GetClientId()
	}
	m := g.addMember(now, g.ids.MemberID(prefix), c, join)
	m.isNew = false
	g.refresh(now, m)
	m.settled = true // not counted yet: note counts it if it has not converged
	g.note(m)
	return m
}

// reconcileCall handles a call of a known member.
func (g *Group) reconcileCall(now time.Time, out *Output, req ReqID, c Caller, r *regroupv1.ReconcileRequest) {
	m, err := g.validateMember(r.GetMemberId(), r.GetGroupInstanceId())
	if err == nil {
		err = g.authorize(m, c)
	}
	if err == nil && (m.secret == "" || subtle.ConstantTimeCompare([]byte(r.GetMemberSecret()), []byte(m.secret)) != 1) {
		err = regroup.Errorf(regroup.CodeNotAuthorized, "member_secret is not member %s's: only the member itself may call for it", m.id)
	}
	if err == nil && m.absent {
		err = regroup.Errorf(regroup.CodeUnknownMemberID, "member %s left group %q; join again with its instance id", m.id, g.id)
	}
	if err != nil {
		out.fail(req, err)
		return
	}
	g.countLostNext(out, r)
	switch epoch := r.GetMemberEpoch(); {
	case epoch == -1:
		g.removeNext(now, out, m, CauseMemberLeft, "left the group", true, regroup.Errorf(regroup.CodeUnknownMemberID, "member %s left group %q", m.id, g.id))
		out.reply(req, &regroupv1.ReconcileResponse{MemberId: m.id, MemberEpoch: -1})
		return
	case epoch == -2:
		m.absent = true
		g.owns(m, parts{})
		g.note(m)
		if m.hbReq != 0 {
			out.reply(m.hbReq, &regroupv1.ReconcileResponse{MemberId: m.id, MemberEpoch: -2})
			m.hbReq = 0
		}
		out.Persist = true
		out.reply(req, &regroupv1.ReconcileResponse{MemberId: m.id, MemberEpoch: -2})
		return
	case epoch > m.epoch:
		err := regroup.Errorf(regroup.CodeFencedMemberEpoch, "member %s of group %q sent epoch %d, ahead of its epoch %d; join again", m.id, g.id, epoch, m.epoch)
		g.removeNext(now, out, m, CauseMemberRemoved, fmt.Sprintf("was fenced: it sent epoch %d, ahead of its epoch %d", epoch, m.epoch), false, err)
		out.fail(req, err)
		return
	}
	// An epoch behind the member's is an answer that did not reach it: its
	// report still says what it holds, and the answer repeats the rest.
	g.refresh(now, m)
	// Every call carries the subscription: compared as it is, and only a
	// change builds the member's protocols anew.
	if !slices.Equal(g.subscription(m).GetTopics(), r.GetSubscribedTopics()) {
		g.update(m, joinOf(r, g.protocol))
		g.bumpEpoch(now, out, CauseSubscriptionChanged, "member "+m.id+" changed its subscription")
	} else {
		m.sessionTimeout = time.Duration(r.GetSessionTimeoutMs()) * time.Millisecond
		m.rebalanceTimeout = time.Duration(r.GetRebalanceTimeoutMs()) * time.Millisecond
	}
	g.parkCall(now, out, req, m, r, false)
	if r.GetAssignmentRevision() >= m.revision {
		m.unacked = nil // it has seen every grant
	}
	g.owns(m, partsFromProto(r.GetOwned()).union(m.unacked))
	g.reconcileMember(now, out, m)
}

// countLostNext counts what a member reports it declared lost (each call
// reports what is new since its last answered one).
func (g *Group) countLostNext(out *Output, r *regroupv1.ReconcileRequest) {
	g.addLost(out, r.GetPartitionsLost())
}

// parkCall makes req the member's outstanding call, answering the one it
// replaces; settle answers it, at once or held.
func (g *Group) parkCall(now time.Time, out *Output, req ReqID, m *member, r *regroupv1.ReconcileRequest, join bool) {
	if m.hbReq != 0 {
		out.reply(m.hbReq, g.answer(m))
	}
	hold := min(time.Duration(r.GetHoldMs())*time.Millisecond, m.sessionTimeout/3)
	m.hbReq, m.holdUntil, m.joinCall = req, now.Add(hold), join
	m.callRev = r.GetAssignmentRevision()
	g.due(m)
}

// owns records what m reports holding: whatever of what it may hold it no
// longer reports is released. Claims beyond that are ignored.
func (g *Group) owns(m *member, reported parts) {
	kept := m.owned.intersect(reported)
	if kept.equal(m.owned) {
		return
	}
	if g.reb != nil {
		g.released += m.owned.count() - kept.count()
	}
	m.owned = kept
	if a := m.assigned.intersect(kept); !a.equal(m.assigned) {
		m.assigned = a
		g.setAssignment(m)
	}
	g.claims, g.releases = nil, true
	g.note(m)
}

// removeNext removes m from a next-generation group and bumps the epoch.
func (g *Group) removeNext(now time.Time, out *Output, m *member, kind Cause, why string, graceful bool, err error) {
	g.dropNext(now, out, m, why, graceful, err)
	g.bumpEpoch(now, out, kind, fmt.Sprintf("member %s %s", m.id, why))
}

// dropNext takes m out of a next-generation group (see remove), answering
// its outstanding call with err, or with epoch -1 if err is nil.
func (g *Group) dropNext(now time.Time, out *Output, m *member, why string, graceful bool, err error) {
	if m.hbReq != 0 && err == nil {
		out.reply(m.hbReq, &regroupv1.ReconcileResponse{MemberId: m.id, MemberEpoch: -1})
		m.hbReq = 0
	}
	g.remove(now, out, m, why, graceful, err)
}

// answer is m's answer as it stands: its epoch, and its assignment when it
// changed since the revision its outstanding call acknowledged.
func (g *Group) answer(m *member) *regroupv1.ReconcileResponse {
	resp := &regroupv1.ReconcileResponse{
		MemberId:            m.id,
		MemberEpoch:         m.epoch,
		HeartbeatIntervalMs: ms(min(g.cfg.MemberHeartbeat, m.sessionTimeout/3)),
		SessionTimeoutMs:    ms(m.sessionTimeout),
		UnknownTopics:       g.unknownTopics(m),
	}
	if m.joinCall {
		resp.MemberSecret = m.secret
	}
	if m.revision != m.callRev {
		resp.Assignment = &regroupv1.ReconcileAssignment{Partitions: m.assigned.toProto(), FencingToken: m.token, Revision: m.revision}
	}
	return resp
}

// due marks m's outstanding call for settle to answer.
func (g *Group) due(m *member) {
	if !m.answerDue {
		m.answerDue = true
		g.toAnswer = append(g.toAnswer, m)
	}
}

// answerCalls answers the outstanding calls of the members due: at once if
// the member's assignment changed since the revision its call acknowledged
// (partitions to give up or to take), otherwise held until its hold ends,
// with its epoch as it is then.
func (g *Group) answerCalls(now time.Time, out *Output) {
	for _, m := range g.toAnswer {
		m.answerDue = false
		if m.removed || m.hbReq == 0 {
			continue
		}
		resp := g.answer(m)
		// A new epoch alone waits for the hold's end: the member's next
		// call may name the old one, and a group-wide change would
		// otherwise answer every member at once.
		news := resp.Assignment != nil
		if news || !m.holdUntil.After(now) {
			out.reply(m.hbReq, resp)
			m.hbReq = 0
			continue
		}
		out.Replies = append(out.Replies, Reply{Req: m.hbReq, Msg: resp, HoldUntil: m.holdUntil})
	}
	g.toAnswer = g.toAnswer[:0]
}

func regroupUnknown(member, group, why string) error {
	return regroup.Errorf(regroup.CodeUnknownMemberID, "member %s was removed from group %q: %s; join again", member, group, why)
}

func regroupFenced(member, group, why string) error {
	return regroup.Errorf(regroup.CodeFencedMemberEpoch, "member %s was removed from group %q: %s; join again", member, group, why)
}
