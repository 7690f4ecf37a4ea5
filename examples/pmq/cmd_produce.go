package main

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
)

func runProduce(args []string) error {
	fs := newFlags("produce", "Insert messages into a topic's partitions, round the partitions, at --rate\n"+
		"messages per second in all (0: as fast as the database allows), in\n"+
		"statements of --batch messages, until --count messages, --duration, or\n"+
		"SIGINT/SIGTERM. A partition must have one producer only (ids must become\n"+
		"visible in order): give concurrent producers disjoint --partitions.")
	dsn := dsnFlag(fs)
	topic := fs.String("topic", "orders", "topic to produce to")
	rate := fs.Float64("rate", 200, "messages per second in all (0: no limit)")
	batch := fs.Int("batch", 10, "messages per insert statement")
	size := fs.Int("size", 1024, "payload bytes per message")
	parts := fs.String("partitions", "", "partitions to write, e.g. 0-3 or 0,2,4 (default all)")
	count := fs.Int64("count", 0, "stop after this many messages (0: no limit)")
	duration := fs.Duration("duration", 0, "stop after this long (0: no limit)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *batch < 1 || *size < 1 || *rate < 0 {
		return fmt.Errorf("--batch and --size must be positive and --rate not negative")
	}
	ctx, stop := signalContext()
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	db, err := openDB(ctx, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := queue.Partitions(ctx, db, *topic)
	if err != nil {
		return err
	}
	ps, err := parsePartitions(*parts, n)
	if err != nil {
		return err
	}
	p := &producer{db: db, topic: *topic, batch: *batch, size: *size}
	start := time.Now()
	err = p.run(ctx, ps, *rate, *count)
	el := time.Since(start)
	fmt.Printf("produced %d messages to %s in %s (%.0f/s)\n", p.sent.Load(), *topic, el.Round(time.Millisecond),
		float64(p.sent.Load())/el.Seconds())
	return err
}

// producer writes batches into partitions, one goroutine per partition.
type producer struct {
	db    *sql.DB
	topic string
	batch int
	size  int
	sent  atomic.Int64
}

// run produces into ps at rate messages per second in all (0: no limit),
// count messages in all (0: no limit), until ctx ends.
func (p *producer) run(ctx context.Context, ps []int32, rate float64, count int64) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(ps))
	for i, part := range ps {
		quota := int64(-1)
		if count > 0 {
			quota = count / int64(len(ps))
			if int64(i) < count%int64(len(ps)) {
				quota++
			}
		}
		var every time.Duration
		if rate > 0 {
			every = time.Duration(float64(p.batch) * float64(len(ps)) / rate * float64(time.Second))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- p.partition(ctx, part, every, quota)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

func (p *producer) partition(ctx context.Context, part int32, every time.Duration, quota int64) error {
	next := time.Now()
	for quota != 0 {
		n := int64(p.batch)
		if quota > 0 && quota < n {
			n = quota
		}
		if err := queue.Produce(ctx, p.db, p.topic, part, int(n), p.size); err != nil {
			return err
		}
		p.sent.Add(n)
		if quota > 0 {
			quota -= n
		}
		if every > 0 {
			next = next.Add(every)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Until(next)):
			}
		} else if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}
