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

func partsFromProto(tps []*regroupv1.TopicPartitions) parts {
	p := parts{}
	for _, tp := range tps {
		if len(tp.GetPartitions()) == 0 {
			continue
		}
		p[tp.GetTopic()] = append(p[tp.GetTopic()], tp.GetPartitions()...)
	}
	for t, ps := range p {
		ps = slices.Clone(ps)
		slices.Sort(ps)
		p[t] = slices.Compact(ps)
	}
	return p
}

func (p parts) toProto() []*regroupv1.TopicPartitions {
	topics := p.topics()
	out := make([]*regroupv1.TopicPartitions, 0, len(topics))
	for _, t := range topics {
		out = append(out, &regroupv1.TopicPartitions{Topic: t, Partitions: slices.Clone(p[t])})
	}
	return out
}

func (p parts) topics() []string {
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

func (p parts) union(q parts) parts { return p.combine(q, true, true, true) }

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
func (p parts) intersect(q parts) parts { return p.combine(q, false, false, true) }
func (p parts) minus(q parts) parts     { return p.combine(q, true, false, false) }
