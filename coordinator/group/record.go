package group

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Record returns the group's durable state. Parked requests, session
// deadlines and expired holds are not part of it. A member is taken to own
// its whole assignment plus the partitions it still holds beyond it (only
// those are stored): a SyncGroup answered later can only deliver that
// assignment, so the record stays a safe upper bound without a write per
// delivery. A Dead group's record is a
// tombstone that keeps only its generation and its unexpired holds, so that
// a group created again under the same id continues from it, fencing tokens
// keep growing, and partitions of a member removed without releasing them
// still wait for its lease. The record shares state with the group: encode
// it before the next input.
func (g *Group) Record() *storev1.GroupRecord {
	if g.state == Dead {
		return &storev1.GroupRecord{GroupId: g.id, Generation: g.generation, State: g.state.Proto(), Holds: g.holdRecords(), LastFencingToken: g.lastToken}
	}
	rec := &storev1.GroupRecord{
		GroupId:      g.id,
		Generation:   g.generation,
		ProtocolName: g.protocol,
		LeaderId:     g.leader,
		State:        g.state.Proto(),
		History:      slices.Clone(g.history), // the group drops old entries in place
		Replacements: g.replacements,
		Topics:       topicList(g.seen),

		LastFencingToken: g.lastToken,
	}
	if g.next {
		rec.GroupProtocol, rec.AssignmentEpoch = "next", g.assignEpoch
	}
	if g.state == Empty {
		rec.EmptySince = timestamppb.New(g.emptySince)
	}
	if g.reb != nil {
		rec.RebalanceCause = g.reb.GetCause()
	}
	if g.reb != nil && g.state == Stable {
		// Its answers wait for a lease: kept, without an end (see Restore).
		// A copy: the rebalance in progress changes in place, and the
		// record may be encoded after the group's next step.
		rec.History = append(rec.History, proto.CloneOf(g.reb))
	}
	for _, m := range g.order {
		rec.Members = append(rec.Members, &storev1.MemberRecord{
			MemberId:             m.id,
			GroupInstanceId:      m.instanceID,
			ClientId:             m.clientID,
			ClientHost:           m.clientHost,
			Identity:             m.identity,
			SessionTimeoutMs:     ms(m.sessionTimeout),
			RebalanceTimeoutMs:   ms(m.rebalanceTimeout),
			Protocols:            m.protocols,
			Assignment:           m.assignment,
			AssignmentGeneration: m.assignmentGen,
			FencingToken:         m.token,
			Owned:                m.owned.minus(m.assigned).toProto(),
			AwaitingSync:         m.awaitingSync,
			Absent:               m.absent,
			MemberSecret:         m.secret,
			MemberEpoch:          m.epoch,
			Target:               m.target.toProto(),
			AssignmentRevision:   m.revision,
		})
	}
	rec.Holds = g.holdRecords()
	return rec
}

// holdRecords returns the holds that have not ended.
func (g *Group) holdRecords() []*storev1.HoldRecord {
	var recs []*storev1.HoldRecord
	for _, h := range g.holds {
		if h.until.After(g.now) {
			recs = append(recs, &storev1.HoldRecord{
				MemberId:         h.member,
				Partitions:       h.partitions.toProto(),
				SessionTimeoutMs: ms(h.sessionTimeout),
				Until:            timestamppb.New(h.until),
			})
		}
	}
	return recs
}

