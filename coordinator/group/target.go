package group

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/regroup-dev/regroup/assignor"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// forever is the end of a claim that only its holder's report or removal
// ends: a live member's.
var forever = time.Unix(1<<62, 0)

func nowStamp(now time.Time) *timestamppb.Timestamp { return timestamppb.New(now) }

// bumpEpoch starts a new group epoch of a next-generation group: the
// target is computed again, at once unless the last computation was less
// than an AssignmentInterval ago.
func (g *Group) bumpEpoch(now time.Time, out *Output, kind Cause, cause string) {
	g.generation++
	out.Persist = true
	if g.reb == nil {
		g.reb = &regroupv1.Rebalance{Cause: cause, CauseKind: string(kind), Start: nowStamp(now)}
		out.event(Event{Kind: EventRebalanceStarted, Cause: kind, Detail: cause})
	} else if len(g.reb.Cause) < 1024 {
		g.reb.Cause += "; then " + cause
	}
	switch {
	case !g.assignAt.IsZero():
	case g.state == Empty && g.cfg.InitialRebalanceDelay > 0:
		// An empty group's first target waits for more members, as a
		// classic group's first barrier does: a group that forms is
		// assigned once, not once per arrival.
		g.startDelay(now)
		g.assignAt = g.delayDeadline
	default:
		g.assignAt = now
		if next := g.lastAssign.Add(g.cfg.AssignmentInterval); next.After(now) {
			g.assignAt = next
		}
	}
}

// settle finishes a step of a next-generation group: it computes the
// target if due, gives waiting members what was released, answers the
// calls that are due and updates the state.
func (g *Group) settle(now time.Time, out *Output) {
	if !g.assignAt.IsZero() && !now.Before(g.assignAt) {
		if !g.delayDeadline.IsZero() && g.extendDelay(now) {
			g.assignAt = g.delayDeadline // members keep arriving
		} else {
			g.delayDeadline = time.Time{}
			g.assign(now, out)
		}
	}
	if g.releases || (!g.holdCheck.IsZero() && !now.Before(g.holdCheck)) {
		g.releases = false
		g.grantAwaiting(now, out)
	}
	g.answerCalls(now, out)
	g.updateState(now, out)
}

// assign computes the target assignment with the group's assignor; each
// member's previous target is its claim, so that sticky assignors keep
// it. Then every member reconciles with it.
func (g *Group) assign(now time.Time, out *Output) {
	g.assignAt, g.lastAssign = time.Time{}, now
	counts := g.subscribedCounts()
	in := &assignor.Input{Topics: counts, Generation: g.generation}
	for _, m := range g.byID() {
		in.Members = append(in.Members, assignor.Member{
			ID: m.id, InstanceID: m.instanceID, Topics: g.subscription(m).GetTopics(),
			Owned: m.target.forAssignor(), Generation: m.epoch, NotHeld: true,
		})
	}
	a, err := assignor.Lookup(g.protocol)
	var plan assignor.Plan
	if err == nil {
		plan, err = a.Assign(in)
	}
	if err != nil {
		// Built-in assignors refuse only malformed input, which the group
		// never builds: keep the previous target.
		out.event(Event{Kind: EventAssignmentRefused, Detail: fmt.Sprintf("the server-side assignor %s failed: %v", g.protocol, err)})
		return
	}
	// Moves count from the last owner: a member's target, or the
	// assignment of one removed since (remove lists it in departed).
	moved := 0
	prev := map[string]map[int32]string{}
	note := func(owner string, ps parts) {
		for _, tp := range ps {
			if prev[tp.topic] == nil {
				prev[tp.topic] = map[int32]string{}
			}
			for _, p := range tp.ps {
				prev[tp.topic][p] = owner
			}
		}
	}
	for _, d := range g.departed {
		note(d.owner, d.parts)
	}
	g.departed = nil
	for _, m := range g.order {
		note(m.key(), m.target)
	}
	for _, m := range g.order {
		target := partsFromPlan(plan[m.id])
		for _, tp := range target {
			for _, p := range tp.ps {
				if was, ok := prev[tp.topic][p]; ok && was != m.key() {
					moved++
				}
			}
		}
		m.target = target
	}
	g.assignEpoch = g.generation
	g.seen = counts
	out.Persist = true
	if g.reb != nil {
		g.reb.Generation = g.generation
		g.reb.JoinCompleted = nowStamp(now)
		g.reb.PartitionsMoved += int32(moved)
		g.reb.Members = g.reb.Members[:0]
		for _, m := range g.byID() {
			g.reb.Members = append(g.reb.Members, m.id)
		}
	}
	g.unsettled = 0
	for _, m := range g.order {
		m.settled = false
		g.unsettled++
		g.reconcileMember(now, out, m)
	}
	g.recountAssignments()
}

