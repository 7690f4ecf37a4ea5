package coordinator

import (
	"context"
	"time"

	"github.com/regroup-dev/regroup/coordinator/node"
	"github.com/regroup-dev/regroup/coordinator/store"
)

// The topic registry is shared by every coordinator that leads groups of
// the store (the leaders of its shards): a tenure whose store says so
// (store.TopicWatcher) watches the registry and gives the node what it
// reads after every change (node.TopicsStored), one read at a time so
// that an older read never follows a newer one.

// topicReadRetry is how long a tenure waits to read the registry again
// after a read failed.
const topicReadRetry = 200 * time.Millisecond

// followTopics starts following the registry of w for the tenure's life.
func (t *tenure) followTopics(w store.TopicWatcher) {
	t.topicReads = make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-t.done
		cancel()
	}()
	go w.WatchTopics(ctx, t.wantTopics)
	go t.readTopics(ctx, w)
}

// wantTopics asks for a read of the registry; asks made while one is
// pending make one read.
func (t *tenure) wantTopics() {
	select {
	case t.topicReads <- struct{}{}:
	default:
	}
}

// readTopics reads the registry whenever asked, and steps the node with
// it, until ctx ends.
func (t *tenure) readTopics(ctx context.Context, w store.TopicWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.topicReads:
		}
		t.mu.Lock()
		writes := t.node.TopicWrites()
		t.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, t.s.cfg.WriteTimeout)
		topics, broken, err := w.LoadTopics(rctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				t.s.log.Warn("cannot read the topic registry to follow other coordinators' changes; retrying", "error", err, "retry_in", topicReadRetry)
				time.AfterFunc(topicReadRetry, t.wantTopics)
			}
			continue
		}
		t.mu.Lock()
		if !t.ended.Load() {
			t.step(node.TopicsStored{Writes: writes, Topics: topics, Broken: broken})
		}
		t.mu.Unlock()
	}
}
