package group

import (
	"crypto/subtle"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Heartbeat handles a Heartbeat request. With hold_ms set, a successful reply
// is held (see Reply.HoldUntil) and replaced by REBALANCE_IN_PROGRESS as soon
// as a rebalance starts.
func (g *Group) Heartbeat(now time.Time, req ReqID, c Caller, r *regroupv1.HeartbeatRequest) Output {
	g.now = now
	var out Output
	if err := validateHeartbeat(r); err != nil {
		out.fail(req, err)
		return out
	}
	if g.state == Dead {
		out.fail(req, regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "group %q was deleted", g.id))
		return out
	}
	if err := g.claimKind(false); err != nil {
		out.fail(req, err)
		return out
	}
	m, err := g.validateMember(r.GetMemberId(), r.GetGroupInstanceId())
	if err == nil {
		err = g.authorize(m, c)
	}
	if err != nil {
		out.fail(req, err)
		return out
	}
	if r.GetGeneration() != g.generation {
		out.fail(req, regroup.Errorf(regroup.CodeIllegalGeneration, "generation %d is not the group's generation %d", r.GetGeneration(), g.generation))
		return out
	}
	// One empty answer serves both the held heartbeat and this one, and
	// is allocated with room for both replies: every member beats every
	// few seconds.
	blk := &heartbeatBlock{}
	ok := &blk.ok
	out.Replies = blk.replies[:0]
	if m.hbReq != 0 {
		out.reply(m.hbReq, ok)
		m.hbReq = 0
	}
	g.refresh(now, m)
	if g.state == PreparingRebalance {
		out.fail(req, errRebalancing(g, now))
		return out
	}
	hold := min(time.Duration(r.GetHoldMs())*time.Millisecond, m.sessionTimeout/3)
	if hold <= 0 {
		out.reply(req, ok)
		return out
	}
	m.hbReq = req
	out.Replies = append(out.Replies, Reply{Req: req, Msg: ok, HoldUntil: now.Add(hold)})
	return out
}

// heartbeatBlock holds a heartbeat's answer and its output's replies.
type heartbeatBlock struct {
	ok      regroupv1.HeartbeatResponse
	replies [2]Reply
}

// Leave handles a LeaveGroup request (and the Admin's RemoveMembers, which
// is a LeaveGroup whose entries name only instance ids, from an
// administrator). A member's entries must come from its own identity.
func (g *Group) Leave(now time.Time, req ReqID, c Caller, r *regroupv1.LeaveGroupRequest) Output {
	g.now = now
	var out Output
	if err := validateLeave(r); err != nil {
		out.fail(req, err)
		return out
	}
	if g.state == Dead {
		out.fail(req, regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "group %q was deleted", g.id))
		return out
	}
	if err := g.claimKind(false); err != nil && !c.Admin {
		out.fail(req, err)
		return out
	}
	resp := &regroupv1.LeaveGroupResponse{}
	var left []string
	dropped := false
	kind := CauseMemberRemoved
	for _, e := range r.GetMembers() {
		res := &regroupv1.LeaveMemberResult{MemberId: e.GetMemberId(), GroupInstanceId: e.GetGroupInstanceId()}
		resp.Members = append(resp.Members, res)
		if id := e.GetMemberId(); id != "" && g.pending.has(id) {
			// A pending id, dropped on its identity's word: it was never
			// a member, so nothing rebalances (it may have held the
			// barrier).
			if err := g.authorizePending(id, c); err != nil {
				res.ErrorReason, res.ErrorMessage = string(regroup.CodeOf(err)), err.Error()
				continue
			}
			g.pending.take(id)
			dropped = true
			continue
		}
		own, err := g.leaveOne(now, &out, c, e)
		if err != nil {
			res.ErrorReason = string(regroup.CodeOf(err))
			res.ErrorMessage = err.Error()
			continue
		}
		if !e.GetTemporary() {
			left = append(left, describeLeaver(e, own))
			if own {
				kind = CauseMemberLeft
			}
		}
	}
	out.reply(req, resp)
	if g.next {
		// An administrator's removal (the only leave of such a group).
		if len(left) > 0 {
			g.bumpEpoch(now, &out, kind, fmt.Sprintf("%s left", joinWords(left)))
		}
		g.settle(now, &out)
		return out
	}
	if dropped {
		g.maybeCompleteJoin(now, &out)
	}
	if len(left) == 0 && g.state == Stable {
		// Temporary leaves released partitions: one the assignment left
		// out may now be held by nobody.
		g.checkStranded(now, &out)
	}
	if len(left) > 0 {
		cause := fmt.Sprintf("%s left", joinWords(left))
		switch g.state {
		case Stable, CompletingRebalance:
			g.prepareRebalance(now, &out, kind, cause)
		case PreparingRebalance:
			g.maybeCompleteJoin(now, &out)
		}
	}
	return out
}

