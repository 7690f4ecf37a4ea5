package node_test

import (
	"fmt"
	"testing"
)

// BenchmarkJoinStorm forms one group of 1,000, 3,000 or 10,000 members
// through the node (storm), from the first JoinGroup to the last
// follower's assignment; the leader's plan is built outside the timer. It
// reports the store writes and the bytes they held per group formed.
//
//	go test ./coordinator/node -run '^$' -bench JoinStorm -count 5
func BenchmarkJoinStorm(b *testing.B) {
	for _, members := range []int{1_000, 3_000, 10_000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			var writes, bytes int
			for b.Loop() {
				s := newStorm(members)
				s.run(b, members)
				writes += s.writes
				bytes += s.bytes
			}
			b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
			b.ReportMetric(float64(bytes)/float64(b.N), "bytes-written/op")
		})
	}
}