// partsFromPlan turns one member's part of an assignor's plan into a set.
func partsFromPlan(topics map[string][]int32) parts {
	p := make(parts, 0, len(topics))
	for _, t := range slices.Sorted(maps.Keys(topics)) {
		if len(topics[t]) > 0 {
			p = append(p, topicParts{topic: t, ps: topics[t]})
		}
	}
	return p
}

// forAssignor returns the set as an assignor's lists.
func (p parts) forAssignor() []assignor.TopicPartitions {
	out := make([]assignor.TopicPartitions, 0, len(p))
	for _, tp := range p {
		out = append(out, assignor.TopicPartitions{Topic: tp.topic, Partitions: tp.ps})
	}
	return out
}

// reconcileMember moves m towards its target: it is told to give up what
// is not in its target; once it reports holding nothing beyond its target
// it moves to the target's epoch and is given what of its target nobody
// else may hold. What it is still owed, it gets when released.
func (g *Group) reconcileMember(now time.Time, out *Output, m *member) {
	if m.removed {
		return
	}
	if m.absent {
		g.note(m) // its place waits for its restart: nothing to converge
		return
	}
	if keep := m.assigned.intersect(m.target); !keep.equal(m.assigned) {
		m.assigned = keep
		g.setAssignment(m)
		out.Persist = true
		g.due(m)
	}
	if !m.owned.subset(m.target) {
		if m.revokeBy.IsZero() {
			m.revokeBy = now.Add(m.rebalanceTimeout)
			g.schedule(m)
		}
		g.note(m)
		return
	}
	m.revokeBy = time.Time{}
	if m.epoch != g.assignEpoch {
		m.epoch = g.assignEpoch
		m.assignmentGen = m.epoch
		out.Persist = true
		g.due(m)
	}
	if owed := m.target.minus(m.assigned); owed.count() > 0 {
		// What it still holds of its target is its own; the rest only if
		// nobody else may hold it.
		free, next := g.claimIndex(now).split(owed.minus(m.owned), now)
		if add := owed.intersect(m.owned).union(free); add.count() > 0 {
			m.assigned = m.assigned.union(add)
			m.owned = m.owned.union(add)
			m.unacked = m.unacked.union(add)
			g.lastToken = max(g.lastToken+1, token(g.generation, 0))
			m.token = g.lastToken
			g.setAssignment(m)
			if g.claims != nil {
				g.claims.raise(add, forever)
			}
			out.Persist = true
			g.due(m)
		}
		if !m.target.subset(m.assigned) {
			g.await(m)
			if !next.IsZero() && (g.holdCheck.IsZero() || next.Before(g.holdCheck)) {
				g.holdCheck = next
			}
		}
	}
	g.note(m)
}

// setAssignment makes a new revision of m's assignment, from its set (the
// footprint counts assignments again at each target: see assign).
func (g *Group) setAssignment(m *member) {
	m.assignment = &regroupv1.Assignment{Partitions: m.assigned.toProto()}
	m.revision++
}

// await lists m among the members owed partitions that others hold.
func (g *Group) await(m *member) {
	if !m.awaitListed {
		m.awaitListed = true
		g.awaiting = append(g.awaiting, m)
	}
}

// grantAwaiting gives the members owed partitions what has been released
// since, or whose holds ended.
func (g *Group) grantAwaiting(now time.Time, out *Output) {
	g.holdCheck = time.Time{}
	list := g.awaiting
	g.awaiting = nil
	for _, m := range list {
		m.awaitListed = false
	}
	for _, m := range list {
		if !m.removed && !m.target.subset(m.assigned) {
			g.reconcileMember(now, out, m)
		}
	}
}

// claimIndex returns, per partition, until when someone may hold it: the
// members' owned partitions until they report releasing them (forever),
// and the holds of removed members until their leases end. It is cached
// until a release, a removal or a new hold.
func (g *Group) claimIndex(now time.Time) heldIndex {
	if g.claims != nil {
		return g.claims
	}
	g.holds = slices.DeleteFunc(g.holds, func(h hold) bool { return !h.until.After(now) })
	idx := heldIndex{}
	for _, h := range g.holds {
		idx.raise(h.partitions, h.until)
	}
	for _, y := range g.order {
		idx.raise(y.owned, forever)
	}
	g.claims = idx
	return idx
}

