package fsm

import (
	"cmp"
	"slices"
	"strings"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// The member keeps the partitions it owns as a list sorted by topic and
// partition, without duplicates: a rebalance compares the assignment with
// it in one merge, and callbacks get sorted lists.

// comparePartitions orders partitions by topic, then partition.
func comparePartitions(a, b Partition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// assignedPartitions returns the partitions of a, sorted and without
// duplicates, each with token tok.
func assignedPartitions(a []*regroupv1.TopicPartitions, tok int64) []Partition {
	n := 0
	for _, t := range a {
		n += len(t.GetPartitions())
	}
	out := make([]Partition, 0, n)
	for _, t := range a {
		for _, p := range t.GetPartitions() {
			out = append(out, Partition{Topic: t.GetTopic(), Partition: p, Token: tok})
		}
	}
	if !slices.IsSortedFunc(out, comparePartitions) {
		slices.SortFunc(out, comparePartitions)
	}
	return slices.CompactFunc(out, func(a, b Partition) bool { return comparePartitions(a, b) == 0 })
}

// diffAssignment returns the partitions of owned that assignment a lacks,
// those of a (with token tok) that owned lacks, and the number of distinct
// partitions in a. An assignment sorted by topic and partition, as the
// coordinator sends it, is compared as it is; another is sorted first.
func diffAssignment(owned []Partition, a []*regroupv1.TopicPartitions, tok int64) (revoked, added []Partition, n int) {
	if !sortedAssignment(a) {
		assigned := assignedPartitions(a, tok)
		revoked, added = diffPartitions(owned, assigned)
		return revoked, added, len(assigned)
	}
	i := 0
	for _, list := range a {
		t := list.GetTopic()
		for i < len(owned) && owned[i].Topic < t {
			revoked = append(revoked, owned[i])
			i++
		}
		for _, p := range list.GetPartitions() {
			n++
			for i < len(owned) && owned[i].Topic == t && owned[i].Partition < p {
				revoked = append(revoked, owned[i])
				i++
			}
			if i < len(owned) && owned[i].Topic == t && owned[i].Partition == p {
				i++
				continue
			}
			added = append(added, Partition{Topic: t, Partition: p, Token: tok})
		}
	}
	return append(revoked, owned[i:]...), added, n
}

// sortedAssignment reports whether a lists its partitions in increasing
// order of topic and partition, each once.
func sortedAssignment(a []*regroupv1.TopicPartitions) bool {
	var last Partition // the last partition seen
	seen := false
	for _, list := range a {
		ps := list.GetPartitions()
		if len(ps) == 0 {
			continue
		}
		t := list.GetTopic()
		if seen && (t < last.Topic || t == last.Topic && ps[0] <= last.Partition) {
			return false
		}
		for j := 1; j < len(ps); j++ {
			if ps[j] <= ps[j-1] {
				return false
			}
		}
		last, seen = Partition{Topic: t, Partition: ps[len(ps)-1]}, true
	}
	return true
}

// diffPartitions returns the partitions of a that b lacks and those of b
// that a lacks; both lists are sorted.
func diffPartitions(a, b []Partition) (onlyA, onlyB []Partition) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		c := 0
		switch {
		case j == len(b):
			c = -1
		case i == len(a):
			c = 1
		default:
			c = comparePartitions(a[i], b[j])
		}
		switch {
		case c < 0:
			onlyA = append(onlyA, a[i])
			i++
		case c > 0:
			onlyB = append(onlyB, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return onlyA, onlyB
}

// withoutPartitions returns the partitions of a that b lacks (compared by
// topic and partition, whatever their tokens).
func withoutPartitions(a, b []Partition) []Partition {
	var out []Partition
	j := 0
	for _, x := range a {
		for j < len(b) && comparePartitions(b[j], x) < 0 {
			j++
		}
		if j < len(b) && comparePartitions(b[j], x) == 0 {
			continue
		}
		out = append(out, x)
	}
	return out
}

// withPartitions returns the sorted union of a and b (a's entry when both
// have a partition).
func withPartitions(a, b []Partition) []Partition {
	if len(b) == 0 {
		return a
	}
	out := make([]Partition, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		c := -1
		switch {
		case i == len(a):
			c = 1
		case j < len(b):
			c = comparePartitions(a[i], b[j])
		}
		if c <= 0 {
			out = append(out, a[i])
			i++
		}
		if c >= 0 {
			if c > 0 {
				out = append(out, b[j])
			}
			j++
		}
	}
	return out
}
