package simulator

import (
	"google.golang.org/protobuf/proto"

	cnode "github.com/regroup-dev/regroup/coordinator/node"
)

// kind says what an event does.
type kind uint8

const (
	evAction      kind = iota + 1 // a scenario action (act)
	evToCoord                     // a request reaches the coordinator
	evToMember                    // a reply reaches a member process
	evMemberTimer                 // a member process's timer (tok)
	evCallbackEnd                 // the running callback returns (tok)
	evResume                      // a pause ends (tok)
	evHeal                        // a partition ends (tok)
	evCoordTick                   // a leader's deadline (lead, tok)
	evWriteDone                   // a store write completes (lead, write, outcome)
	evLoadDone                    // a store read completes (lead, name)
	evCoordWake                   // a frozen leader's process wakes (lead)
	evTopic                       // an operator retries a topic change (name)
	evStoreHeal                   // a store fault ends
	evLeader                      // a new coordinator takes over
	evStart                       // a (re)started member process comes up
	evChurn                       // a churn event
	evStop                        // a deferred graceful stop
	evLiveness                    // the liveness deadline
	evSend                        // a leader's SyncGroup leaves once its assignor is done (tok: id, msg, dur: timeout)
)

// event is one thing that happens at a virtual time. Events at one time
// run in the order they were scheduled (the queue keeps both).
type event struct {
	kind    kind
	tok     uint64
	dur     int64 // a request's timeout
	proc    *process
	node    *node
	lead    *leader
	write   cnode.Write
	outcome cnode.Outcome
	name    string
	msg     proto.Message
	err     error
	idx     int // action index, or churn number
}

// queue is a min-heap of events by (at, seq). The heap holds small
// entries; the events live in a slab whose slots are reused.
type queue struct {
	heap []entry
	slab []event
	free []int32
}

type entry struct {
	at   int64
	seq  uint64
	slot int32
}

func (q *queue) len() int { return len(q.heap) }

func less(a, b entry) bool { return a.at < b.at || a.at == b.at && a.seq < b.seq }

// push adds e at time at, with sequence number seq.
func (q *queue) push(at int64, seq uint64, e event) {
	var slot int32
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
		q.slab[slot] = e
	} else {
		slot = int32(len(q.slab))
		q.slab = append(q.slab, e)
	}
	h := append(q.heap, entry{at: at, seq: seq, slot: slot})
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	q.heap = h
}

// peek returns the time of the next event.
func (q *queue) peek() int64 { return q.heap[0].at }

// pop removes the next event and returns it with its time.
func (q *queue) pop() (int64, event) {
	h := q.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && less(h[r], h[l]) {
			m = r
		}
		if !less(h[m], h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	q.heap = h
	e := q.slab[top.slot]
	q.slab[top.slot] = event{}
	q.free = append(q.free, top.slot)
	return top.at, e
}

// at schedules e at time t (never before now).
func (s *sim) at(t int64, e event) {
	s.seq++
	s.q.push(max(t, s.now), s.seq, e)
}