// describeLeaver names the member an entry removed; own says whether the
// leave was the member's own (see leaveOne).
func describeLeaver(e *regroupv1.LeaveMember, own bool) string {
	const impostor = "removed by a LeaveGroup without its member secret"
	switch {
	case e.GetMemberId() == "":
		return fmt.Sprintf("static member %s (%s)", e.GetGroupInstanceId(), withReason("removed by an administrator", e.GetReason()))
	case e.GetGroupInstanceId() != "" && own:
		return fmt.Sprintf("static member %s (instance %s)", e.GetMemberId(), e.GetGroupInstanceId())
	case e.GetGroupInstanceId() != "":
		return fmt.Sprintf("static member %s (instance %s; %s)", e.GetMemberId(), e.GetGroupInstanceId(), impostor)
	case own:
		return "member " + e.GetMemberId()
	}
	return fmt.Sprintf("member %s (%s)", e.GetMemberId(), impostor)
}

func joinWords(ws []string) string {
	if len(ws) > 3 {
		return fmt.Sprintf("%s and %d more", joinWords(ws[:3]), len(ws)-3)
	}
	s := ""
	for i, w := range ws {
		switch {
		case i == 0:
		case i == len(ws)-1:
			s += " and "
		default:
			s += ", "
		}
		s += w
	}
	return s
}

// leaveOne applies one LeaveGroup entry, and reports whether it was the
// member's own leave. Partitions are released only on their owner's word,
// and member ids are not secret (the leader gets all of them, DescribeGroup
// lists them): a leave is the member's own only if it carries the secret
// issued in the member's JoinGroup answers. Without it, a leave by member
// id still removes the member (as Kafka does), but like an administrator's
// removal: what it may hold stays held until its lease ends. A temporary
// leave releases partitions without removing anyone, so without the secret
// it is refused: INVALID_REQUEST rather than UNKNOWN_MEMBER_ID, because the
// member does exist (and the library takes UNKNOWN_MEMBER_ID to mean it must
// drop everything it owns), and a request missing its proof is malformed,
// not retriable.
func (g *Group) leaveOne(now time.Time, out *Output, c Caller, e *regroupv1.LeaveMember) (own bool, err error) {
	gone := regroup.Errorf(regroup.CodeUnknownMemberID, "member left group %q", g.id)
	if e.GetMemberId() == "" {
		m := g.instances[e.GetGroupInstanceId()]
		if m == nil {
			return false, regroup.Errorf(regroup.CodeUnknownMemberID, "instance %q is not a member of group %q", e.GetGroupInstanceId(), g.id)
		}
		if err := g.authorize(m, c); err != nil {
			return false, err
		}
		g.remove(now, out, m, withReason("removed by an administrator", e.GetReason()), false, gone)
		return false, nil
	}
	m, err := g.validateMember(e.GetMemberId(), e.GetGroupInstanceId())
	if err == nil {
		err = g.authorize(m, c)
	}
	if err != nil {
		return false, err
	}
	own = m.secret != "" && subtle.ConstantTimeCompare([]byte(e.GetMemberSecret()), []byte(m.secret)) == 1
	if e.GetTemporary() {
		if !own {
			return false, invalid("member_secret", "a temporary leave releases the partitions of member %s and must carry the member_secret of its JoinGroup answer: only the member itself may release them", m.id)
		}
		g.held = nil
		g.released += m.owned.count()
		m.owned = parts{}
		g.recheckStranded(now)
		out.Persist = true
		if m.hbReq != 0 {
			out.fail(m.hbReq, gone)
			m.hbReq = 0
		}
		return true, nil
	}
	if !own {
		g.remove(now, out, m, withReason("removed by a LeaveGroup without its member secret", e.GetReason()), false, gone)
		return false, nil
	}
	g.remove(now, out, m, withReason("left the group", e.GetReason()), true, gone)
	return true, nil
}

