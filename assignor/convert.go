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
		for _, tp := range sub.GetOwnedPartitions() {
			m.Owned = append(m.Owned, TopicPartitions{Topic: tp.GetTopic(), Partitions: tp.GetPartitions()})
		}
		in.Members = append(in.Members, m)
	}
	slices.SortStableFunc(in.Members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return in
}

// Assignments returns the plan as SyncGroup assignments: one per member,
// sorted by member id, each with its topics sorted by name and topics
// without partitions left out. The partition lists are shared with p.
func (p Plan) Assignments() []*regroupv1.MemberAssignment {
	ids := make([]string, 0, len(p))
	for id := range p {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]*regroupv1.MemberAssignment, 0, len(ids))
	for _, id := range ids {
		topics := make([]string, 0, len(p[id]))
		for t, parts := range p[id] {
			if len(parts) > 0 {
				topics = append(topics, t)
			}
		}
		sort.Strings(topics)
		a := &regroupv1.Assignment{Partitions: make([]*regroupv1.TopicPartitions, 0, len(topics))}
		for _, t := range topics {
			a.Partitions = append(a.Partitions, &regroupv1.TopicPartitions{Topic: t, Partitions: p[id][t]})
		}
		out = append(out, &regroupv1.MemberAssignment{MemberId: id, Assignment: a})
	}
	return out
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
