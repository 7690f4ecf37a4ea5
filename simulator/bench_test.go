package simulator_test

import (
	"fmt"
	"testing"

	"github.com/regroup-dev/regroup/simulator"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// churnScenario is the performance scenario: members over 10,000
// partitions for one hour of virtual time, with a churn event every 10 s
// (a random member restarts, crashes and comes back, or pauses for up to
// 20 s).
func churnScenario(members int) string {
	return fmt.Sprintf(`
topic orders partitions=10000
group g session=10s
at 0s join m1..m%d
at 1m churn every=10s for=58m kinds=restart,crash,pause
run until=1h
`, members)
}

// BenchmarkChurn simulates an hour of churn (see churnScenario) for 100 to
// 2,000 members. docs/benchmarks.md records the results:
//
//	go test -run '^$' -bench BenchmarkChurn -benchtime 1x -count 5 -timeout 2h ./simulator
func BenchmarkChurn(b *testing.B) {
	for _, n := range []int{100, 300, 1000, 2000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			sc, err := scenario.Parse("churn", churnScenario(n))
			if err != nil {
				b.Fatal(err)
			}
			var res *simulator.Result
			for b.Loop() {
				if res, err = simulator.Run(sc, simulator.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			if len(res.Violations) > 0 {
				b.Fatalf("violations: %v", res.Violations)
			}
			m := res.Metrics
			b.ReportMetric(float64(m.Events), "events")
			b.ReportMetric(float64(m.Rebalances), "rebalances")
			b.ReportMetric(float64(m.Messages), "messages")
		})
	}
}
