package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
)

func runBench(args []string) error {
	fs := newFlags("bench", "Measure the queue with consumers running in this process against a\n"+
		"running coordinator (run.sh bench starts one, and MariaDB):\n"+
		"  --mode throughput: --messages messages of --size bytes produced as fast\n"+
		"    as possible while --consumers consume them; messages per second end to\n"+
		"    end (first produced to last processed), for each --batch.\n"+
		"  --mode pauses: steady production; a consumer joins, then one leaves\n"+
		"    gracefully; the gap each change causes in each partition's\n"+
		"    consumption, for each of --assignors (cooperative-sticky against the\n"+
		"    eager sticky).\n"+
		"Every run uses a fresh topic and group; medians over --runs.")
	dsn := dsnFlag(fs)
	endpoints := endpointsFlag(fs, "127.0.0.1:7070", "")
	mode := fs.String("mode", "throughput", "throughput or pauses")
	partitions := fs.Int("partitions", 8, "partitions of each run's topic")
	consumers := fs.Int("consumers", 4, "consumers (pauses: before the join)")
	batches := fs.String("batch", "1,10,100", "batch sizes (producer statements and consumer pulls), comma-separated")
	messages := fs.Int("messages", 20000, "throughput: messages per run")
	size := fs.Int("size", 1024, "payload bytes per message")
	rate := fs.Float64("rate", 800, "pauses: messages per second in all")
	work := fs.Duration("work", time.Millisecond, "pauses: simulated processing time per message (a revoke waits for the batch in hand)")
	assignors := fs.String("assignors", "cooperative-sticky,sticky", "pauses: assignors to compare, comma-separated")
	runs := fs.Int("runs", 3, "runs per configuration")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	db, err := openDB(ctx, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	b := &bench{ctx: ctx, cfg: inprocConfig{db: db, endpoints: strings.Split(*endpoints, ",")},
		partitions: int32(*partitions), consumers: *consumers, size: *size, runs: *runs}
	switch *mode {
	case "throughput":
		var bs []int
		for _, s := range strings.Split(*batches, ",") {
			var n int
			if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
				return fmt.Errorf("--batch %q: %q is not a positive number", *batches, s)
			}
			bs = append(bs, n)
		}
		return b.throughput(bs, *messages)
	case "pauses":
		b.cfg.work = *work
		return b.pauses(strings.Split(*assignors, ","), *rate)
	}
	return fmt.Errorf("--mode %q: use throughput or pauses", *mode)
}

// bench holds what every run shares.
type bench struct {
	ctx        context.Context
	cfg        inprocConfig
	partitions int32
	consumers  int
	size       int
	runs       int
}

// fresh sets up a new topic and group for one run and registers the topic
// with the coordinator.
func (b *bench) fresh(kind string) (inprocConfig, error) {
	cfg := b.cfg
	id := fmt.Sprintf("%s%d", kind, time.Now().UnixNano()%1e10)
	cfg.topic, cfg.group = "t_"+id, "g_"+id
	if err := queue.Setup(b.ctx, cfg.db, cfg.topic, b.partitions); err != nil {
		return cfg, err
	}
	return cfg, putTopic(b.ctx, cfg.endpoints, cfg.topic, b.partitions)
}

// startGroup starts n consumers and waits until they have claimed every
// partition.
func (b *bench) startGroup(cfg inprocConfig, n int) ([]*inproc, error) {
	var ps []*inproc
	for i := 0; i < n; i++ {
		p, err := startInproc(cfg, fmt.Sprintf("b%d", i+1))
		if err != nil {
			return ps, err
		}
		ps = append(ps, p)
	}
	return ps, b.until(60*time.Second, "every partition is claimed", func() (bool, error) {
		n, err := queue.Claimed(b.ctx, cfg.db, cfg.group, cfg.topic)
		return n == int(b.partitions), err
	})
}

func stopAll(ps []*inproc) {
	for _, p := range ps {
		_ = p.stop()
	}
}

// until polls cond every 50 ms until it holds, for at most limit.
func (b *bench) until(limit time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting until %s", limit, what)
		}
		select {
		case <-b.ctx.Done():
			return b.ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
