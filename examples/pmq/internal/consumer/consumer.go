// Package consumer is the PMQ-style consumer: a member.Listener that runs
// one worker per owned partition. A worker claims its partition with the
// fencing token, pulls batches, processes them and commits each batch's
// results with the offset in one transaction that the fence can refuse.
package consumer

import (
	"context"
	"database/sql"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regroup-dev/regroup/member"
)

// Config configures a Consumer.
type Config struct {
	DB    *sql.DB
	Group string
	Topic string
	// Name identifies the consumer in the database tables; make it unique
	// per process (e.g. "c1/4242").
	Name string
	// Batch is the most messages pulled and committed at once.
	Batch int
	// Work is the simulated processing time per message.
	Work time.Duration
	// Poll is how long a worker waits when its partition is empty.
	Poll time.Duration
	// StopGrace bounds how long OnLost waits for a worker to notice before
	// aborting its database calls.
	StopGrace time.Duration
	// Log receives the consumer's events; nil discards them.
	Log *log.Logger
}

// Consumer implements member.Listener over the queue.
type Consumer struct {
	cfg       Config
	mu        sync.Mutex
	workers   map[int32]*worker
	processed atomic.Int64
	refused   atomic.Int64
	freeze    atomic.Pointer[func(partition int32, token int64, messages int)] // see FreezeNextBatch
}

// New returns a Consumer owning nothing yet.
func New(cfg Config) *Consumer {
	if cfg.Batch < 1 {
		cfg.Batch = 10
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 20 * time.Millisecond
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 3 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = log.New(discard{}, "", 0)
	}
	return &Consumer{cfg: cfg, workers: map[int32]*worker{}}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Processed counts the messages whose commit was accepted.
func (c *Consumer) Processed() int64 { return c.processed.Load() }

// Refused counts the claims and commits the fence refused.
func (c *Consumer) Refused() int64 { return c.refused.Load() }

// FreezeNextBatch makes the next worker that pulls a batch call freeze
// once, with the batch in hand, before it processes it. The demo freezes
// the whole process there (SIGSTOP): a stop-the-world pause at the worst
// moment, after which the batch's commit meets the fence of the
// partition's next owner.
func (c *Consumer) FreezeNextBatch(freeze func(partition int32, token int64, messages int)) {
	c.freeze.Store(&freeze)
}

// Owned returns the partitions that have a worker.
func (c *Consumer) Owned() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []int32
	for p := range c.workers {
		ps = append(ps, p)
	}
	return ps
}

// OnAssigned starts a worker for each partition of the consumer's topic.
func (c *Consumer) OnAssigned(_ context.Context, ps []member.Partition) {
	for _, p := range ps {
		if p.Topic != c.cfg.Topic {
			continue
		}
		c.cfg.Log.Printf("assigned partition %d, token %d", p.Partition, p.Token)
		w := c.startWorker(p)
		c.mu.Lock()
		c.workers[p.Partition] = w
		c.mu.Unlock()
	}
}

// OnRevoked lets each worker finish and commit the batch in hand, and
// returns once they have all stopped (or aborts them when ctx ends).
func (c *Consumer) OnRevoked(ctx context.Context, ps []member.Partition) {
	c.stopWorkers(ps, ctx.Done(), "revoked")
}

// OnLost stops each worker without committing on its behalf: a worker takes
// no new batch, and OnLost returns once they have all stopped, aborting
// their database calls after StopGrace. The member no longer owns the
// partitions, so a batch a worker was already processing (as a process
// waking from a pause is) still goes to the fence when the worker tries to
// commit it: refused if a newer owner has claimed the partition, accepted
// if nobody has yet (and then the next owner starts after it).
func (c *Consumer) OnLost(_ context.Context, ps []member.Partition) {
	grace, cancel := context.WithTimeout(context.Background(), c.cfg.StopGrace)
	defer cancel()
	c.stopWorkers(ps, grace.Done(), "lost")
}

// stopWorkers stops the workers of ps: each ends after the batch in hand
// (which goes to the fence), and those still running when giveUp closes
// have their database calls aborted. It returns once every one has ended.
func (c *Consumer) stopWorkers(ps []member.Partition, giveUp <-chan struct{}, verb string) {
	ws := c.take(ps)
	for _, w := range ws {
		close(w.stop)
	}
	for _, w := range ws {
		select {
		case <-w.done:
		case <-giveUp:
			w.abort()
			<-w.done
		}
		c.cfg.Log.Printf("%s partition %d", verb, w.owner.Partition)
	}
}

func (c *Consumer) take(ps []member.Partition) []*worker {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ws []*worker
	for _, p := range ps {
		if w, ok := c.workers[p.Partition]; ok && p.Topic == c.cfg.Topic {
			ws = append(ws, w)
			delete(c.workers, p.Partition)
		}
	}
	return ws
}
