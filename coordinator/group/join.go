package group

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/regroup-dev/regroup"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Join handles a JoinGroup request from c. The reply may come in this
// Output or, once the join barrier completes, in a later one.
func (g *Group) Join(now time.Time, req ReqID, c Caller, r *regroupv1.JoinGroupRequest) Output {
	g.now = now
	var out Output
	if err := g.cfg.validateJoin(r); err != nil {
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
	var counted int32 // what this member's parked join reported lost
	if m := g.members[r.GetMemberId()]; m != nil {
		counted = m.lostCounted
	}
	if r.GetMemberId() == "" {
		g.joinUnknown(now, &out, req, c, r)
	} else {
		g.joinKnown(now, &out, req, c, r)
	}
	if r.GetPartitionsLost() > 0 {
		g.countLost(&out, req, r, counted)
	}
	return out
}

// countLost counts the partitions a member reported lost in the join req
// it sent, once the group took the join (parked it or answered it). A
// member repeats its report in every join until one is answered, so a
// join that supersedes a parked one counts only what is new since (counted
// is what the parked one reported). The count goes to the rebalance in
// progress, or else to the latest one (the member was answered at once).
func (g *Group) countLost(out *Output, req ReqID, r *regroupv1.JoinGroupRequest, counted int32) {
	m := g.members[r.GetMemberId()]
	if inst := r.GetGroupInstanceId(); inst != "" {
		m = g.instances[inst] // a replaced static member has a new id
	}
	if m == nil || (m.joinReq != req && !slices.ContainsFunc(out.Replies, func(rep Reply) bool { return rep.Req == req && rep.Err == nil })) {
		return
	}
	n := max(r.GetPartitionsLost()-counted, 0)
	if m.joinReq == req {
		m.lostCounted = r.GetPartitionsLost()
	}
	g.addLost(out, n)
}

// addLost counts n partitions a member declared lost: in the rebalance in
// progress, or else in the latest one.
func (g *Group) addLost(out *Output, n int32) {
	if n == 0 {
		return
	}
	g.lost += int64(n)
	switch {
	case g.reb != nil:
		g.reb.PartitionsLost += n
	case len(g.history) > 0:
		// A copy: drivers may still read the entry an event carried.
		last := proto.CloneOf(g.history[len(g.history)-1])
		last.PartitionsLost += n
		g.history[len(g.history)-1] = last
	}
	out.Persist = true
}

// acceptNew reports whether a member that is not yet in the group may join
// (KIP-389).
func (g *Group) acceptNew() bool {
	if g.cfg.MaxSize == 0 {
		return true
	}
	switch g.state {
	case PreparingRebalance:
		return g.awaitingJoin() < g.cfg.MaxSize
	case CompletingRebalance, Stable:
		return len(g.members) < g.cfg.MaxSize
	}
	return true
}

func (g *Group) awaitingJoin() int {
	n := 0
	for _, m := range g.order {
		if m.joinReq != 0 {
			n++
		}
	}
	return n
}

func (g *Group) maxSizeError() error {
	return regroup.Errorf(regroup.CodeGroupMaxSizeReached, "group %q has reached its maximum size of %d members", g.id, g.cfg.MaxSize)
}

func (g *Group) inconsistentProtocol(r *regroupv1.JoinGroupRequest) error {
	names := make([]string, 0, len(r.GetProtocols()))
	for _, p := range r.GetProtocols() {
		names = append(names, p.GetName())
	}
	return regroup.Errorf(regroup.CodeInconsistentGroupProtocol,
		"none of the protocols %v is offered by every member of group %q", names, g.id)
}

// joinUnknown handles a join with an empty member id.
func (g *Group) joinUnknown(now time.Time, out *Output, req ReqID, c Caller, r *regroupv1.JoinGroupRequest) {
	if old := g.instances[r.GetGroupInstanceId()]; r.GetGroupInstanceId() != "" && old != nil {
		if err := g.authorize(old, c); err != nil {
			out.fail(req, err) // another identity may not take the instance over
			return
		}
		g.replaceStatic(now, out, req, c, r, old)
		return
	}
	if !g.acceptNew() {
		out.fail(req, g.maxSizeError())
		return
	}
	if len(g.members) > 0 && !g.supportsProtocols(r.GetProtocols(), nil) {
		out.fail(req, g.inconsistentProtocol(r))
		return
	}
	if r.GetGroupInstanceId() != "" {
		if err := g.checkJoinBudget(nil, r, c.Host); err != nil {
			out.fail(req, err)
			return
		}
		m := g.addMember(now, g.ids.MemberID(r.GetGroupInstanceId()), c, r)
		m.joinReq = req
		g.memberJoined(now, out, fmt.Sprintf("static member %s (instance %s) joined", m.id, m.instanceID))
		return
	}
	if g.pending.len() >= g.cfg.MaxPendingMembers {
		out.fail(req, g.pendingLimitError())
		return
	}
	prefix := r.GetClientId()
	id := g.ids.MemberID(prefix)
	valid := min(time.Duration(r.GetSessionTimeoutMs())*time.Millisecond, g.cfg.PendingMemberTimeout)
	g.pending.add(id, c.Identity, now.Add(valid), g.state == PreparingRebalance)
	out.fail(req, regroup.Errorf(regroup.CodeMemberIDRequired, "rejoin with member id %q", id).With(regroup.MetaMemberID, id))
}

// memberJoined starts a rebalance for a new member, or re-checks the barrier
// of the one in progress. A join that starts a rebalance is stored, so that
// a failover resumes the rebalance; one that joins it asks for no write:
// its reply waits for the barrier, and completeJoin stores the whole
// membership then, in one write for every join of the rebalance. A
// failover before the barrier loses such a member, which owns nothing and
// was told nothing (see docs/design.md, "What is persisted").
func (g *Group) memberJoined(now time.Time, out *Output, cause string) {
	if g.state == PreparingRebalance {
		g.maybeCompleteJoin(now, out)
		return
	}
	out.Persist = true
	g.prepareRebalance(now, out, CauseMemberJoined, cause)
}

// joinKnown handles a join that names a member id.
func (g *Group) joinKnown(now time.Time, out *Output, req ReqID, c Caller, r *regroupv1.JoinGroupRequest) {
	id := r.GetMemberId()
	if g.pending.has(id) {
		if err := g.authorizePending(id, c); err != nil {
			out.fail(req, err)
			return
		}
		if r.GetGroupInstanceId() != "" {
			out.fail(req, invalid("group_instance_id", "member id %q was minted for a dynamic member; static members join with an empty member id", id))
			return
		}
		if !g.acceptNew() {
			g.pending.take(id)
			out.fail(req, g.maxSizeError())
			g.maybeCompleteJoin(now, out)
			return
		}
		if len(g.members) > 0 && !g.supportsProtocols(r.GetProtocols(), nil) {
			out.fail(req, g.inconsistentProtocol(r))
			return
		}
		if err := g.checkJoinBudget(nil, r, c.Host); err != nil {
			out.fail(req, err)
			return
		}
		g.pending.take(id)
		m := g.addMember(now, id, c, r)
		m.joinReq = req
		g.memberJoined(now, out, fmt.Sprintf("member %s joined", id))
		return
	}
	m, err := g.validateMember(id, r.GetGroupInstanceId())
	if err == nil {
		err = g.authorize(m, c)
	}
	if err != nil {
		out.fail(req, err)
		return
	}
	if !g.supportsProtocols(r.GetProtocols(), m) {
		out.fail(req, g.inconsistentProtocol(r))
		return
	}
	if err := g.checkJoinBudget(m, r, c.Host); err != nil {
		out.fail(req, err)
		return
	}
	if g.state == PreparingRebalance && m.joinReq == 0 && g.cfg.MaxSize > 0 && g.awaitingJoin() >= g.cfg.MaxSize {
		g.remove(now, out, m, "group is at its maximum size", false, g.maxSizeError())
		out.fail(req, g.maxSizeError())
		g.maybeCompleteJoin(now, out)
		return
	}
	if m.secret == "" {
		// Restored from a record written before secrets were issued.
		m.secret = g.ids.MemberID("")
	}
	m.clientHost = c.Host
	if m.identity != c.Identity {
		m.identity = c.Identity // joined without authentication; bound now
		out.Persist = true
	}
	released := g.reportOwned(m, r)
	if released > 0 {
		g.released += released
		g.recheckStranded(now)
	}
	changed := !protocolsEqual(m.protocols, r.GetProtocols())
	switch g.state {
	case PreparingRebalance:
		g.update(m, r)
		g.park(out, m, req)
		g.maybeCompleteJoin(now, out)
	case CompletingRebalance:
		if !changed {
			g.update(m, r)
			g.answerReleased(now, out, req, m, released)
			return
		}
		kind, cause := subscriptionChange(m, r)
		g.update(m, r)
		g.park(out, m, req)
		g.prepareRebalance(now, out, kind, cause)
	case Stable:
		if m.id != g.leader && !changed {
			g.update(m, r)
			g.answerReleased(now, out, req, m, released)
			return
		}
		kind, cause := subscriptionChange(m, r)
		if !changed {
			kind, cause = CauseLeaderRejoined, fmt.Sprintf("leader %s rejoined", id)
		}
		g.update(m, r)
		g.park(out, m, req)
		g.prepareRebalance(now, out, kind, cause)
	}
}

// answerJoin answers m's JoinGroup at once with the current generation. As
// every successful JoinGroup answer, it refreshes m's session and lease: the
// member library renews its lease from the join's send time, so the
// coordinator's view of the lease must not end before the member's.
func (g *Group) answerJoin(now time.Time, out *Output, req ReqID, m *member) {
	g.refresh(now, m)
	out.reply(req, g.joinResponse(now, m))
}

// answerReleased is answerJoin for a rejoin answered at once, that
// released partitions it no longer reports owning: the release is
// persisted before the answer. No later join repeats it, and a member's
// heartbeats say nothing of what it owns, so a coordinator that restored
// the group from an older record would count the member's lease over
// partitions it released, for as long as it heartbeats, and keep their
// new owners waiting for good. (A join parked for a barrier needs no
// write of its own: the barrier persists the membership, and a failover
// before it has every member rejoin.)
func (g *Group) answerReleased(now time.Time, out *Output, req ReqID, m *member, released int) {
	if released > 0 {
		out.Persist = true
	}
	g.answerJoin(now, out, req, m)
}

// subscriptionChange names the change of a rejoin with changed metadata: a
// cooperative member that released partitions, or a new subscription.
func subscriptionChange(m *member, r *regroupv1.JoinGroupRequest) (Cause, string) {
	if sameSubscriptions(m.protocols, r.GetProtocols()) {
		return CauseFollowUp, fmt.Sprintf("member %s released partitions", m.id)
	}
	return CauseSubscriptionChanged, fmt.Sprintf("member %s changed its subscription", m.id)
}

// park holds m's JoinGroup until the barrier completes. An older parked join
// of the same member is answered: it was superseded.
func (g *Group) park(out *Output, m *member, req ReqID) {
	if m.joinReq != 0 {
		out.fail(m.joinReq, regroup.Errorf(regroup.CodeRebalanceInProgress, "superseded by a newer JoinGroup from member %s", m.id))
	}
	m.joinReq = req
}

// replaceStatic handles a join with an empty member id and a known instance
// id: a restarted static member takes the place of old (KIP-345).
func (g *Group) replaceStatic(now time.Time, out *Output, req ReqID, c Caller, r *regroupv1.JoinGroupRequest, old *member) {
	if !g.supportsProtocols(r.GetProtocols(), old) {
		out.fail(req, g.inconsistentProtocol(r))
		return
	}
	if err := g.checkJoinBudget(old, r, c.Host); err != nil {
		out.fail(req, err)
		return
	}
	fenced := regroup.Errorf(regroup.CodeFencedInstanceID,
		"member %s was replaced by a newer process with instance id %q", old.id, old.instanceID)
	for _, q := range []ReqID{old.joinReq, old.syncReq, old.hbReq} {
		if q != 0 {
			out.fail(q, fenced)
		}
	}
	g.held = nil
	if old.owned.count() > 0 && old.leaseUntil.After(now) {
		g.holds = append(g.holds, hold{member: old.id, partitions: old.owned, until: old.leaseUntil, sessionTimeout: old.sessionTimeout})
	}
	n := &member{
		id:            g.ids.MemberID(old.instanceID),
		secret:        g.ids.MemberID(""), // the old process's secret no longer speaks for it
		instanceID:    old.instanceID,
		clientID:      old.clientID,
		clientHost:    c.Host,
		identity:      c.Identity,
		absent:        old.absent,
		awaitingSync:  old.awaitingSync,
		assignment:    old.assignment,
		assigned:      old.assigned,
		assignmentGen: old.assignmentGen,
		owned:         parts{},
	}
	oldTopics := g.subscription(old).GetTopics()
	g.uncount(old)
	g.update(n, r)
	g.replacements++
	n.token = token(g.generation, g.replacements)
	g.order[slices.Index(g.order, old)] = n
	g.sorted, g.joinedHead = nil, 0
	delete(g.members, old.id)
	old.removed = true
	g.members[n.id] = n
	g.instances[n.instanceID] = n
	if g.leader == old.id {
		g.leader = n.id
	}
	g.refresh(now, n)
	out.Persist = true
	switch g.state {
	case Stable:
		sameTopics := slices.Equal(sortedCopy(oldTopics), sortedCopy(g.subscription(n).GetTopics()))
		if sameTopics && g.selectProtocol() == g.protocol {
			n.absent = false
			n.awaitingSync = false
			resp := g.joinResponse(now, n)
			if n.id == g.leader {
				resp.SkipAssignment = true
			}
			out.reply(req, resp)
			detail := fmt.Sprintf("static member %s (instance %s) replaced by %s", old.id, n.instanceID, n.id)
			g.finishSync(now, out) // the old process may have been the one it waited for
			g.addHistory(&regroupv1.Rebalance{
				Generation:  g.generation,
				Cause:       detail,
				CauseKind:   string(CauseStaticReplaced),
				Start:       timestamppb.New(now),
				End:         timestamppb.New(now),
				Members:     []string{n.id},
				NoRebalance: true,
			})
			out.event(Event{Kind: EventMemberReplaced, Member: n.id, Detail: detail})
			// The old process may have held partitions the assignment left
			// out; its hold, if any, is checked when it ends.
			g.checkStranded(now, out)
			return
		}
		n.joinReq = req
		g.prepareRebalance(now, out, CauseSubscriptionChanged, fmt.Sprintf("static member %s (instance %s) rejoined with a different subscription", n.id, n.instanceID))
	case CompletingRebalance:
		n.joinReq = req
		g.prepareRebalance(now, out, CauseStaticReplaced, fmt.Sprintf("static member %s (instance %s) was replaced during the rebalance", n.id, n.instanceID))
	default:
		n.joinReq = req
		g.maybeCompleteJoin(now, out)
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	sort.Strings(c)
	return slices.Compact(c)
}

// token is the fencing token for generation gen and the n-th static
// replacement within it: tokens grow with every generation and every
// replacement, so a partition's next owner always gets a larger one.
func token(gen int32, n int64) int64 { return int64(gen)<<32 | n }

// prepareRebalance moves the group to PreparingRebalance, answers parked
// SyncGroups and held heartbeats with REBALANCE_IN_PROGRESS (the fast
// notice), and completes the join at once if everyone has already joined.
func (g *Group) prepareRebalance(now time.Time, out *Output, kind Cause, cause string) {
	initial := g.state == Empty
	g.setState(out, PreparingRebalance)
	g.syncDeadline, g.strandCheck = time.Time{}, time.Time{}
	if g.reb == nil {
		g.reb = &regroupv1.Rebalance{Cause: cause, CauseKind: string(kind), Start: timestamppb.New(now)}
	} else if len(g.reb.Cause) < 1024 {
		g.reb.Cause += "; then " + cause
	}
	out.event(Event{Kind: EventRebalanceStarted, Cause: kind, Detail: cause})
	g.delayDeadline, g.joinDeadline = time.Time{}, time.Time{}
	if initial && g.cfg.InitialRebalanceDelay > 0 {
		g.startDelay(now)
	} else {
		g.joinDeadline = now.Add(g.rebalanceTimeout())
	}
	notice := errRebalancing(g, now)
	for _, m := range g.order {
		for _, req := range []ReqID{m.syncReq, m.hbReq} {
			if req != 0 {
				out.fail(req, notice)
			}
		}
		m.syncReq, m.hbReq = 0, 0
		m.awaitingSync = false
		m.deliverAt = time.Time{}
	}
	g.maybeCompleteJoin(now, out)
}

// startDelay starts an empty group's initial rebalance delay: its first
// rebalance waits for more members (KIP-134), at least the delay, extended
// by extendDelay while they keep arriving.
func (g *Group) startDelay(now time.Time) {
	g.delayStep = g.cfg.InitialRebalanceDelay
	g.delayBudget = max(g.rebalanceTimeout()-g.delayStep, 0)
	g.delayDeadline = now.Add(g.delayStep)
	g.newMemberAdded = false
}

// extendDelay extends the initial delay that ends at now by another step,
// within the rebalance timeout, if members arrived during it; it reports
// whether it did.
func (g *Group) extendDelay(now time.Time) bool {
	if !g.newMemberAdded || g.delayBudget <= 0 {
		return false
	}
	g.newMemberAdded = false
	step := min(g.cfg.InitialRebalanceDelay, g.delayBudget)
	g.delayBudget = max(g.delayBudget-g.delayStep, 0)
	g.delayStep = step
	g.delayDeadline = now.Add(step)
	return true
}

// errRebalancing is REBALANCE_IN_PROGRESS with the time left to rejoin.
func errRebalancing(g *Group, now time.Time) error {
	deadline := g.joinDeadline
	if !g.delayDeadline.IsZero() {
		deadline = g.delayDeadline.Add(g.delayBudget)
	}
	left := max(deadline.Sub(now), 0)
	// Built without fmt: every heartbeat during a rebalance gets one.
	return &regroup.Error{
		Code:     regroup.CodeRebalanceInProgress,
		Message:  "group " + strconv.Quote(g.id) + " is rebalancing: rejoin within " + left.String(),
		Metadata: map[string]string{regroup.MetaRebalanceTimeoutMs: strconv.FormatInt(ms(left), 10)},
	}
}

// allJoined reports whether the join barrier is complete: every member has
// rejoined and no pending id holds the barrier (see pendingIDs). Every join
// asks, so the scan resumes after the members it found joined last time
// (joinedHead): a join storm costs linear time, not quadratic. Whatever
// clears a parked join or reorders the members (remove, replaceStatic,
// completeJoin, Abort) starts the scan over.
func (g *Group) allJoined() bool {
	for g.joinedHead < len(g.order) && g.order[g.joinedHead].joinReq != 0 {
		g.joinedHead++
	}
	if g.joinedHead < len(g.order) {
		return false
	}
	return !g.pending.holdBarrier(g.now, g.cfg.PendingMemberTimeout)
}

// maybeCompleteJoin completes the join barrier if everyone has joined, except
// during an empty group's initial delay, which only its timer ends.
func (g *Group) maybeCompleteJoin(now time.Time, out *Output) {
	if g.state == PreparingRebalance && g.delayDeadline.IsZero() && g.allJoined() {
		g.completeJoin(now, out)
	}
}

// completeJoin ends the join phase: it removes dynamic members that did not
// rejoin, elects the leader, bumps the generation, selects the protocol and
// answers every parked JoinGroup.
func (g *Group) completeJoin(now time.Time, out *Output) {
	g.delayDeadline, g.joinDeadline = time.Time{}, time.Time{}
	g.pending.newPhase()
	g.joinedHead = 0 // the joins are answered below
	for _, m := range slices.Clone(g.order) {
		if m.joinReq == 0 && m.instanceID == "" {
			g.remove(now, out, m, "did not rejoin before the rebalance timeout", false,
				regroup.Errorf(regroup.CodeUnknownMemberID, "member %s did not rejoin group %q in time", m.id, g.id))
		}
	}
	if len(g.members) == 0 {
		g.generation++
		g.protocol, g.leader = "", ""
		g.setState(out, Empty)
		g.emptySince = now
		g.seen = map[string]int32{}
		if g.reb != nil {
			g.reb.Generation, g.reb.Members = g.generation, nil
		}
		g.finishRebalance(now, out, 0)
		out.Persist = true
		return
	}
	if g.awaitingJoin() == 0 {
		// Only static members that have not rejoined remain: wait for them
		// for another rebalance timeout (their sessions may end first).
		g.joinDeadline = now.Add(g.rebalanceTimeout())
		return
	}
	if l := g.members[g.leader]; l == nil || l.joinReq == 0 {
		for _, m := range g.order {
			if m.joinReq != 0 {
				g.leader = m.id
				break
			}
		}
	}
	g.generation++
	g.replacements = 0
	g.protocol = g.selectProtocol()
	g.seen = g.subscribedCounts()
	g.setState(out, CompletingRebalance)
	g.syncDeadline = now.Add(g.rebalanceTimeout())
	ids := make([]string, 0, len(g.order))
	for _, m := range g.byID() {
		ids = append(ids, m.id)
	}
	for _, m := range g.order {
		m.token = token(g.generation, 0)
		m.absent = m.joinReq == 0
		m.awaitingSync = !m.absent
		m.isNew = false
		if !m.absent {
			g.refresh(now, m)
		}
	}
	g.reb.Generation = g.generation
	g.reb.Members = ids
	g.reb.JoinCompleted = timestamppb.New(now)
	out.Persist = true
	out.Replies = slices.Grow(out.Replies, len(g.order))
	resps := make([]regroupv1.JoinGroupResponse, len(g.order)) // one allocation for all
	for i, m := range g.order {
		if m.joinReq != 0 {
			g.fillJoinResponse(now, m, &resps[i])
			out.reply(m.joinReq, &resps[i])
			m.joinReq = 0
		}
	}
}

// joinResponse is m's JoinGroup answer for the current generation; the
// leader's carries every member and the partition counts. Whoever sends it
// must have refreshed m (see answerJoin): completeJoin, replaceStatic and
// answerJoin do.
func (g *Group) joinResponse(now time.Time, m *member) *regroupv1.JoinGroupResponse {
	resp := &regroupv1.JoinGroupResponse{}
	g.fillJoinResponse(now, m, resp)
	return resp
}

// fillJoinResponse sets resp, a zero message, to joinResponse(now, m).
func (g *Group) fillJoinResponse(now time.Time, m *member, resp *regroupv1.JoinGroupResponse) {
	window := m.rebalanceTimeout
	if !g.syncDeadline.IsZero() {
		window = max(g.syncDeadline.Sub(now), 0)
	}
	resp.Generation, resp.ProtocolName, resp.LeaderId, resp.MemberId = g.generation, g.protocol, g.leader, m.id
	// Once answered, the member stops repeating its report of lost partitions.
	m.lostCounted = 0
	resp.MemberSecret = m.secret // m's own answer only: the member list below carries none
	resp.RebalanceTimeoutMs, resp.SessionTimeoutMs = ms(window), ms(m.sessionTimeout)
	if m.id != g.leader {
		return
	}
	sorted := g.byID()
	resp.Members = make([]*regroupv1.JoinGroupMember, 0, len(sorted))
	entries := make([]regroupv1.JoinGroupMember, len(sorted)) // one allocation for all
	// What members may hold, built when first needed.
	var held parts
	heldBuilt := false
	for i, o := range sorted {
		sub := g.subscription(o)
		notHeld := false
		switch {
		case o.absent:
			// A static member that did not rejoin: its last subscription is
			// older than what the coordinator knows it may hold (the
			// assignments delivered since), so present that, and the leader
			// keeps its partitions from others as the cooperative rule asks.
			sub = proto.CloneOf(sub)
			sub.OwnedPartitions = o.owned.toProto()
			sub.Generation = o.assignmentGen
		case len(sub.GetOwnedPartitions()) == 0 && o.assigned.count() > 0:
			// Present a member that reports nothing (an eager member, or a
			// restarted static one) with its last assignment, so that sticky
			// assignors give it back; but not the partitions only another
			// member may hold (the assignment may never have reached this
			// one): a claim on a partition the member does not hold must not
			// outrank the claim of a member that does.
			if !heldBuilt {
				held, heldBuilt = g.mayHold(), true
			}
			sub = proto.CloneOf(sub)
			sub.OwnedPartitions = o.assigned.minus(held.minus(o.owned)).toProto()
			sub.Generation = o.assignmentGen
			notHeld = len(sub.OwnedPartitions) > 0
		}
		e := &entries[i]
		e.MemberId, e.GroupInstanceId, e.ClientId, e.Subscription, e.OwnedNotHeld = o.id, o.instanceID, o.clientID, sub, notHeld
		resp.Members = append(resp.Members, e)
	}
	resp.Topics = topicList(g.seen)
}

// mayHold is every partition a member of the group may hold.
func (g *Group) mayHold() parts {
	var held parts
	for _, m := range g.order {
		held = held.union(m.owned)
	}
	return held
}

func topicList(counts map[string]int32) []*regroupv1.Topic {
	names := make([]string, 0, len(counts))
	for t := range counts {
		names = append(names, t)
	}
	sort.Strings(names)
	out := make([]*regroupv1.Topic, 0, len(names))
	for _, t := range names {
		out = append(out, &regroupv1.Topic{Name: t, Partitions: counts[t]})
	}
	return out
}

// memberList formats member ids for messages.
func memberList(ids []string) string { return strings.Join(ids, ",") }
