package member

import (
	"context"
	"sync"
	"time"

	"github.com/regroup-dev/regroup/member/fsm"
)

// callbackRunner calls the Listener one callback at a time, in order, on
// its own goroutine, and reports each end to the run loop.
type callbackRunner struct {
	listener Listener
	answers  chan<- answer
	life     context.Context

	mu    sync.Mutex
	cond  *sync.Cond
	queue []fsm.Callback
	busy  bool
	quit  bool
	idle  chan struct{}
}

func newCallbackRunner(life context.Context, l Listener, answers chan<- answer) *callbackRunner {
	r := &callbackRunner{listener: l, answers: answers, life: life}
	r.cond = sync.NewCond(&r.mu)
	go r.loop()
	return r
}

func (r *callbackRunner) enqueue(c fsm.Callback) {
	r.mu.Lock()
	r.queue = append(r.queue, c)
	r.mu.Unlock()
	r.cond.Signal()
}

func (r *callbackRunner) loop() {
	for {
		r.mu.Lock()
		for len(r.queue) == 0 && !r.quit {
			r.busy = false
			if r.idle != nil {
				close(r.idle)
				r.idle = nil
			}
			r.cond.Wait()
		}
		if r.quit {
			r.mu.Unlock()
			return
		}
		c := r.queue[0]
		r.queue = r.queue[1:]
		r.busy = true
		r.mu.Unlock()
		r.run(c)
		select {
		case r.answers <- answer{id: c.ID, callback: true}:
		case <-r.life.Done():
		}
	}
}

func (r *callbackRunner) run(c fsm.Callback) {
	ctx, cancel := context.WithDeadline(context.Background(), c.Deadline)
	defer cancel()
	switch c.Kind {
	case fsm.Assigned:
		r.listener.OnAssigned(ctx, c.Partitions)
	case fsm.Revoked:
		r.listener.OnRevoked(ctx, c.Partitions)
	case fsm.Lost:
		r.listener.OnLost(ctx, c.Partitions)
	}
}

// drain waits, at most for limit, until every queued callback has run.
func (r *callbackRunner) drain(limit time.Duration) {
	r.mu.Lock()
	if !r.busy && len(r.queue) == 0 {
		r.mu.Unlock()
		return
	}
	if r.idle == nil {
		r.idle = make(chan struct{})
	}
	idle := r.idle
	r.mu.Unlock()
	select {
	case <-idle:
	case <-time.After(limit):
	}
}

func (r *callbackRunner) stop() {
	r.mu.Lock()
	r.quit = true
	r.mu.Unlock()
	r.cond.Broadcast()
}
