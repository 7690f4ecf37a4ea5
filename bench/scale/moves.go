package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// moves measures, with --moves, what moving shards costs the members: a
// coordinator joins (the others hand it its share of the shards), then one
// of the first is SIGKILLed (its shards fail over). Each is timed from the
// start of the new process, or the kill, until every live coordinator
// leads its share; then the members are watched for moveWatch, counting
// lease ends and groups whose generation changed (rebalances).
func moves(ctx context.Context, c runConfig, res *result, cs *coordinators, t *tracker, progress func(string, ...any)) error {
	if !c.sharded() {
		return fmt.Errorf("--moves needs --coordinators or --shards")
	}
	step := func(what string, move func() error) (secs float64, leaseEnds int64, rebalanced int, err error) {
		gens := t.generations()
		lost := t.sum().Lost
		start := time.Now()
		if err := move(); err != nil {
			return 0, 0, 0, err
		}
		took, err := cs.placed(ctx, start, time.Minute)
		if err != nil {
			return 0, 0, 0, err
		}
		progress("%s: every coordinator leads its share %.2fs after; watching the members for %v", what, took.Seconds(), c.moveWatch)
		if err := sleepCtx(ctx, c.moveWatch); err != nil {
			return 0, 0, 0, err
		}
		now := t.generations()
		for g := range gens {
			if now[g] != gens[g] {
				rebalanced++
			}
		}
		leaseEnds = t.sum().Lost - lost
		progress("%s: %d lease ends, %d groups rebalanced", what, leaseEnds, rebalanced)
		return took.Seconds(), leaseEnds, rebalanced, nil
	}
	var err error
	res.HandoffS, res.HandoffLeaseEnds, res.HandoffRebalanced, err = step("a coordinator joins", func() error { return cs.add(progress) })
	if err != nil {
		return err
	}
	res.FailoverS, res.FailoverLeaseEnds, res.FailoverRebalanced, err = step("a coordinator is killed", func() error {
		cs.kill(1)
		return nil
	})
	return err
}

// generations returns each group's highest generation, as its members
// report it.
func (t *tracker) generations() []int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]int32, len(t.groups))
	for g := range t.groups {
		_, _, _, out[g], _, _ = t.group(g)
	}
	return out
}

// formatList formats percentages or rates: "12, 13, 11".
func formatList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, ", ")
}