// split returns the partitions of ps that nobody may hold at now, and the
// earliest time a hold on one of the others ends (zero if none will).
func (idx heldIndex) split(ps parts, now time.Time) (free parts, next time.Time) {
	for _, tp := range ps {
		held := idx[tp.topic]
		var f []int32
		for _, p := range tp.ps {
			until, ok := held[p]
			switch {
			case !ok || !until.After(now):
				f = append(f, p)
			case until != forever && (next.IsZero() || until.Before(next)):
				next = until
			}
		}
		if len(f) > 0 {
			free = append(free, topicParts{topic: tp.topic, ps: f})
		}
	}
	return free, next
}

// note keeps count of the members that have not converged: at the
// target's epoch, given all of their target and holding nothing else.
func (g *Group) note(m *member) {
	settled := m.absent || (m.epoch == g.assignEpoch && m.assigned.equal(m.target) && m.owned.equal(m.assigned))
	if settled != m.settled {
		m.settled = settled
		if settled {
			g.unsettled--
		} else {
			g.unsettled++
		}
	}
}

// updateState sets a next-generation group's state: Empty without
// members, PreparingRebalance while its target is to be computed,
// CompletingRebalance while members converge to it, Stable once all have;
// the rebalance in progress ends then.
func (g *Group) updateState(now time.Time, out *Output) {
	switch {
	case len(g.members) == 0:
		if g.state != Empty {
			g.setState(out, Empty)
			g.emptySince = now
			g.assignAt = time.Time{}
			g.assignEpoch = g.generation
			if g.reb != nil {
				g.reb.Generation, g.reb.Members = g.generation, nil
			}
			g.finishRebalance(now, out, 0)
			out.Persist = true
		}
	case g.assignEpoch != g.generation:
		g.setState(out, PreparingRebalance)
	case g.unsettled > 0:
		g.setState(out, CompletingRebalance)
	default:
		g.setState(out, Stable)
		if g.reb != nil {
			g.reb.AssignmentAccepted = g.reb.GetJoinCompleted()
			g.finishRebalance(now, out, g.unownedNext())
		}
	}
}

// unownedNext counts the partitions of subscribed topics that no member's
// target has.
func (g *Group) unownedNext() int {
	n := 0
	for _, c := range g.seen {
		n += int(c)
	}
	for _, m := range g.order {
		n -= m.target.count()
	}
	return max(n, 0)
}

// tickNext fires a next-generation group's timers: sessions and
// revocation deadlines, the target's computation, the end of holds, and
// an Empty group's retention.
func (g *Group) tickNext(now time.Time, out *Output) {
	for _, m := range g.dueSessions(now) {
		switch {
		case m.removed:
		case !m.sessionDeadline.After(now):
			g.removeNext(now, out, m, CauseMemberExpired, "expired: its session ended", false,
				regroupUnknown(m.id, g.id, "its session ended"))
		case !m.revokeBy.IsZero() && !m.revokeBy.After(now):
			g.removeNext(now, out, m, CauseMemberRemoved, "did not release its revoked partitions within its rebalance timeout", false,
				regroupFenced(m.id, g.id, "it did not release its revoked partitions within its rebalance timeout"))
		default:
			g.schedule(m)
		}
	}
	if g.state == Empty && !now.Before(g.emptySince.Add(g.cfg.EmptyRetention)) {
		g.setState(out, Dead)
		out.Delete = true
		return
	}
	g.settle(now, out)
}

// restoreNext resumes a next-generation group a new coordinator loaded:
// every member keeps its epoch, target and assignment and has a full
// session (Restore refreshed them); a rebalance in progress resumes, and a
// target that was due is computed.
func (g *Group) restoreNext(now time.Time, out *Output, rec *storev1.GroupRecord) {
	g.state = Stable
	if rec.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE {
		g.state = CompletingRebalance
	}
	var ids []string
	for _, m := range g.byID() {
		// Whether the member saw its last grants is not stored: its
		// reports release nothing of its assignment until it names the
		// revision it has.
		m.unacked = m.assigned
		m.settled = true // not counted yet: see addNext
		g.note(m)
		ids = append(ids, m.id)
	}
	if cause := rec.GetRebalanceCause(); cause != "" {
		g.reb = &regroupv1.Rebalance{CauseKind: string(CauseFailover), Cause: cause + " (resumed by a new coordinator)", Start: nowStamp(now), Generation: g.generation, Members: ids}
	}
	if g.assignEpoch != g.generation {
		g.assignAt = now
	}
	g.recountAssignments()
	// A topic may have changed while no coordinator served the group.
	g.rebalanceForTopics(now, out)
	g.settle(now, out)
}
