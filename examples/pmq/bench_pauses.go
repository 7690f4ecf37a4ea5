package main

import (
	"context"
	"fmt"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
)

// window is how long after a change its pauses are looked for.
const window = 3500 * time.Millisecond

// pauseResult is one run's gaps: per event, per partition.
type pauseResult struct {
	baseline    []time.Duration // a quiet instant before the changes
	join, leave []time.Duration
}

// pauses compares the consumption gaps that a join and a leave cause under
// each assignor.
func (b *bench) pauses(assignors []string, rate float64) error {
	fmt.Printf("pauses: %d partitions, %.0f messages/s of %d bytes, %d consumers, then a join, then a graceful leave; %d runs per assignor\n",
		b.partitions, rate, b.size, b.consumers, b.runs)
	fmt.Printf("gap = per partition, the longest time between two consecutive batches finished in the %s after the change\n\n", window)
	fmt.Println("| assignor | event | partitions paused > 250 ms (median) | median gap | max gap (median of runs) | max gap, runs |")
	fmt.Println("|---|---|---:|---:|---:|---|")
	for _, a := range assignors {
		var rs []pauseResult
		for r := 0; r < b.runs; r++ {
			res, err := b.pausesRun(a, rate)
			if err != nil {
				return err
			}
			rs = append(rs, res)
		}
		for _, ev := range []string{"none (baseline)", "join", "leave"} {
			var paused []int64
			var medians, maxes []time.Duration
			for _, r := range rs {
				gs := map[string][]time.Duration{"none (baseline)": r.baseline, "join": r.join, "leave": r.leave}[ev]
				var n int64
				var mx time.Duration
				for _, g := range gs {
					if g > 250*time.Millisecond {
						n++
					}
					mx = max(mx, g)
				}
				paused, medians, maxes = append(paused, n), append(medians, median(gs)), append(maxes, mx)
			}
			var runs string
			for i, m := range maxes {
				if i > 0 {
					runs += ", "
				}
				runs += ms(m)
			}
			fmt.Printf("| %s | %s | %d of %d | %s | %s | %s |\n", a, ev, median(paused), b.partitions, ms(median(medians)), ms(median(maxes)), runs)
		}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

// pausesRun runs one group under assignor a with steady production: a quiet
// period, a join, then a leave, and measures the gaps around each.
func (b *bench) pausesRun(a string, rate float64) (pauseResult, error) {
	var res pauseResult
	cfg, err := b.fresh("pz")
	if err != nil {
		return res, err
	}
	cfg.assignor, cfg.batch, cfg.work = a, 10, time.Millisecond
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	p := &producer{db: cfg.db, topic: cfg.topic, batch: 1, size: b.size}
	var parts []int32
	for i := int32(0); i < b.partitions; i++ {
		parts = append(parts, i)
	}
	produced := make(chan error, 1)
	go func() { produced <- p.run(ctx, parts, rate, 0) }()
	group, err := b.startGroup(cfg, b.consumers)
	defer func() { stopAll(group) }()
	if err != nil {
		return res, err
	}
	settle := func() { time.Sleep(window + 500*time.Millisecond) }
	settle()
	quiet := time.Now()
	settle()
	joined := time.Now()
	extra, err := startInproc(cfg, fmt.Sprintf("b%d", len(group)+1))
	if err != nil {
		return res, err
	}
	group = append(group, extra)
	settle()
	left := time.Now()
	if err := group[0].stop(); err != nil {
		return res, err
	}
	group = group[1:]
	settle()
	cancel()
	if err := <-produced; err != nil {
		return res, err
	}
	for _, ev := range []struct {
		at  time.Time
		out *[]time.Duration
	}{{quiet, &res.baseline}, {joined, &res.join}, {left, &res.leave}} {
		if *ev.out, err = queue.MaxGaps(b.ctx, cfg.db, cfg.group, cfg.topic, ev.at, ev.at.Add(window)); err != nil {
			return res, err
		}
	}
	return res, nil
}