// SetTopics gives the group a new snapshot of the topic registry (which it
// keeps and never modifies). If the partition count of a topic a member
// subscribes to changed, the group rebalances; it returns the change it saw,
// or "".
func (g *Group) SetTopics(now time.Time, registry map[string]int32) (Output, string) {
	g.now = now
	var out Output
	g.registry = registry
	cause := g.rebalanceForTopics(now, &out)
	return out, cause
}

// rebalanceForTopics starts a rebalance if the partition count of a
// subscribed topic differs from what the leader was last given, and returns
// the change ("" if none). It applies in Stable and CompletingRebalance; a
// rebalance in progress gives the leader the new counts anyway.
func (g *Group) rebalanceForTopics(now time.Time, out *Output) string {
	if g.state != Stable && g.state != CompletingRebalance {
		return ""
	}
	current := g.subscribedCounts()
	var changes []string
	for t, n := range current {
		if old, ok := g.seen[t]; !ok {
			changes = append(changes, fmt.Sprintf("topic %s was created with %d partitions", t, n))
		} else if old != n {
			changes = append(changes, fmt.Sprintf("topic %s changed from %d to %d partitions", t, old, n))
		}
	}
	for t := range g.seen {
		if _, ok := current[t]; !ok {
			changes = append(changes, fmt.Sprintf("topic %s was deleted", t))
		}
	}
	if len(changes) == 0 {
		return ""
	}
	slices.Sort(changes)
	cause := joinWords(changes)
	if g.next {
		g.bumpEpoch(now, out, CauseTopicChanged, cause)
		g.settle(now, out)
		return cause
	}
	g.prepareRebalance(now, out, CauseTopicChanged, cause)
	return cause
}

// Tick fires every timer that is due at now: pending ids and sessions that
// expired, the initial delay, the join and sync deadlines, deferred
// deliveries and an Empty group's retention.
func (g *Group) Tick(now time.Time) Output {
	g.now = now
	var out Output
	if g.next {
		g.tickNext(now, &out)
		return out
	}
	// Pending ids may have expired, or stopped holding the barrier.
	g.pending.expire(now)
	g.maybeCompleteJoin(now, &out)
	for _, m := range g.dueSessions(now) {
		g.checkSession(now, &out, m)
	}
	switch g.state {
	case PreparingRebalance:
		g.tickJoin(now, &out)
	case CompletingRebalance, Stable:
		g.tickSync(now, &out)
	case Empty:
		if !now.Before(g.emptySince.Add(g.cfg.EmptyRetention)) {
			g.setState(&out, Dead)
			out.Delete = true
		}
	}
	return out
}

// checkSession expires m if its session has ended. Members waiting for a
// join or sync reply count as alive, except new members whose first join
// outlived the new-member timeout.
func (g *Group) checkSession(now time.Time, out *Output, m *member) {
	if m.sessionDeadline.After(now) {
		g.schedule(m)
		return
	}
	if (m.joinReq != 0 && !m.isNew) || m.syncReq != 0 {
		m.sessionDeadline = now.Add(m.sessionTimeout)
		g.schedule(m)
		return
	}
	why := "session expired"
	if m.isNew {
		why = "its first join was not completed within the new-member timeout"
	}
	g.remove(now, out, m, why, false, regroup.Errorf(regroup.CodeUnknownMemberID, "member %s was removed from group %q: %s", m.id, g.id, why))
	switch g.state {
	case Stable, CompletingRebalance:
		g.prepareRebalance(now, out, CauseMemberExpired, fmt.Sprintf("member %s expired", m.id))
	case PreparingRebalance:
		g.maybeCompleteJoin(now, out)
	}
}

// tickJoin ends the initial delay, or the join barrier at its deadline.
func (g *Group) tickJoin(now time.Time, out *Output) {
	if !g.delayDeadline.IsZero() {
		if now.Before(g.delayDeadline) {
			return
		}
		if g.extendDelay(now) {
			return // members keep arriving
		}
		g.completeJoin(now, out)
		return
	}
	if !g.joinDeadline.IsZero() && !now.Before(g.joinDeadline) {
		g.completeJoin(now, out)
	}
}

