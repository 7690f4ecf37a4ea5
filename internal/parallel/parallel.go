// Package parallel runs independent pieces of CPU-bound work on every core.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// minPerWorker is the least number of items worth a goroutine of its own.
const minPerWorker = 64

// ForEach calls f(i) for every i in [0, n), on up to GOMAXPROCS goroutines,
// and returns when every call has returned. The calls must be independent:
// f may run concurrently with itself, in any order.
func ForEach(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+minPerWorker-1)/minPerWorker)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}
