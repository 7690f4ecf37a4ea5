package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
)

// window is how long after a change its pauses are looked for.
const window = 3500 * time.Millisecond

// eventResult is what one change did to the partitions: which were stopped
// and restarted (claimed again), and each one's longest gap.
type eventResult struct {
	restarted map[int32]bool
	gaps      []time.Duration
}

// split returns the largest gap among the restarted partitions and among
// the others.
func (e eventResult) split() (restarted, others time.Duration) {
	for p, g := range e.gaps {
		if e.restarted[int32(p)] {
			restarted = max(restarted, g)
		} else {
			others = max(others, g)
		}
	}
	return restarted, others
}

// pauses compares the consumption gaps that a join and a leave cause under
// each assignor.
func (b *bench) pauses(assignors []string, rate float64) error {
	fmt.Printf("pauses: %d partitions, %.0f messages/s of %d bytes, batch 10, %s of work per message, %d consumers, then a join, then a graceful leave; %d runs per assignor\n",
		b.partitions, rate, b.size, b.cfg.work, b.consumers, b.runs)
	fmt.Printf("restarted = partitions claimed again in the %s after the change; gap = per partition, the longest time\n", window)
	fmt.Print("between two consecutive batches finished in that window (medians over runs; runs in brackets)\n\n")
	fmt.Println("| assignor | event | partitions restarted | longest gap, restarted partitions | longest gap, other partitions |")
	fmt.Println("|---|---|---:|---:|---:|")
	for _, a := range assignors {
		results := map[string][]eventResult{}
		for r := 0; r < b.runs; r++ {
			res, err := b.pausesRun(a, rate)
			if err != nil {
				return err
			}
			for ev, er := range res {
				results[ev] = append(results[ev], er)
			}
		}
		for _, ev := range []string{"none (baseline)", "join", "leave"} {
			var counts []int64
			var rs, os []time.Duration
			for _, er := range results[ev] {
				r, o := er.split()
				counts, rs, os = append(counts, int64(len(er.restarted))), append(rs, r), append(os, o)
			}
			fmt.Printf("| %s | %s | %d of %d | %s | %s |\n", a, ev, median(counts), b.partitions, msList(rs), msList(os))
		}
	}
	return nil
}

// msList prints the median of ds and, in brackets, every run; "-" when
// every run measured nothing.
func msList(ds []time.Duration) string {
	if slices.Max(ds) == 0 {
		return "-"
	}
	var all []string
	for _, d := range ds {
		all = append(all, fmt.Sprint(d.Milliseconds()))
	}
	return fmt.Sprintf("%d ms (%s)", median(ds).Milliseconds(), strings.Join(all, ", "))
}

// pausesRun runs one group under assignor a with steady production: a quiet
// period, a join, then a leave, and measures what each did.
func (b *bench) pausesRun(a string, rate float64) (map[string]eventResult, error) {
	cfg, err := b.fresh("pz")
	if err != nil {
		return nil, err
	}
	cfg.assignor, cfg.batch, cfg.poll = a, 10, 5*time.Millisecond
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
		return nil, err
	}
	settle := func() { time.Sleep(window + 500*time.Millisecond) }
	settle()
	quiet := time.Now()
	settle()
	joined := time.Now()
	extra, err := startInproc(cfg, fmt.Sprintf("b%d", len(group)+1))
	if err != nil {
		return nil, err
	}
	group = append(group, extra)
	settle()
	left := time.Now()
	if err := group[0].stop(); err != nil {
		return nil, err
	}
	group = group[1:]
	settle()
	cancel()
	if err := <-produced; err != nil {
		return nil, err
	}
	res := map[string]eventResult{}
	for ev, at := range map[string]time.Time{"none (baseline)": quiet, "join": joined, "leave": left} {
		var er eventResult
		if er.gaps, err = queue.MaxGaps(b.ctx, cfg.db, cfg.group, cfg.topic, at, at.Add(window)); err != nil {
			return nil, err
		}
		if er.restarted, err = queue.ClaimedBetween(b.ctx, cfg.db, cfg.group, cfg.topic, at, at.Add(window)); err != nil {
			return nil, err
		}
		res[ev] = er
	}
	return res, nil
}
