package group

import (
	"maps"
	"slices"
	"strings"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// parts is a set of partitions: one entry per topic that has partitions,
// sorted by topic, each with its partitions sorted and duplicate-free.
// Entries and their lists are never modified once built, so sets (and the
// messages built from them) may share them.
type parts []topicParts

// topicParts is one topic's partitions in a set.
type topicParts struct {
	topic string
	ps    []int32
}

// partsFromProto builds a set from a message's lists. Lists that are
// already sorted and duplicate-free, by topic (as members and assignors
// send them), are shared with the message, which the group keeps and never
// modifies; others are copied.
func partsFromProto(tps []*regroupv1.TopicPartitions) parts {
	p := make(parts, 0, len(tps))
	for _, tp := range tps {
		ps := tp.GetPartitions()
		if len(ps) == 0 {
			continue
		}
		if len(p) > 0 && tp.GetTopic() <= p[len(p)-1].topic || !strictlyIncreasing(ps) {
			return partsFromLists(tps)
		}
		p = append(p, topicParts{topic: tp.GetTopic(), ps: ps})
	}
	return p
}

// partsFromLists builds a set from lists in any order.
func partsFromLists(tps []*regroupv1.TopicPartitions) parts {
	byTopic := map[string][]int32{}
	for _, tp := range tps {
		if len(tp.GetPartitions()) > 0 {
			byTopic[tp.GetTopic()] = append(byTopic[tp.GetTopic()], tp.GetPartitions()...)
		}
	}
	p := make(parts, 0, len(byTopic))
	for _, t := range slices.Sorted(maps.Keys(byTopic)) {
		ps := byTopic[t]
		slices.Sort(ps)
		p = append(p, topicParts{topic: t, ps: slices.Compact(ps)})
	}
	return p
}

func strictlyIncreasing(ps []int32) bool {
	for i := 1; i < len(ps); i++ {
		if ps[i] <= ps[i-1] {
			return false
		}
	}
	return true
}

// toProto returns the set as messages, by topic. They share the partition
// lists with the set: neither is ever modified.
func (p parts) toProto() []*regroupv1.TopicPartitions {
	if len(p) == 1 {
		// The usual case, in one allocation: every member's assignment of
		// every rebalance.
		b := &struct {
			list regroupv1.TopicPartitions
			out  [1]*regroupv1.TopicPartitions
		}{}
		b.list.Topic, b.list.Partitions = p[0].topic, p[0].ps
		b.out[0] = &b.list
		return b.out[:]
	}
	out := make([]*regroupv1.TopicPartitions, 0, len(p))
	lists := make([]regroupv1.TopicPartitions, len(p)) // one allocation for all
	for i, tp := range p {
		lists[i].Topic, lists[i].Partitions = tp.topic, tp.ps
		out = append(out, &lists[i])
	}
	return out
}

func (p parts) count() int {
	n := 0
	for _, tp := range p {
		n += len(tp.ps)
	}
	return n
}

// get returns the partitions of topic t, or nil.
func (p parts) get(t string) []int32 {
	for _, tp := range p {
		if tp.topic == t {
			return tp.ps
		}
	}
	return nil
}

// merge combines two sorted lists: keep reports, for an element in a only,
// in b only, or in both, whether it belongs to the result.
func merge(a, b []int32, onlyA, onlyB, both bool) []int32 {
	var out []int32
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			if onlyA {
				out = append(out, a[i])
			}
			i++
		case i == len(a) || b[j] < a[i]:
			if onlyB {
				out = append(out, b[j])
			}
			j++
		default:
			if both {
				out = append(out, a[i])
			}
			i++
			j++
		}
	}
	return out
}

// combine merges p and q topic by topic, as merge does partitions.
func (p parts) combine(q parts, onlyP, onlyQ, both bool) parts {
	var out parts
	i, j := 0, 0
	for i < len(p) || j < len(q) {
		c := 0
		switch {
		case j == len(q):
			c = -1
		case i == len(p):
			c = 1
		default:
			c = strings.Compare(p[i].topic, q[j].topic)
		}
		switch {
		case c < 0:
			if onlyP {
				out = append(out, p[i])
			}
			i++
		case c > 0:
			if onlyQ {
				out = append(out, q[j])
			}
			j++
		default:
			if r := merge(p[i].ps, q[j].ps, onlyP, onlyQ, both); len(r) > 0 {
				out = append(out, topicParts{topic: p[i].topic, ps: r})
			}
			i++
			j++
		}
	}
	return out
}

// subset reports whether every partition of p is in q.
func (p parts) subset(q parts) bool {
	for _, tp := range p {
		if !containsAll(q.get(tp.topic), tp.ps) {
			return false
		}
	}
	return true
}

// coveredBy reports whether lists name every partition of p. It may
// report false when they do, if they are not sorted or name a topic twice:
// it only spares building the set of lists when they cover p.
func (p parts) coveredBy(lists []*regroupv1.TopicPartitions) bool {
	covered := 0
	for i, tp := range lists {
		ps := p.get(tp.GetTopic())
		if ps == nil {
			continue
		}
		twice := slices.ContainsFunc(lists[:i], func(o *regroupv1.TopicPartitions) bool { return o.GetTopic() == tp.GetTopic() })
		if twice || !strictlyIncreasing(tp.GetPartitions()) || !containsAll(tp.GetPartitions(), ps) {
			return false
		}
		covered++
	}
	return covered == len(p)
}

// containsAll reports whether sorted list a contains every element of
// sorted list b.
func containsAll(a, b []int32) bool {
	if len(b) > len(a) {
		return false
	}
	i := 0
	for _, x := range b {
		for i < len(a) && a[i] < x {
			i++
		}
		if i == len(a) || a[i] != x {
			return false
		}
		i++
	}
	return true
}

// shareAny reports whether sorted lists a and b have an element in common.
func shareAny(a, b []int32) bool {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case b[j] < a[i]:
			j++
		default:
			return true
		}
	}
	return false
}

// union returns p and q; p or q itself when it contains the other.
func (p parts) union(q parts) parts {
	switch {
	case q.subset(p):
		return p
	case p.subset(q):
		return q
	}
	return p.combine(q, true, true, true)
}

func (p parts) equal(q parts) bool {
	return slices.EqualFunc(p, q, func(a, b topicParts) bool { return a.topic == b.topic && slices.Equal(a.ps, b.ps) })
}

// intersect returns the partitions in both p and q; p itself when q
// contains it.
func (p parts) intersect(q parts) parts {
	if p.subset(q) {
		return p
	}
	return p.combine(q, false, false, true)
}

// minus returns the partitions of p not in q; p itself when they share
// none.
func (p parts) minus(q parts) parts {
	if p.disjoint(q) {
		return p
	}
	return p.combine(q, true, false, false)
}

// disjoint reports whether p and q share no partition.
func (p parts) disjoint(q parts) bool {
	for _, tp := range p {
		if shareAny(tp.ps, q.get(tp.topic)) {
			return false
		}
	}
	return true
}
