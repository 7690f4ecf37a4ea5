package group

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/regroup-dev/regroup"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Sync handles a SyncGroup request. A follower's reply comes once the
// leader's assignment has been accepted; a member whose new partitions are
// still held by someone else is answered when that hold ends.
func (g *Group) Sync(now time.Time, req ReqID, c Caller, r *regroupv1.SyncGroupRequest) Output {
	g.now = now
	var out Output
	if err := g.cfg.validateSync(r); err != nil {
		out.fail(req, err)
		return out
	}
	switch g.state {
	case Dead:
		out.fail(req, regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "group %q was deleted", g.id))
		return out
	case Empty:
		out.fail(req, regroup.Errorf(regroup.CodeUnknownMemberID, "group %q has no members", g.id))
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
	if r.GetProtocolName() != "" && r.GetProtocolName() != g.protocol {
		out.fail(req, regroup.Errorf(regroup.CodeInconsistentGroupProtocol, "protocol %q is not the group's protocol %q", r.GetProtocolName(), g.protocol))
		return out
	}
	switch g.state {
	case PreparingRebalance:
		out.fail(req, errRebalancing(g, now))
	case CompletingRebalance:
		g.parkSync(&out, m, req)
		if m.id != g.leader {
			return out
		}
		if refusal := g.checkPlan(now, r.GetAssignments()); refusal != nil {
			m.syncReq = 0
			out.fail(req, refusal)
			out.event(Event{Kind: EventAssignmentRefused, Member: m.id, Detail: refusal.Message})
			g.prepareRebalance(now, &out, CauseAssignmentRefused, "assignment refused: "+refusal.Message)
			return out
		}
		g.acceptPlan(now, &out, r.GetAssignments())
	case Stable:
		g.parkSync(&out, m, req)
		g.deliver(now, &out, m)
		g.finishSync(now, &out)
	}
	return out
}

func (g *Group) parkSync(out *Output, m *member, req ReqID) {
	if m.syncReq != 0 {
		out.fail(m.syncReq, regroup.Errorf(regroup.CodeRebalanceInProgress, "superseded by a newer SyncGroup from member %s", m.id))
	}
	m.syncReq = req
	m.awaitingSync = false
}

// refuse builds the INVALID_ASSIGNMENT error for a partition.
func refuse(topic string, partition int32, members []string, format string, args ...any) *regroup.Error {
	e := regroup.Errorf(regroup.CodeInvalidAssignment, format, args...)
	if topic != "" {
		e = e.With(regroup.MetaTopic, topic)
	}
	if partition >= 0 {
		e = e.With(regroup.MetaPartition, strconv.Itoa(int(partition)))
	}
	if len(members) > 0 {
		e = e.With(regroup.MetaMembers, memberList(members))
	}
	return e
}

// checkPlan validates the leader's assignment: every named member is in the
// group, named once; every partition exists in a topic the member subscribes
// to and goes to one member only; and no partition goes to a member other
// than a rejoined member that still reports owning it.
func (g *Group) checkPlan(now time.Time, plan []*regroupv1.MemberAssignment) *regroup.Error {
	if err := g.checkPlanBudget(plan); err != nil {
		return err
	}
	// owner[t][p] numbers the plan entry that gives t/p away: i+1 for
	// plan[i], 0 for none.
	owner := map[string][]int32{}
	named := map[string]int32{} // member id -> its plan entry's number
	for i, a := range plan {
		m := g.members[a.GetMemberId()]
		if m == nil {
			return refuse("", -1, []string{a.GetMemberId()}, "the assignment names %s, which is not a member of the generation", a.GetMemberId())
		}
		if named[m.id] != 0 {
			return refuse("", -1, []string{m.id}, "the assignment names member %s twice", m.id)
		}
		named[m.id] = int32(i + 1)
		for _, tp := range a.GetAssignment().GetPartitions() {
			t := tp.GetTopic()
			n, ok := g.seen[t]
			if !ok {
				return refuse(t, -1, []string{m.id}, "topic %q given to %s does not exist or no member subscribes to it", t, m.id)
			}
			if !g.subscribes(m, t) {
				return refuse(t, -1, []string{m.id}, "topic %q given to %s, which does not subscribe to it", t, m.id)
			}
			owners := owner[t]
			if owners == nil {
				owners = make([]int32, n)
				owner[t] = owners
			}
			for _, p := range tp.GetPartitions() {
				if p >= n {
					return refuse(t, p, []string{m.id}, "partition %s/%d given to %s does not exist (the topic has %d)", t, p, m.id, n)
				}
				if prev := owners[p]; prev != 0 {
					o := plan[prev-1].GetMemberId()
					return refuse(t, p, []string{o, m.id}, "partition %s/%d given to both %s and %s", t, p, o, m.id)
				}
				owners[p] = int32(i + 1)
			}
		}
	}
	for _, y := range g.order {
		if y.absent {
			continue
		}
		self := named[y.id]
		for _, tp := range y.owned {
			t, owners := tp.topic, owner[tp.topic]
			for _, p := range tp.ps {
				if k := ownerAt(owners, p); k != 0 && k != self {
					o := plan[k-1].GetMemberId()
					return refuse(t, p, []string{o, y.id},
						"partition %s/%d given to %s while %s still owns it (cooperative rule: revoke first, reassign in the next round)", t, p, o, y.id)
				}
			}
		}
	}
	return nil
}

