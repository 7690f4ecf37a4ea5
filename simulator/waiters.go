package simulator

import "github.com/regroup-dev/regroup/coordinator/group"

// waiterTable maps request ids, which the coordinator hands out in
// increasing order, to their waiters: a window of slots from the oldest
// request still waiting, in the order of the ids.
type waiterTable struct {
	base  group.ReqID // the request id of slots[0]
	slots []*waiter   // nil: answered
}

// get returns the waiter of req, or nil.
func (t *waiterTable) get(req group.ReqID) *waiter {
	if req < t.base || req-t.base >= group.ReqID(len(t.slots)) {
		return nil
	}
	return t.slots[req-t.base]
}

// add records w as the waiter of req, a larger id than any added before.
func (t *waiterTable) add(req group.ReqID, w *waiter) {
	if len(t.slots) == 0 {
		t.base = req
	}
	for t.base+group.ReqID(len(t.slots)) < req {
		t.slots = append(t.slots, nil)
	}
	t.slots = append(t.slots, w)
}

// remove forgets the waiter of req, and the answered ones before the
// oldest still waiting.
func (t *waiterTable) remove(req group.ReqID) {
	if t.get(req) == nil {
		return
	}
	t.slots[req-t.base] = nil
	i := 0
	for i < len(t.slots) && t.slots[i] == nil {
		i++
	}
	t.slots = t.slots[i:]
	t.base += group.ReqID(i)
}

// all returns the waiters, by request id.
func (t *waiterTable) all() []*waiter {
	var ws []*waiter
	for _, w := range t.slots {
		if w != nil {
			ws = append(ws, w)
		}
	}
	return ws
}
