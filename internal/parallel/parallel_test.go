package parallel_test

import (
	"sync/atomic"
	"testing"

	"github.com/regroup-dev/regroup/internal/parallel"
)

func TestForEachCallsEveryIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 65, 1000, 10007} {
		calls := make([]atomic.Int32, n)
		parallel.ForEach(n, func(i int) { calls[i].Add(1) })
		for i := range calls {
			if c := calls[i].Load(); c != 1 {
				t.Fatalf("n=%d: f(%d) called %d times", n, i, c)
			}
		}
	}
}
