package group

import (
	"math/rand/v2"
	"testing"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestPartsShortcuts checks that union, intersect and minus, which return
// an operand when it is the answer, agree with the plain merge (combine),
// that coveredBy implies subset, and that partsFromProto sorts and deduplicates what it does not share.
func TestPartsShortcuts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func() (parts, []*regroupv1.TopicPartitions) {
		var tps []*regroupv1.TopicPartitions
		for _, topic := range []string{"a", "b", "c"} {
			if rng.IntN(3) == 0 {
				continue
			}
			var ps []int32
			for range rng.IntN(6) {
				ps = append(ps, rng.Int32N(8))
			}
			tps = append(tps, &regroupv1.TopicPartitions{Topic: topic, Partitions: ps})
			if rng.IntN(4) == 0 {
				tps = append(tps, &regroupv1.TopicPartitions{Topic: topic, Partitions: []int32{rng.Int32N(8)}})
			}
		}
		p := partsFromProto(tps)
		for topic, ps := range p {
			if len(ps) == 0 || !strictlyIncreasing(ps) {
				t.Fatalf("partsFromProto gave %s: %v", topic, ps)
			}
		}
		return p, tps
	}
	for range 5000 {
		p, _ := random()
		q, lists := random()
		if got, want := p.coveredBy(lists), p.subset(q); got && !want {
			t.Fatalf("%v coveredBy %v, but is not a subset", p, lists)
		}
		if r, want := p.union(q), p.combine(q, true, true, true); !r.equal(want) {
			t.Fatalf("%v union %v = %v, want %v", p, q, r, want)
		}
		if r, want := p.intersect(q), p.combine(q, false, false, true); !r.equal(want) {
			t.Fatalf("%v intersect %v = %v, want %v", p, q, r, want)
		}
		if r, want := p.minus(q), p.combine(q, true, false, false); !r.equal(want) {
			t.Fatalf("%v minus %v = %v, want %v", p, q, r, want)
		}
	}
}