// Restore rebuilds a group from its record, as a newly elected coordinator
// does; from a tombstone (a Dead record) it returns an Empty group that
// continues the dead group's generations and keeps its holds. Every member
// gets a full session timeout from now, and so does every hold and lease (the previous coordinator may have extended them until the
// moment it stopped serving). A group stored mid-rebalance resumes it: in
// PreparingRebalance members must rejoin; in CompletingRebalance the leader
// must sync again. A group above the size limit, or one whose subscribed
// topics changed since the record was written, rebalances.
func Restore(rec *storev1.GroupRecord, cfg Config, ids IDSource, registry map[string]int32, now time.Time) (*Group, Output, error) {
	var out Output
	if err := ValidateGroupID(rec.GetGroupId()); err != nil {
		return nil, out, fmt.Errorf("regroup: stored group record: %w", err)
	}
	if err := checkRecord(rec); err != nil {
		return nil, out, fmt.Errorf("regroup: stored group %q: %w", rec.GetGroupId(), err)
	}
	g := New(rec.GetGroupId(), cfg, ids, registry, now)
	g.formed = true // stored: it may have been Stable, and owners may wait
	g.generation = rec.GetGeneration()
	g.protocol = rec.GetProtocolName()
	g.leader = rec.GetLeaderId()
	g.history = rec.GetHistory()
	g.replacements = rec.GetReplacements()
	g.lastToken = rec.GetLastFencingToken()
	switch rec.GetGroupProtocol() {
	case "":
	case "next":
		g.next, g.assignEpoch = true, rec.GetAssignmentEpoch()
	default:
		return nil, out, fmt.Errorf("regroup: stored group %q has unknown group protocol %q", g.id, rec.GetGroupProtocol())
	}
	for _, t := range rec.GetTopics() {
		g.seen[t.GetName()] = t.GetPartitions()
	}
	for _, mr := range rec.GetMembers() {
		if mr.GetMemberId() == "" || g.members[mr.GetMemberId()] != nil {
			return nil, out, fmt.Errorf("regroup: stored group %q has an empty or duplicate member id %q", g.id, mr.GetMemberId())
		}
		m := &member{
			id:               mr.GetMemberId(),
			instanceID:       mr.GetGroupInstanceId(),
			clientID:         mr.GetClientId(),
			clientHost:       mr.GetClientHost(),
			identity:         mr.GetIdentity(),
			sessionTimeout:   time.Duration(mr.GetSessionTimeoutMs()) * time.Millisecond,
			rebalanceTimeout: time.Duration(mr.GetRebalanceTimeoutMs()) * time.Millisecond,
			protocols:        mr.GetProtocols(),
			assignment:       mr.GetAssignment(),
			assignmentGen:    mr.GetAssignmentGeneration(),
			token:            mr.GetFencingToken(),
			owned:            partsFromProto(mr.GetOwned()),
			awaitingSync:     mr.GetAwaitingSync(),
			absent:           mr.GetAbsent(),
			secret:           mr.GetMemberSecret(),
			epoch:            mr.GetMemberEpoch(),
			target:           partsFromProto(mr.GetTarget()),
			revision:         mr.GetAssignmentRevision(),
		}
		if m.sessionTimeout <= 0 || len(m.protocols) == 0 {
			return nil, out, fmt.Errorf("regroup: stored member %q of group %q has no session timeout or no protocols", m.id, g.id)
		}
		if m.assignment == nil {
			m.assignment = &regroupv1.Assignment{}
		}
		m.assigned = partsFromProto(m.assignment.GetPartitions())
		m.owned = m.owned.union(m.assigned)
		g.members[m.id] = m
		g.order = append(g.order, m)
		g.sorted = nil
		g.count(m)
		if m.instanceID != "" {
			g.instances[m.instanceID] = m
		}
		g.refresh(now, m)
	}
	for _, h := range rec.GetHolds() {
		d := time.Duration(h.GetSessionTimeoutMs()) * time.Millisecond
		g.holds = append(g.holds, hold{member: h.GetMemberId(), partitions: partsFromProto(h.GetPartitions()), until: now.Add(d), sessionTimeout: d})
	}
	if len(g.order) > 0 && !g.supportsProtocols(g.order[0].protocols, g.order[0]) {
		return nil, out, fmt.Errorf("regroup: stored group %q: its members share no protocol", g.id)
	}
	if g.leader != "" && g.members[g.leader] == nil {
		return nil, out, fmt.Errorf("regroup: stored group %q names leader %q, which is not a member", g.id, g.leader)
	}
	if g.next && len(g.members) > 0 {
		g.restoreNext(now, &out, rec)
		return g, out, nil
	}
	switch rec.GetState() {
	case regroupv1.GroupState_GROUP_STATE_DEAD:
		// A tombstone: the group starts afresh after its old generation,
		// keeping the holds loaded above.
		if len(g.members) > 0 {
			return nil, out, fmt.Errorf("regroup: stored group %q is Dead but has %d members", g.id, len(g.members))
		}
		g.state, g.leader, g.protocol, g.history = Empty, "", "", nil
	case regroupv1.GroupState_GROUP_STATE_EMPTY:
		if len(g.members) > 0 {
			return nil, out, fmt.Errorf("regroup: stored group %q is Empty but has %d members", g.id, len(g.members))
		}
		g.state = Empty
		if t := rec.GetEmptySince(); t != nil {
			g.emptySince = t.AsTime()
		}
	case regroupv1.GroupState_GROUP_STATE_STABLE:
		// Whether a member synced after the record was written is unknown;
		// one that did not will sync again or let its session end.
		g.state = Stable
		for _, m := range g.order {
			m.awaitingSync = false
		}
		if n := len(g.history); n > 0 && g.history[n-1].GetEnd() == nil {
			// Stored while answers waited for a lease: which of them went
			// out since is unknown, so the rebalance ends here.
			r := proto.CloneOf(g.history[n-1])
			r.End = timestamppb.New(now)
			r.Cause += " (ended by a coordinator failover while answers waited for a lease)"
			g.history[n-1] = r
		}
	case regroupv1.GroupState_GROUP_STATE_COMPLETING_REBALANCE:
		g.state = CompletingRebalance
		g.syncDeadline = now.Add(g.rebalanceTimeout())
		ids := make([]string, 0, len(g.order))
		for _, m := range g.order {
			ids = append(ids, m.id)
		}
		sort.Strings(ids)
		g.reb = &regroupv1.Rebalance{
			CauseKind:  string(CauseFailover),
			Cause:      rec.GetRebalanceCause() + " (resumed by a new coordinator)",
			Start:      timestamppb.New(now),
			Generation: g.generation,
			Members:    ids,
		}
	case regroupv1.GroupState_GROUP_STATE_PREPARING_REBALANCE:
		g.state = Stable
		cause := rec.GetRebalanceCause()
		if cause == "" {
			cause = "a rebalance"
		}
		g.prepareRebalance(now, &out, CauseFailover, cause+" (resumed by a new coordinator)")
	default:
		return nil, out, fmt.Errorf("regroup: stored group %q has unusable state %v", g.id, rec.GetState())
	}
	if g.state != Empty && len(g.members) == 0 {
		return nil, out, fmt.Errorf("regroup: stored group %q has no members in state %v", g.id, g.state)
	}
	if cfg.MaxSize > 0 && len(g.members) > cfg.MaxSize && (g.state == Stable || g.state == CompletingRebalance) {
		g.prepareRebalance(now, &out, CauseGroupTooLarge, fmt.Sprintf("the group has %d members, above the limit of %d", len(g.members), cfg.MaxSize))
	}
	// A topic may have changed while no coordinator served the group, or
	// after the rebalance it caused started and before it was stored.
	g.rebalanceForTopics(now, &out)
	g.recountAssignments()
	return g, out, nil
}

