// Package minheap is a binary min-heap of values, typed: unlike
// container/heap, pushing and popping box nothing, which matters on the
// paths every heartbeat takes. It has no dependencies, so the pure cores
// use it.
package minheap

// Ordered is a value that knows whether it comes before another.
type Ordered[T any] interface {
	Before(other T) bool
}

// Heap is a min-heap: h[0] is the least element. The zero value is empty
// and ready to use; read h[0] and len(h) directly, change it only with
// Push and Pop.
type Heap[T Ordered[T]] []T

// Push adds x.
func (h *Heap[T]) Push(x T) {
	*h = append(*h, x)
	s := *h
	for j := len(s) - 1; j > 0; {
		i := (j - 1) / 2 // parent
		if !s[j].Before(s[i]) {
			break
		}
		s[i], s[j] = s[j], s[i]
		j = i
	}
}

// Pop removes and returns the least element; the heap must not be empty.
func (h *Heap[T]) Pop() T {
	s := *h
	n := len(s) - 1
	s[0], s[n] = s[n], s[0]
	for i := 0; ; {
		j := 2*i + 1 // left child
		if j >= n {
			break
		}
		if j2 := j + 1; j2 < n && s[j2].Before(s[j]) {
			j = j2
		}
		if !s[j].Before(s[i]) {
			break
		}
		s[i], s[j] = s[j], s[i]
		i = j
	}
	x := s[n]
	var zero T
	s[n] = zero
	*h = s[:n]
	return x
}
