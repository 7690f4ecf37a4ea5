package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
)

// throughput measures messages per second end to end for each batch size.
func (b *bench) throughput(batches []int, messages int) error {
	fmt.Printf("throughput: %d messages of %d bytes, %d partitions, %d consumers, %d runs per batch size\n\n",
		messages, b.size, b.partitions, b.consumers, b.runs)
	fmt.Println("| batch | end to end (msg/s), median | produce only (msg/s), median | runs (end to end) |")
	fmt.Println("|---:|---:|---:|---|")
	for _, batch := range batches {
		var e2e, prod []float64
		for r := 0; r < b.runs; r++ {
			e, p, err := b.throughputRun(batch, messages)
			if err != nil {
				return err
			}
			e2e, prod = append(e2e, e), append(prod, p)
		}
		var rs []string
		for _, e := range e2e {
			rs = append(rs, fmt.Sprintf("%.0f", e))
		}
		fmt.Printf("| %d | %.0f | %.0f | %s |\n", batch, median(e2e), median(prod), strings.Join(rs, ", "))
	}
	return nil
}

// throughputRun produces messages as fast as possible, one goroutine per
// partition, while the group consumes them, and returns the end-to-end
// and the produce-only rates.
func (b *bench) throughputRun(batch, messages int) (float64, float64, error) {
	cfg, err := b.fresh("tp")
	if err != nil {
		return 0, 0, err
	}
	cfg.assignor, cfg.batch = "cooperative-sticky", batch
	group, err := b.startGroup(cfg, b.consumers)
	defer stopAll(group)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, b.partitions)
	per := messages / int(b.partitions)
	for p := int32(0); p < b.partitions; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left := per; left > 0; left -= batch {
				if err := queue.Produce(b.ctx, cfg.db, cfg.topic, p, min(batch, left), b.size); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	produced := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, 0, err
	}
	if err := b.until(5*time.Minute, "the group consumed everything", func() (bool, error) {
		lag, err := queue.Lag(b.ctx, cfg.db, cfg.group, cfg.topic)
		return lag == 0, err
	}); err != nil {
		return 0, 0, err
	}
	first, last, err := queue.Span(b.ctx, cfg.db, cfg.group, cfg.topic)
	if err != nil {
		return 0, 0, err
	}
	total := float64(per * int(b.partitions))
	return total / last.Sub(first).Seconds(), total / produced.Seconds(), nil
}
