package assignor

import (
	"slices"
	"sort"
	"strings"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// InputFromJoin builds the assignor input from the leader's JoinGroup
// response: one member per entry of resp.Members, sorted by member id, with
// the topics, owned partitions, generation, rack and user data of its
// subscription, the instance id from group_instance_id and NotHeld from
// owned_not_held; the topics and
// the generation from the response. A member without a subscription
// subscribes to nothing and owns nothing (generation -1). The input shares
// slices (partition lists, user data) with resp; neither must be modified
// while the other is in use.
func InputFromJoin(resp *regroupv1.JoinGroupResponse) *Input {
	in := &Input{
		Members:    make([]Member, 0, len(resp.GetMembers())),
		Topics:     make(map[string]int32, len(resp.GetTopics())),
		Generation: resp.GetGeneration(),
	}
	for _, t := range resp.GetTopics() {
		in.Topics[t.GetName()] = t.GetPartitions()
	}
	// Every member's owned lists are carved out of one array.
	n := 0
	for _, jm := range resp.GetMembers() {
		n += len(jm.GetSubscription().GetOwnedPartitions())
	}
	owned := make([]TopicPartitions, 0, n)
	for _, jm := range resp.GetMembers() {
		sub := jm.GetSubscription()
		m := Member{
			ID:         jm.GetMemberId(),
			InstanceID: jm.GetGroupInstanceId(),
			Topics:     sub.GetTopics(),
			Generation: -1,
			Rack:       sub.GetRack(),
			UserData:   sub.GetUserData(),
		}
		if sub != nil {
			m.Generation = sub.GetGeneration()
			m.NotHeld = jm.GetOwnedNotHeld()
		}
		start := len(owned)
		for _, tp := range sub.GetOwnedPartitions() {
			owned = append(owned, TopicPartitions{Topic: tp.GetTopic(), Partitions: tp.GetPartitions()})
		}
		if len(owned) > start {
			m.Owned = owned[start:len(owned):len(owned)]
		}
		in.Members = append(in.Members, m)
	}
	byID := func(a, b Member) int { return strings.Compare(a.ID, b.ID) }
	if !slices.IsSortedFunc(in.Members, byID) { // the coordinator sends them sorted
		slices.SortStableFunc(in.Members, byID)
	}
	return in
}

// Assignments returns the plan as SyncGroup assignments: one per member,
// sorted by member id, each with its topics sorted by name and topics
// without partitions left out. The partition lists are shared with p.
func (p Plan) Assignments() []*regroupv1.MemberAssignment {
	ids := make([]string, 0, len(p))
	lists := 0
	for id, m := range p {
		ids = append(ids, id)
		lists += len(m)
	}
	sort.Strings(ids)
	// The messages are carved out of a few arrays rather than allocated
	// one by one: the leader builds one per member on every rebalance.
	out := make([]*regroupv1.MemberAssignment, 0, len(ids))
	mas := make([]regroupv1.MemberAssignment, len(ids))
	as := make([]regroupv1.Assignment, len(ids))
	tps := make([]regroupv1.TopicPartitions, 0, lists)
	ptrs := make([]*regroupv1.TopicPartitions, 0, lists)
	var topics []string
	for i, id := range ids {
		start := len(ptrs)
		topics = sortedTopics(p[id], topics[:0])
		for _, t := range topics {
			tps = append(tps, regroupv1.TopicPartitions{Topic: t, Partitions: p[id][t]})
			ptrs = append(ptrs, &tps[len(tps)-1])
		}
		as[i].Partitions = ptrs[start:len(ptrs):len(ptrs)]
		mas[i].MemberId, mas[i].Assignment = id, &as[i]
		out = append(out, &mas[i])
	}
	return out
}

// sortedTopics appends the topics of m that have partitions to buf,
// sorted.
func sortedTopics(m map[string][]int32, buf []string) []string {
	for t, parts := range m {
		if len(parts) > 0 {
			buf = append(buf, t)
		}
	}
	sort.Strings(buf)
	return buf
}

// PlanFromAssignments is the inverse of Plan.Assignments: every member id
// gets an entry; partition lists are copied as they are (a topic listed
// twice for one member is merged, in order).
func PlanFromAssignments(as []*regroupv1.MemberAssignment) Plan {
	p := make(Plan, len(as))
	for _, a := range as {
		m := p[a.GetMemberId()]
		if m == nil {
			m = map[string][]int32{}
			p[a.GetMemberId()] = m
		}
		for _, tp := range a.GetAssignment().GetPartitions() {
			m[tp.GetTopic()] = append(m[tp.GetTopic()], tp.GetPartitions()...)
		}
	}
	return p
}