// Summary returns the group's line in ListGroups.
func (g *Group) Summary() *regroupv1.GroupSummary {
	return &regroupv1.GroupSummary{
		GroupId:       g.id,
		State:         g.state.Proto(),
		Generation:    g.generation,
		ProtocolName:  g.protocol,
		Members:       int32(len(g.members)),
		LeaderId:      g.leader,
		GroupProtocol: g.GroupProtocol(),
	}
}

// Describe returns the group as DescribeGroup shows it: a copy that stays
// valid, and unchanged, after the group moves on.
func (g *Group) Describe() *regroupv1.DescribeGroupResponse {
	d := &regroupv1.DescribeGroupResponse{
		GroupId:       g.id,
		State:         g.state.Proto(),
		Generation:    g.generation,
		ProtocolName:  g.protocol,
		LeaderId:      g.leader,
		Rebalances:    slices.Clone(g.history),
		Topics:        topicList(g.subscribedCounts()),
		UnknownTopics: g.UnknownTopics(),
		GroupProtocol: g.GroupProtocol(),
	}
	if g.next {
		d.AssignmentEpoch = g.assignEpoch
	}
	if g.reb != nil {
		d.Rebalances = append(d.Rebalances, g.reb)
	}
	sorted := slices.Clone(g.order)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].id < sorted[j].id })
	for _, m := range sorted {
		names := make([]string, 0, len(m.protocols))
		for _, p := range m.protocols {
			names = append(names, p.GetName())
		}
		d.Members = append(d.Members, &regroupv1.MemberDescription{
			MemberId:           m.id,
			GroupInstanceId:    m.instanceID,
			Static:             m.instanceID != "",
			ClientId:           m.clientID,
			ClientHost:         m.clientHost,
			Identity:           m.identity,
			Protocols:          names,
			Subscription:       g.subscription(m),
			Assignment:         m.assignment,
			SessionDeadline:    timestamppb.New(m.sessionDeadline),
			SessionTimeoutMs:   ms(m.sessionTimeout),
			RebalanceTimeoutMs: ms(m.rebalanceTimeout),
			FencingToken:       m.token,
			Joined:             m.joinReq != 0,
			AwaitingSync:       m.awaitingSync,
		})
		if !m.deliverAt.IsZero() {
			d.Members[len(d.Members)-1].AssignmentWaitsUntil = timestamppb.New(m.deliverAt)
		}
		if g.next {
			md := d.Members[len(d.Members)-1]
			md.MemberEpoch, md.Target, md.Revoking = m.epoch, m.target.toProto(), m.owned.minus(m.assigned).toProto()
		}
	}
	d.PendingMemberIds = g.pending.sorted()
	// The caller may read the answer after the group changed: give it a
	// copy that shares nothing with the group.
	return proto.CloneOf(d)
}