// ownerAt returns owners[p], or 0 if p is out of range.
func ownerAt(owners []int32, p int32) int32 {
	if int(p) < len(owners) {
		return owners[p]
	}
	return 0
}

// acceptPlan stores the leader's assignment, moves the group to Stable and
// delivers every parked SyncGroup it can.
func (g *Group) acceptPlan(now time.Time, out *Output, plan []*regroupv1.MemberAssignment) {
	byMember := make(map[string]*regroupv1.Assignment, len(plan))
	for _, a := range plan {
		byMember[a.GetMemberId()] = a.GetAssignment()
	}
	moved, unassigned := g.countMoves(byMember)
	unowned := unassigned.count()
	stored := make([]regroupv1.Assignment, len(g.order)) // one allocation for all
	for i, m := range g.order {
		a := byMember[m.id]
		m.assigned = partsFromProto(a.GetPartitions())
		stored[i].Partitions, stored[i].UserData = m.assigned.toProto(), a.GetUserData()
		m.assignment = &stored[i]
		m.assignmentGen = g.generation
	}
	g.recountAssignments()
	g.held = nil
	g.unowned = unowned
	g.setState(out, Stable)
	out.Persist = true
	if g.reb != nil {
		g.reb.AssignmentAccepted = timestamppb.New(now)
		g.reb.PartitionsMoved += int32(moved) // a round whose answers waited may have come first
	}
	out.Replies = slices.Grow(out.Replies, len(g.order))
	resps := make([]regroupv1.SyncGroupResponse, len(g.order)) // one allocation for all
	for i, m := range g.order {
		switch {
		case m.syncReq != 0:
			g.deliverInto(now, out, m, &resps[i])
		case m.awaitingSync:
			// Its SyncGroup is still to come: if it will wait, the
			// rebalance is not done until it is answered.
			if until := g.heldIndex(now).until(m.assigned); until.After(now) {
				g.wait(m, until)
			}
		}
	}
	g.finishSync(now, out)
	g.unassigned = unassigned
	g.checkStranded(now, out)
}

// finishSync closes the rebalance once its assignment is accepted and no
// member's answer waits for the lease of another member that may still
// hold its partitions: until then the rebalance is in progress, since the
// members it waits for work on none of their new partitions.
func (g *Group) finishSync(now time.Time, out *Output) {
	if g.state == Stable && g.reb != nil && len(g.waiters()) == 0 {
		g.finishRebalance(now, out, g.unowned)
	}
}

// checkStranded starts the next round itself when the current assignment
// leaves partitions without an owner that no member will release: a
// cooperative assignor withheld them from a member presented with its last
// assignment (a restarted static member, or an eager one) that does not
// actually hold them, so nobody revokes them and rejoins. Partitions a
// member holds are left to it (it rejoins once it revoked them, or its
// leaving or expiry rebalances); partitions only a hold covers (a removed
// member's lease) are checked again when the hold ends. The follow-up
// happens once per distinct set, since an assignor may leave partitions out
// on purpose: the same set twice in a row starts no more rounds.
func (g *Group) checkStranded(now time.Time, out *Output) {
	g.strandCheck = time.Time{}
	stranded := g.unassigned
	for _, m := range g.order {
		stranded = stranded.minus(m.owned)
	}
	for _, h := range g.holds {
		if !h.until.After(now) || h.partitions.intersect(stranded).count() == 0 {
			continue
		}
		stranded = stranded.minus(h.partitions)
		if g.strandCheck.IsZero() || h.until.Before(g.strandCheck) {
			g.strandCheck = h.until
		}
	}
	n := stranded.count()
	if n == 0 {
		g.lastStranded = nil
		return
	}
	if stranded.equal(g.lastStranded) {
		return // the round started for these left them out too
	}
	g.lastStranded = stranded
	g.prepareRebalance(now, out, CauseFollowUp, fmt.Sprintf("the assignment left %d partitions that no member holds without an owner", n))
}

