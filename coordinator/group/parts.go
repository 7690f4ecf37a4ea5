package group

import (
	"slices"
	"sort"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// parts is a set of partitions: topic -> sorted, duplicate-free partitions.
// Topics with no partitions are absent. Values are never modified in place
// once built, so sets may share slices.
type parts map[string][]int32

// partsFromProto builds a set from a message's lists. Lists that are
// already sorted and duplicate-free, one per topic (as members and
// assignors send them), are shared with the message, which the group keeps
// and never modifies; others are copied.
func partsFromProto(tps []*regroupv1.TopicPartitions) parts {
	p := make(parts, len(tps))
	dup := false
	for _, tp := range tps {
		if len(tp.GetPartitions()) == 0 {
			continue
		}
		_, dup = p[tp.GetTopic()]
		if dup {
			break
		}
		p[tp.GetTopic()] = tp.GetPartitions()
	}
	if dup {
		return partsFromLists(tps)
	}
	for t, ps := range p {
		if !strictlyIncreasing(ps) {
			ps = slices.Clone(ps)
			slices.Sort(ps)
			p[t] = slices.Compact(ps)
		}
	}
	return p
}

// partsFromLists builds a set from lists that may name a topic twice.
func partsFromLists(tps []*regroupv1.TopicPartitions) parts {
	p := parts{}
	for _, tp := range tps {
		if len(tp.GetPartitions()) > 0 {
			p[tp.GetTopic()] = append(p[tp.GetTopic()], tp.GetPartitions()...)
		}
	}
	for t, ps := range p {
		slices.Sort(ps)
		p[t] = slices.Compact(ps)
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
	topics := p.topics()
	out := make([]*regroupv1.TopicPartitions, 0, len(topics))
	lists := make([]regroupv1.TopicPartitions, len(topics)) // one allocation for all
	for i, t := range topics {
		lists[i].Topic, lists[i].Partitions = t, p[t]
		out = append(out, &lists[i])
	}
	return out
}

func (p parts) topics() []string {
	if len(p) == 1 {
		for t := range p {
			return []string{t}
		}
	}
	ts := make([]string, 0, len(p))
	for t := range p {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

func (p parts) count() int {
	n := 0
	for _, ps := range p {
		n += len(ps)
	}
	return n
}

func (p parts) has(topic string, partition int32) bool {
	_, ok := slices.BinarySearch(p[topic], partition)
	return ok
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

func (p parts) combine(q parts, onlyP, onlyQ, both bool) parts {
	out := parts{}
	for t, ps := range p {
		if r := merge(ps, q[t], onlyP, onlyQ, both); len(r) > 0 {
			out[t] = r
		}
	}
	if onlyQ {
		for t, qs := range q {
			if _, done := p[t]; !done && len(qs) > 0 {
				out[t] = qs
			}
		}
	}
	return out
}

// subset reports whether every partition of p is in q.
func (p parts) subset(q parts) bool {
	for t, ps := range p {
		if !containsAll(q[t], ps) {
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
		ps, ok := p[tp.GetTopic()]
		if !ok {
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
	if len(p) != len(q) {
		return false
	}
	for t, ps := range p {
		if !slices.Equal(ps, q[t]) {
			return false
		}
	}
	return true
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
	for t, ps := range p {
		if shareAny(ps, q[t]) {
			return false
		}
	}
	return true
}
