package consumer

import (
	"context"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
	"github.com/regroup-dev/regroup/member"
)

// worker consumes one partition for as long as its consumer owns it.
type worker struct {
	c     *Consumer
	owner queue.Owner
	ctx   context.Context // aborts the worker's database calls
	abort context.CancelFunc
	stop  chan struct{} // closed: finish the batch in hand and exit
	done  chan struct{} // closed when run returns
}

func (c *Consumer) startWorker(p member.Partition) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{
		c: c,
		owner: queue.Owner{DB: c.cfg.DB, Group: c.cfg.Group, Topic: c.cfg.Topic,
			Partition: p.Partition, Consumer: c.cfg.Name, Token: p.Token},
		ctx: ctx, abort: cancel, stop: make(chan struct{}), done: make(chan struct{}),
	}
	go w.run()
	return w
}

func (w *worker) run() {
	defer close(w.done)
	defer w.abort()
	var offset int64
	err := w.retry(func() (err error) {
		offset, err = w.owner.Claim(w.ctx)
		return err
	})
	if err != nil {
		w.failed("claim", err)
		return
	}
	w.c.cfg.Log.Printf("partition %d: claimed at offset %d, token %d", w.owner.Partition, offset, w.owner.Token)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		msgs, err := w.owner.Pull(w.ctx, offset, w.c.cfg.Batch)
		if err != nil {
			w.c.cfg.Log.Printf("partition %d: pull: %v (retrying)", w.owner.Partition, err)
		}
		if len(msgs) == 0 {
			select {
			case <-w.stop:
				return
			case <-time.After(w.c.cfg.Poll):
			}
			continue
		}
		if freeze := w.c.freeze.Swap(nil); freeze != nil {
			(*freeze)(w.owner.Partition, w.owner.Token, len(msgs))
		}
		b := w.process(offset, msgs)
		if err := w.retry(func() error { return w.owner.Commit(w.ctx, b) }); err != nil {
			w.failed("commit", err)
			return
		}
		w.c.processed.Add(int64(len(b.IDs)))
		offset = b.To()
	}
}

// process "handles" the messages: it spends Work per message.
func (w *worker) process(offset int64, msgs []queue.Message) queue.Batch {
	b := queue.Batch{From: offset, Started: time.Now()}
	for _, m := range msgs {
		b.IDs = append(b.IDs, m.ID)
	}
	if w.c.cfg.Work > 0 {
		time.Sleep(time.Duration(len(msgs)) * w.c.cfg.Work)
	}
	b.Finished = time.Now()
	return b
}

// retry runs op until it succeeds, is fenced, or the worker is aborted.
// Connection errors (a connection the server closed while this process was
// paused, a lock wait timeout) are retried every 200 ms.
func (w *worker) retry(op func() error) error {
	for {
		err := op()
		if err == nil || queue.IsFenced(err) || w.ctx.Err() != nil {
			return err
		}
		w.c.cfg.Log.Printf("partition %d: %v (retrying)", w.owner.Partition, err)
		select {
		case <-w.ctx.Done():
			return w.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (w *worker) failed(what string, err error) {
	if queue.IsFenced(err) {
		w.c.refused.Add(1)
		w.c.cfg.Log.Printf("partition %d: %s refused by the fence, stopping: %v", w.owner.Partition, what, err)
		return
	}
	w.c.cfg.Log.Printf("partition %d: %s aborted: %v", w.owner.Partition, what, err)
}
