package fsm

import (
	"math/rand/v2"
	"slices"
	"testing"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestDiffAssignment checks the merge of an assignment with the owned list
// (and the merges that apply its result) against sets, for sorted
// assignments and for unsorted ones with duplicates.
func TestDiffAssignment(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		set := map[Partition]bool{}
		var a regroupv1.Assignment
		for _, topic := range []string{"a", "b"} {
			tp := &regroupv1.TopicPartitions{Topic: topic}
			for p := range int32(8) {
				if rng.IntN(2) == 0 {
					tp.Partitions = append(tp.Partitions, p)
					set[Partition{Topic: topic, Partition: p}] = true
				}
			}
			a.Partitions = append(a.Partitions, tp)
		}
		if rng.IntN(2) == 0 {
			slices.Reverse(a.Partitions)
			a.Partitions = append(a.Partitions, &regroupv1.TopicPartitions{Topic: "a", Partitions: []int32{1}})
			set[Partition{Topic: "a", Partition: 1}] = true
		}
		var owned []Partition
		for _, topic := range []string{"a", "b"} {
			for p := range int32(8) {
				if rng.IntN(2) == 0 {
					owned = append(owned, Partition{Topic: topic, Partition: p, Token: 1})
				}
			}
		}
		revoked, added, n := diffAssignment(owned, a.Partitions, 2)
		var wantRevoked, wantAdded []Partition
		for _, p := range owned {
			if !set[Partition{Topic: p.Topic, Partition: p.Partition}] {
				wantRevoked = append(wantRevoked, p)
			}
		}
		for _, p := range assignedPartitions(a.Partitions, 2) {
			if !slices.ContainsFunc(owned, func(o Partition) bool { return comparePartitions(o, p) == 0 }) {
				wantAdded = append(wantAdded, p)
			}
		}
		if !slices.Equal(revoked, wantRevoked) || !slices.Equal(added, wantAdded) || n != len(set) {
			t.Fatalf("owned %v, assignment %v: revoked %v added %v n %d, want %v %v %d", owned, &a, revoked, added, n, wantRevoked, wantAdded, len(set))
		}
		if !slices.IsSortedFunc(added, comparePartitions) {
			t.Fatalf("added %v is not sorted", added)
		}
		if all := withPartitions(owned, added); len(all) != len(owned)+len(added) || !slices.IsSortedFunc(all, comparePartitions) {
			t.Fatalf("withPartitions(%v, %v) = %v", owned, added, all)
		}
		if kept := withoutPartitions(owned, revoked); len(kept) != len(owned)-len(revoked) {
			t.Fatalf("withoutPartitions(%v, %v) = %v", owned, revoked, kept)
		}
	}
}
