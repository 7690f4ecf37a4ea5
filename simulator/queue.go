package simulator

import (
	"google.golang.org/protobuf/proto"
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
	evGroupTick                   // a group's deadline (tok)
	evHold                        // a held reply is due (tok)
	evLeader                      // a new coordinator takes over
	evStart                       // a (re)started member process comes up
	evChurn                       // a churn event
	evStop                        // a deferred graceful stop
	evLiveness                    // the liveness deadline
)

// event is one thing that happens at a virtual time. Events at one time
// run in the order they were scheduled (seq).
type event struct {
	at   int64
	seq  uint64
	kind kind
	tok  uint64
	dur  int64 // a request's timeout
	proc *process
	node *node
	act  *actorState
	w    *waiter
	msg  proto.Message
	err  error
	idx  int // action index, or churn number
}

// queue is a min-heap of events by (at, seq).
type queue []event

func (q queue) less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}

func (q *queue) push(e event) {
	*q = append(*q, e)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *queue) pop() event {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = event{}
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

// at schedules e at time t (never before now).
func (s *sim) at(t int64, e event) {
	e.at = max(t, s.now)
	s.seq++
	e.seq = s.seq
	s.q.push(e)
}