// checkRecord checks what Restore cannot repair in a stored record: a
// record that breaks these rules was not written by a coordinator (or was
// damaged), and serving it could give a partition two owners.
func checkRecord(rec *storev1.GroupRecord) error {
	if rec.GetGeneration() < 0 || rec.GetReplacements() < 0 {
		return fmt.Errorf("negative generation %d or replacement count %d", rec.GetGeneration(), rec.GetReplacements())
	}
	instances := map[string]string{}
	type claim struct {
		gen  int32
		part string
	}
	owners := map[claim]string{}
	for _, mr := range rec.GetMembers() {
		if inst := mr.GetGroupInstanceId(); inst != "" {
			if other, dup := instances[inst]; dup {
				return fmt.Errorf("members %q and %q share instance id %q", other, mr.GetMemberId(), inst)
			}
			instances[inst] = mr.GetMemberId()
		}
		for _, tp := range mr.GetAssignment().GetPartitions() {
			if tp.GetTopic() == "" {
				return fmt.Errorf("member %q is assigned partitions of a topic with no name", mr.GetMemberId())
			}
			for _, p := range tp.GetPartitions() {
				if p < 0 {
					return fmt.Errorf("member %q is assigned partition %d of topic %q", mr.GetMemberId(), p, tp.GetTopic())
				}
				c := claim{mr.GetAssignmentGeneration(), fmt.Sprintf("%s/%d", tp.GetTopic(), p)}
				if other, dup := owners[c]; dup {
					return fmt.Errorf("partition %s is assigned to both %q and %q in generation %d", c.part, other, mr.GetMemberId(), c.gen)
				}
				owners[c] = mr.GetMemberId()
			}
		}
	}
	for _, h := range rec.GetHolds() {
		if h.GetMemberId() == "" {
			return fmt.Errorf("a hold names no member")
		}
	}
	return nil
}