// recheckStranded has a Stable group look for stranded partitions at its
// next tick: a member just gave up partitions the current assignment left
// without an owner (a restarted process that never held them reports
// nothing, and, having nothing to revoke, never rejoins by itself).
func (g *Group) recheckStranded(now time.Time) {
	if g.state == Stable && g.unassigned.count() > 0 {
		g.strandCheck = now
		g.lastStranded = nil
	}
}

// countMoves returns how many partitions the plan gives to a member other
// than the one that had them last, and how many it leaves unowned. It also
// remembers the partitions the plan takes away without giving them to
// anyone (a cooperative first round), so that the next round counts them.
func (g *Group) countMoves(plan map[string]*regroupv1.Assignment) (moved int, unassigned parts) {
	// prev[t][p] numbers the last owner of t/p: names[k-1] for k, none
	// for 0.
	prev := map[string][]int32{}
	var names []string
	note := func(owner string, ps parts) {
		names = append(names, owner)
		k := int32(len(names))
		for _, tp := range ps {
			n := g.seen[tp.topic]
			owners := prev[tp.topic]
			if owners == nil && n > 0 {
				owners = make([]int32, n)
				prev[tp.topic] = owners
			}
			for _, p := range tp.ps {
				if p < n {
					owners[p] = k
				}
			}
		}
	}
	for _, op := range g.inTransit {
		note(op.owner, op.parts)
	}
	for _, op := range g.departed {
		note(op.owner, op.parts)
	}
	for _, m := range g.order {
		note(m.key(), m.assigned)
	}
	assigned := map[string][]bool{}
	for _, m := range g.order {
		key := m.key()
		for _, tp := range plan[m.id].GetPartitions() {
			t := tp.GetTopic()
			done := assigned[t]
			if done == nil {
				done = make([]bool, g.seen[t])
				assigned[t] = done
			}
			owners := prev[t]
			for _, p := range tp.GetPartitions() {
				done[p] = true
				if k := ownerAt(owners, p); k != 0 && names[k-1] != key {
					moved++
				}
			}
		}
	}
	transit := map[string]parts{}
	unassigned = parts{}
	for _, t := range slices.Sorted(maps.Keys(g.seen)) {
		done, owners := assigned[t], prev[t]
		var left []int32
		taken := map[string][]int32{}
		for p := range g.seen[t] {
			if int(p) < len(done) && done[p] {
				continue
			}
			left = append(left, p)
			if k := ownerAt(owners, p); k != 0 {
				taken[names[k-1]] = append(taken[names[k-1]], p)
			}
		}
		if len(left) > 0 {
			unassigned = append(unassigned, topicParts{topic: t, ps: left})
		}
		for o, ps := range taken {
			transit[o] = append(transit[o], topicParts{topic: t, ps: ps})
		}
	}
	g.inTransit, g.departed = nil, nil
	owners := make([]string, 0, len(transit))
	for o := range transit {
		owners = append(owners, o)
	}
	slices.Sort(owners)
	for _, o := range owners {
		g.inTransit = append(g.inTransit, ownerParts{owner: o, parts: transit[o]})
	}
	return moved, unassigned
}

// deliver answers m's parked SyncGroup with its assignment, unless another
// member may still hold one of its partitions (see heldIndex): then it waits
// until that member's lease ends.
func (g *Group) deliver(now time.Time, out *Output, m *member) {
	g.deliverInto(now, out, m, nil)
}

// deliverInto is deliver answering with resp, a zero message, or a new one
// if resp is nil. It looks the index up on every call: the previous
// delivery may have extended a lease it counts (and so invalidated it).
func (g *Group) deliverInto(now time.Time, out *Output, m *member, resp *regroupv1.SyncGroupResponse) {
	if until := g.heldIndex(now).until(m.assigned); until.After(now) {
		g.wait(m, until)
		return
	}
	m.deliverAt = time.Time{}
	m.owned = m.owned.union(m.assigned)
	g.refresh(now, m)
	if resp == nil {
		resp = &regroupv1.SyncGroupResponse{}
	}
	resp.ProtocolName, resp.Assignment, resp.FencingToken, resp.SessionTimeoutMs = g.protocol, m.assignment, m.token, ms(m.sessionTimeout)
	resp.UnknownTopics = g.unknownTopics(m)
	out.reply(m.syncReq, resp)
	m.syncReq = 0
}

