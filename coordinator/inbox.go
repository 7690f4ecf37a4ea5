package coordinator

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/node"
)

// inbox queues the calls that wait for a tenure's node. RPC handlers push
// onto it without a lock and one goroutine (tenure.run) takes everything
// queued at once and hands it to the node in batches, under one
// acquisition of the node's lock per batch.
//
// A lock on this path was a convoy under load: with tens of thousands of
// calls waiting (a held heartbeat per member, and the probes of members
// whose answers were late), Go's mutex hands itself over in order and
// every handoff waits for its goroutine to be scheduled, so the node
// served a few thousand calls a second at a fraction of a core while
// members' leases ran out (bench/scale, 20,000 members: 58,156 heartbeats
// queued on the node's lock, 19,993 on a lock that only guarded an
// append, the node's own steps not in the CPU profile's top 40).
//
// The queue is a lock-free stack of posts: a push is a compare-and-swap, a
// take swaps the whole stack out and reverses it into arrival order. Only
// the push that finds the stack empty wakes the goroutine.
type inbox struct {
	top    atomic.Pointer[post]
	closed atomic.Bool
	wake   chan struct{} // capacity 1
}

// post is one entry of the inbox: a call for the node, or the id of a call
// whose caller gave up after the node took it (forget).
type post struct {
	next   *post
	call   queuedCall
	forget group.ReqID
}

// queuedCall is one call waiting for the node.
type queuedCall struct {
	ctx     context.Context
	arrived time.Time
	msg     node.Request
	ch      chan group.Reply
}

// batchSize bounds the calls stepped under one acquisition of the node's
// lock, so that the node's timers and store completions get their turn.
const batchSize = 256

// put queues c and reports whether it was queued (false once the tenure
// ended; a call that lost the race with the end is answered errEnded).
func (b *inbox) put(c queuedCall) bool {
	if b.closed.Load() {
		return false
	}
	b.push(&post{call: c})
	return true
}

// drop records that the caller of req gave up, so that the node's reply,
// if it ever comes, is not kept for it.
func (b *inbox) drop(req group.ReqID) { b.push(&post{forget: req}) }

func (b *inbox) push(p *post) {
	for {
		old := b.top.Load()
		p.next = old
		if b.top.CompareAndSwap(old, p) {
			if old == nil {
				select {
				case b.wake <- struct{}{}:
				default:
				}
			}
			break
		}
	}
	if b.closed.Load() {
		// The tenure ended while p was pushed: whatever close did not
		// take, nobody else will.
		endCalls(b.take())
	}
}

// take returns what was pushed, oldest first, leaving the inbox empty.
func (b *inbox) take() []*post {
	var posts []*post
	for p := b.top.Swap(nil); p != nil; p = p.next {
		posts = append(posts, p)
	}
	slices.Reverse(posts)
	return posts
}

// close refuses further calls and answers those still queued errEnded.
func (b *inbox) close() {
	b.closed.Store(true)
	endCalls(b.take())
}

// endCalls answers the calls among posts errEnded, so that their callers
// retry on the next tenure.
func endCalls(posts []*post) {
	for _, p := range posts {
		if p.call.ch != nil {
			p.call.ch <- group.Reply{Req: p.call.msg.Req, Err: errEnded}
		}
	}
}

// run hands the inbox's calls to the node until the tenure ends.
func (t *tenure) run() {
	for {
		select {
		case <-t.done:
			return
		case <-t.box.wake:
		}
		for posts := t.box.take(); len(posts) > 0; {
			n := min(len(posts), batchSize)
			t.stepPosts(posts[:n])
			posts = posts[n:]
		}
	}
}

// stepPosts steps the calls among posts through the node and forgets the
// waiters they name, under one acquisition of the node's lock. A call
// whose caller gave up while it was queued is not stepped: it would change
// nothing the caller learns of, and a member's lease counts only answered
// calls. A call queued when the tenure ended is answered errEnded, so that
// it is retried on the next tenure.
func (t *tenure) stepPosts(posts []*post) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, p := range posts {
		if t.ended.Load() {
			endCalls(posts[i:])
			return
		}
		c := p.call
		switch {
		case c.ch == nil:
			delete(t.waiters, p.forget)
		case c.ctx.Err() != nil:
		default:
			t.waiters[c.msg.Req] = c.ch
			t.stepQueued(c.msg, t.queued(c.arrived))
		}
	}
}
