package group

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// elems lists a set's partitions as "topic/partition", sorted.
func (p parts) elems() []string {
	var out []string
	for _, tp := range p {
		for _, x := range tp.ps {
			out = append(out, fmt.Sprintf("%s/%d", tp.topic, x))
		}
	}
	slices.Sort(out)
	return out
}

// TestParts checks the set operations against sets of strings on random
// sets built from lists in any order, with duplicates: partsFromProto
// gives well-formed sets, union, intersect and minus (with their
// shortcuts) give the right sets, and coveredBy implies subset.
func TestParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func() (parts, []*regroupv1.TopicPartitions, map[string]bool) {
		var tps []*regroupv1.TopicPartitions
		set := map[string]bool{}
		for _, topic := range []string{"a", "b", "c"} {
			if rng.IntN(3) == 0 {
				continue
			}
			var ps []int32
			for range rng.IntN(6) {
				x := rng.Int32N(8)
				ps = append(ps, x)
				set[fmt.Sprintf("%s/%d", topic, x)] = true
			}
			if rng.IntN(2) == 0 {
				slices.Sort(ps)
				ps = slices.Compact(ps)
			}
			tps = append(tps, &regroupv1.TopicPartitions{Topic: topic, Partitions: ps})
			if rng.IntN(4) == 0 {
				x := rng.Int32N(8)
				tps = append(tps, &regroupv1.TopicPartitions{Topic: topic, Partitions: []int32{x}})
				set[fmt.Sprintf("%s/%d", topic, x)] = true
			}
		}
		if rng.IntN(4) == 0 {
			slices.Reverse(tps)
		}
		p := partsFromProto(tps)
		for i, tp := range p {
			if len(tp.ps) == 0 || !strictlyIncreasing(tp.ps) || i > 0 && tp.topic <= p[i-1].topic {
				t.Fatalf("partsFromProto(%v) = %v", tps, p)
			}
		}
		if got, want := p.elems(), slices.Sorted(maps.Keys(set)); !slices.Equal(got, want) {
			t.Fatalf("partsFromProto(%v) has %v, want %v", tps, got, want)
		}
		return p, tps, set
	}
	check := func(op string, got parts, want map[string]bool, p, q parts) {
		t.Helper()
		if g, w := got.elems(), slices.Sorted(maps.Keys(want)); !slices.Equal(g, w) {
			t.Fatalf("%v %s %v = %v, want %v", p, op, q, g, w)
		}
	}
	for range 5000 {
		p, _, ps := random()
		q, lists, qs := random()
		union, inter, minus := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for k := range ps {
			union[k] = true
			if qs[k] {
				inter[k] = true
			} else {
				minus[k] = true
			}
		}
		for k := range qs {
			union[k] = true
		}
		check("union", p.union(q), union, p, q)
		check("intersect", p.intersect(q), inter, p, q)
		check("minus", p.minus(q), minus, p, q)
		if p.subset(q) != (len(minus) == 0) {
			t.Fatalf("%v subset %v = %v", p, q, p.subset(q))
		}
		if p.disjoint(q) != (len(inter) == 0) {
			t.Fatalf("%v disjoint %v = %v", p, q, p.disjoint(q))
		}
		if p.coveredBy(lists) && len(minus) > 0 {
			t.Fatalf("%v coveredBy %v, but is not a subset", p, lists)
		}
		if p.equal(q) != slices.Equal(p.elems(), q.elems()) {
			t.Fatalf("%v equal %v = %v", p, q, p.equal(q))
		}
	}
}