// wait defers m's delivery until until. The group lists the members whose
// delivery waits, so that NextDeadline and Tick need not scan every member;
// the list may still name members that no longer wait (see waiters).
func (g *Group) wait(m *member, until time.Time) {
	m.deliverAt = until
	if !m.waitListed {
		m.waitListed = true
		g.waiting = append(g.waiting, m)
	}
}

// waiters returns the list of members whose delivery may wait, after
// dropping those that no longer wait (delivered, or no longer members): a
// member with a parked SyncGroup and a deliverAt is always in it.
func (g *Group) waiters() []*member {
	g.waiting = slices.DeleteFunc(g.waiting, func(m *member) bool {
		gone := m.deliverAt.IsZero() || g.members[m.id] != m
		m.waitListed = !gone
		return gone
	})
	return g.waiting
}

// Waiting returns how many partitions are assigned to members whose
// SyncGroup answer waits, or will wait, for another member's lease to end
// (a member removed without releasing them): nobody works on them
// meanwhile.
func (g *Group) Waiting() int {
	n := 0
	for _, m := range g.waiters() {
		n += m.assigned.minus(m.owned).count()
	}
	return n
}

// heldIndex maps topic -> partition -> the latest end of a lease under which
// someone other than the partition's assignee may still hold it: a removed
// or replaced member (a hold), or a member that holds partitions the current
// assignment gives to others (one that has not rejoined). Leases of members
// that did rejoin do not matter: the leader cannot give their partitions to
// others (checkPlan).
type heldIndex map[string]map[int32]time.Time

// heldIndex returns the index, cached until holds, reported ownership,
// membership or the assignment change. Deliveries leave it valid: they add
// a member's own assignment to what it owns. A refresh that extends the
// lease of a member the index counts (marked inHeld) extends it in the
// index too. Ends in the past are harmless.
func (g *Group) heldIndex(now time.Time) heldIndex {
	if g.held != nil {
		return g.held
	}
	g.holds = slices.DeleteFunc(g.holds, func(h hold) bool { return !h.until.After(now) })
	idx := heldIndex{}
	g.held = idx
	for _, h := range g.holds {
		idx.raise(h.partitions, h.until)
	}
	for _, y := range g.order {
		// Marked whether or not its lease has ended: a refresh may revive it.
		y.inHeld, y.beyond = false, nil
		if y.owned.count() > 0 && !y.owned.subset(y.assigned) {
			y.inHeld, y.beyond = true, y.owned.minus(y.assigned)
			if y.leaseUntil.After(now) {
				idx.raise(y.beyond, y.leaseUntil)
			}
		}
	}
	return idx
}

// raise makes until the end of the holds on ps that end earlier.
func (idx heldIndex) raise(ps parts, until time.Time) {
	for _, tp := range ps {
		held := idx[tp.topic]
		if held == nil {
			held = map[int32]time.Time{}
			idx[tp.topic] = held
		}
		for _, p := range tp.ps {
			if until.After(held[p]) {
				held[p] = until
			}
		}
	}
}

// until returns the latest hold on any of ps, or the zero time.
func (idx heldIndex) until(ps parts) time.Time {
	var until time.Time
	for _, tp := range ps {
		held := idx[tp.topic]
		if held == nil {
			continue
		}
		for _, p := range tp.ps {
			if u, ok := held[p]; ok && u.After(until) {
				until = u
			}
		}
	}
	return until
}

// finishRebalance closes the rebalance in progress into the history.
func (g *Group) finishRebalance(now time.Time, out *Output, unowned int) {
	if g.reb == nil {
		return
	}
	g.reb.End = timestamppb.New(now)
	g.reb.PartitionsRevoked = int32(g.released)
	g.addHistory(g.reb)
	out.Persist = true
	out.event(Event{Kind: EventRebalanceDone, Rebalance: g.reb, Unowned: unowned})
	g.reb, g.released = nil, 0
}

func (g *Group) addHistory(r *regroupv1.Rebalance) {
	g.history = append(g.history, r)
	if over := len(g.history) - g.cfg.HistoryLimit; over > 0 {
		g.history = slices.Delete(g.history, 0, over)
	}
}