// tickSync removes members that did not send SyncGroup in time, and
// delivers assignments whose holds have ended.
func (g *Group) tickSync(now time.Time, out *Output) {
	if !g.syncDeadline.IsZero() && !now.Before(g.syncDeadline) {
		g.syncDeadline = time.Time{}
		var late []string
		for _, m := range slices.Clone(g.order) {
			if m.awaitingSync {
				late = append(late, m.id)
				g.remove(now, out, m, "did not send SyncGroup before the rebalance timeout", false,
					regroup.Errorf(regroup.CodeUnknownMemberID, "member %s did not sync in time", m.id))
			}
		}
		if len(late) > 0 {
			g.prepareRebalance(now, out, CauseSyncTimeout, fmt.Sprintf("%s did not sync in time", joinWords(late)))
			return
		}
	}
	if g.state != Stable {
		return
	}
	if !g.strandCheck.IsZero() && !now.Before(g.strandCheck) {
		g.checkStranded(now, out)
		if g.state != Stable {
			return
		}
	}
	if g.deliveryDue(now) {
		for _, m := range g.order {
			if m.syncReq != 0 && !m.deliverAt.IsZero() && !now.Before(m.deliverAt) {
				g.deliver(now, out, m)
			}
		}
	}
	g.finishSync(now, out)
}

// deliveryDue reports whether a waiting delivery is due at now.
func (g *Group) deliveryDue(now time.Time) bool {
	return slices.ContainsFunc(g.waiters(), func(m *member) bool {
		return m.syncReq != 0 && !now.Before(m.deliverAt)
	})
}

// Delete deletes an Empty group on an administrator's request: it becomes
// Dead, and its record a tombstone. Any other state is GROUP_NOT_EMPTY.
func (g *Group) Delete(now time.Time) (Output, error) {
	g.now = now
	var out Output
	if g.state != Empty {
		return out, regroup.Errorf(regroup.CodeGroupNotEmpty, "group %q is %v with %d members; only an Empty group can be deleted", g.id, g.state, len(g.members))
	}
	g.setState(&out, Dead)
	out.Delete = true
	return out, nil
}

// Abort answers every parked request with err, for a driver that lost the
// group (its store write failed, or it is no longer the coordinator). The
// driver discards the group afterwards and reloads it from the store.
func (g *Group) Abort(err error) Output {
	var out Output
	g.joinedHead = 0
	for _, m := range g.order {
		for _, req := range []ReqID{m.joinReq, m.syncReq, m.hbReq} {
			if req != 0 {
				out.fail(req, err)
			}
		}
		m.joinReq, m.syncReq, m.hbReq = 0, 0, 0
	}
	return out
}

func withReason(what, reason string) string {
	if reason == "" {
		return what
	}
	return what + ": " + reason
}

// AnswerUnknownGroup answers a request for a group the coordinator does not
// have (never created, or deleted). After the same validation the group
// would apply, a JoinGroup with a member id, a SyncGroup and a Heartbeat get
// UNKNOWN_MEMBER_ID, and every LeaveGroup entry gets its own
// UNKNOWN_MEMBER_ID. (A JoinGroup with an empty member id creates the group
// instead.)
func AnswerUnknownGroup(cfg Config, req proto.Message) Reply {
	var err *regroup.Error
	var id string
	switch r := req.(type) {
	case *regroupv1.JoinGroupRequest:
		err, id = cfg.validateJoin(r), r.GetGroupId()
	case *regroupv1.SyncGroupRequest:
		err, id = cfg.validateSync(r), r.GetGroupId()
	case *regroupv1.HeartbeatRequest:
		err, id = validateHeartbeat(r), r.GetGroupId()
	case *regroupv1.ReconcileRequest:
		err, id = cfg.validateReconcile(r), r.GetGroupId()
	case *regroupv1.LeaveGroupRequest:
		if err := validateLeave(r); err != nil {
			return Reply{Err: err}
		}
		resp := &regroupv1.LeaveGroupResponse{}
		for _, m := range r.GetMembers() {
			resp.Members = append(resp.Members, &regroupv1.LeaveMemberResult{
				MemberId:        m.GetMemberId(),
				GroupInstanceId: m.GetGroupInstanceId(),
				ErrorReason:     string(regroup.CodeUnknownMemberID),
				ErrorMessage:    fmt.Sprintf("group %q does not exist", r.GetGroupId()),
			})
		}
		return Reply{Msg: resp}
	default:
		panic(fmt.Sprintf("group: AnswerUnknownGroup of %T", req))
	}
	if err != nil {
		return Reply{Err: err}
	}
	return Reply{Err: regroup.Errorf(regroup.CodeUnknownMemberID, "group %q does not exist; join it with an empty member id", id)}
}
