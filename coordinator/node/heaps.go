package node

import (
	"container/heap"
	"time"

	"github.com/regroup-dev/regroup/coordinator/group"
)

// timerHeap orders the groups by their armed deadline (entry.timerAt); an
// entry knows its index, so that re-arming it is a heap.Fix.
type timerHeap []*entry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].timerAt.Before(h[j].timerAt) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timerIdx, h[j].timerIdx = i, j
}

// Push and Pop implement heap.Interface; use push and remove.
func (h *timerHeap) Push(x any) {
	e := x.(*entry)
	e.timerIdx = len(*h)
	*h = append(*h, e)
}

func (h *timerHeap) Pop() any {
	s := *h
	e := s[len(s)-1]
	s[len(s)-1] = nil
	*h = s[:len(s)-1]
	e.timerIdx = -1
	return e
}

func (h *timerHeap) push(e *entry) { heap.Push(h, e) }

// remove takes e out of the heap, if it is in it, and disarms it.
func (h *timerHeap) remove(e *entry) {
	if e.timerIdx >= 0 {
		heap.Remove(h, e.timerIdx)
	}
	e.timerAt = time.Time{}
}

// hold is a held reply's time; it is stale unless the node's held reply
// for req still has that time. The node keeps them in a minheap.Heap.
type hold struct {
	at  time.Time
	req group.ReqID
}

// Before orders holds by time.
func (h hold) Before(o hold) bool { return h.at.Before(o.at) }
