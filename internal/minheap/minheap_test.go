package minheap

import (
	"math/rand/v2"
	"slices"
	"testing"
)

type num int

func (a num) Before(b num) bool { return a < b }

// TestHeapSorts checks the heap against sorting, on random input with
// pushes and pops interleaved.
func TestHeapSorts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var h Heap[num]
		var ref []num
		for range r.IntN(100) {
			if len(h) > 0 && r.IntN(3) == 0 {
				slices.Sort(ref)
				if got := h.Pop(); got != ref[0] {
					t.Fatalf("round %d: Pop = %d, want %d", round, got, ref[0])
				}
				ref = ref[1:]
				continue
			}
			x := num(r.IntN(50))
			h.Push(x)
			ref = append(ref, x)
		}
		slices.Sort(ref)
		for _, want := range ref {
			if got := h.Pop(); got != want {
				t.Fatalf("round %d: Pop = %d, want %d", round, got, want)
			}
		}
		if len(h) != 0 {
			t.Fatalf("round %d: %d left after popping everything", round, len(h))
		}
	}
}
