package simulator

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/regroup-dev/regroup/simulator/scenario"
)

// Jitter moves every action of sc after time 0, and a set end (Until),
// by one offset drawn uniformly from [0, d] with a random source seeded
// with sc.Seed (apart from the run's own), and returns the offset. The
// members' heartbeats start with their joins and repeat every heartbeat
// interval, so a d of at least one interval puts the faults at a random
// phase of the heartbeats: the variance of a fault's cost that matters
// (the time of a crash relative to the last heartbeat decides when the
// coordinator notices it). The same seed and d give the same offset.
// Expect lines' since stays where it is.
func Jitter(sc *scenario.Scenario, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	off := time.Duration(rand.New(rand.NewPCG(sc.Seed, 0x717e)).Int64N(int64(d) + 1))
	for i := range sc.Actions {
		if sc.Actions[i].At > 0 {
			sc.Actions[i].At += off
		}
	}
	if sc.Until > 0 {
		sc.Until += off
	}
	return off
}

// Stat sums up one metric over several runs: how many runs had a value
// (N), their mean, median (P50), 95th and 99th percentiles (interpolated
// linearly between the nearest ranks), and a 95% confidence interval for
// the mean, Lo to Hi (Student's t; Lo = Hi = Mean for one run).
type Stat struct {
	Metric string  `json:"metric"`
	N      int     `json:"n"`
	Mean   float64 `json:"mean"`
	P50    float64 `json:"p50"`
	P95    float64 `json:"p95"`
	P99    float64 `json:"p99"`
	Lo     float64 `json:"ci95_lo"`
	Hi     float64 `json:"ci95_hi"`
}

// statMetrics are the metrics Summarize sums up, in order: counts,
// partition-seconds, and seconds for durations. A run without a value
// (stable, when it never settled) is left out of that metric's Stat.
var statMetrics = []struct {
	name string
	of   func(m *Metrics) (float64, bool)
}{
	{"rebalances", func(m *Metrics) (float64, bool) { return float64(m.Rebalances), true }},
	{"moved", func(m *Metrics) (float64, bool) { return float64(m.Moved), true }},
	{"revoked", func(m *Metrics) (float64, bool) { return float64(m.Revoked), true }},
	{"lost", func(m *Metrics) (float64, bool) { return float64(m.Lost), true }},
	{"unowned", func(m *Metrics) (float64, bool) { return m.UnownedSeconds, true }},
	{"not-processing", func(m *Metrics) (float64, bool) { return m.NotProcessingSeconds, true }},
	{"rebalance-median", func(m *Metrics) (float64, bool) { return m.RebalanceMedian.Seconds(), true }},
	{"rebalance-max", func(m *Metrics) (float64, bool) { return m.RebalanceMax.Seconds(), true }},
	{"settled-max", func(m *Metrics) (float64, bool) { return m.Stats().SettledMax.Seconds(), true }},
	{"stable", func(m *Metrics) (float64, bool) { return m.TimeToStable.Seconds(), m.Stable && m.TimeToStable >= 0 }},
	{"messages", func(m *Metrics) (float64, bool) { return float64(m.Messages), true }},
	{"violations", func(m *Metrics) (float64, bool) { return float64(m.Violations), true }},
}

// StatMetrics names the metrics Summarize sums up, in its order:
// rebalances, moved, revoked, lost (counts), unowned, not-processing
// (partition-seconds), rebalance-median, rebalance-max, settled-max (the
// longest time from a disturbance to the end of its last rebalance), stable
// (seconds), messages and violations (counts).
func StatMetrics() []string {
	names := make([]string, len(statMetrics))
	for i, s := range statMetrics {
		names[i] = s.name
	}
	return names
}

// Summarize sums up each of StatMetrics over ms, in that order.
func Summarize(ms []Metrics) []Stat {
	out := make([]Stat, 0, len(statMetrics))
	for _, sm := range statMetrics {
		var xs []float64
		for i := range ms {
			if v, ok := sm.of(&ms[i]); ok {
				xs = append(xs, v)
			}
		}
		out = append(out, stat(sm.name, xs))
	}
	return out
}

func stat(name string, xs []float64) Stat {
	st := Stat{Metric: name, N: len(xs)}
	if len(xs) == 0 {
		return st
	}
	slices.Sort(xs)
	st.Mean = mean(xs)
	st.P50, st.P95, st.P99 = quantile(xs, 0.50), quantile(xs, 0.95), quantile(xs, 0.99)
	st.Lo, st.Hi = st.Mean, st.Mean
	if n := len(xs); n > 1 {
		var ss float64
		for _, x := range xs {
			ss += (x - st.Mean) * (x - st.Mean)
		}
		half := t975(n-1) * math.Sqrt(ss/float64(n-1)/float64(n))
		st.Lo, st.Hi = st.Mean-half, st.Mean+half
	}
	return st
}

// quantile returns the q-quantile of sorted xs, interpolating linearly
// between the order statistics (the default of R and NumPy).
func quantile(xs []float64, q float64) float64 {
	h := q * float64(len(xs)-1)
	lo := int(math.Floor(h))
	if lo+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	return xs[lo] + (h-float64(lo))*(xs[lo+1]-xs[lo])
}

// t975 is the 97.5th percentile of Student's t distribution with df
// degrees of freedom: from a table up to 30, then from its expansion in
// 1/df around the normal's 1.96 (within 0.001 of the exact value).
func t975(df int) float64 {
	table := [...]float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	if df <= len(table) {
		return table[df-1]
	}
	const z = 1.959964
	n := float64(df)
	return z + (z*z*z+z)/(4*n) + (5*math.Pow(z, 5)+16*z*z*z+3*z)/(96*n*n)
}
