package node

import (
	"fmt"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
)

// fault reports a handled failure to the driver.
func (n *Node) fault(id, detail string) {
	n.out.Faults = append(n.out.Faults, Fault{Group: id, Detail: detail})
}

// flush writes e's record if it has changes the store does not hold and no
// write of it is in flight; while e is failing, only a retry writes.
func (n *Node) flush(e *entry, retry bool) {
	if e.writing != 0 || e.loading || (e.failing && !retry) || e.durable >= e.version {
		return
	}
	n.nextWrite++
	e.writing, e.writingVersion = n.nextWrite, e.version
	n.writes[e.writing] = e
	rec := e.tomb
	if rec == nil {
		rec = e.g.Record()
	}
	n.out.Writes = append(n.out.Writes, Write{ID: e.writing, Group: rec})
}

// writeDone takes the outcome of a write.
func (n *Node) writeDone(d WriteDone) {
	if e, ok := n.writes[d.ID]; ok {
		delete(n.writes, d.ID)
		n.groupWritten(e, d)
		return
	}
	n.topics.done(n, d)
}

// groupWritten takes the outcome of a write of e's record. On success the
// replies that waited for it leave. On failure (or no answer) the group
// stays in memory as it is, ahead of the store: the replies that waited are
// answered COORDINATOR_NOT_AVAILABLE (as if lost on the network: they
// renewed nobody's lease), the group refuses calls and is not ticked, and
// the write is retried until it succeeds.
func (n *Node) groupWritten(e *entry, d WriteDone) {
	e.writing = 0
	switch d.Outcome {
	case Fenced:
		n.endWith("a write was fenced: another coordinator leads", nil)
		return
	case OK:
		e.durable = e.writingVersion
		e.failing, e.failures = false, 0
		kept := e.withheld[:0]
		for _, w := range e.withheld {
			if w.need <= e.durable {
				n.send(w.reply)
			} else {
				kept = append(kept, w)
			}
		}
		clear(e.withheld[len(kept):])
		e.withheld = kept
		if e.tomb != nil && e.durable >= e.version {
			n.tombstones[e.id] = e.tomb
			n.forget(e)
			return
		}
		if e.loading {
			n.out.Loads = append(n.out.Loads, e.id)
		} else {
			n.flush(e, false)
		}
	default:
		e.failures++
		e.failing = true
		e.retryAt = n.now.Add(retryDelay(e.failures))
		n.fault(e.id, fmt.Sprintf("writing the record of group %s: %v (%v); the group refuses calls until a retry succeeds, in %v", e.id, d.Outcome, d.Err, retryDelay(e.failures)))
		err := regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "the record of group %q could not be stored; retry shortly", e.id)
		for _, w := range e.withheld {
			n.send(group.Reply{Req: w.reply.Req, Err: err})
		}
		e.withheld = nil
	}
	n.arm(e)
}

// reload drops e's group after a bug in its state machine and reads it
// again from the store, once no write of it is in flight. Meanwhile the
// group refuses every call, and no join creates it afresh.
func (n *Node) reload(e *entry, why string) {
	n.fault(e.id, why+"; the group is reloaded from the store")
	err := regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "internal error in group %q; it is reloaded from the store: retry shortly", e.id)
	for _, w := range e.withheld {
		n.send(group.Reply{Req: w.reply.Req, Err: err})
	}
	e.withheld = nil
	n.abort(e, err)
	e.g, e.loading, e.failing, e.tomb = nil, true, false, nil
	n.arm(e)
	if e.writing == 0 {
		n.out.Loads = append(n.out.Loads, e.id)
	}
}

// loadDone takes the stored record of a group being reloaded.
func (n *Node) loadDone(d LoadDone) {
	e := n.groups[d.Group]
	if e == nil || !e.loading {
		return
	}
	rec := d.Record
	switch {
	case d.Outcome == Fenced:
		n.endWith("a read was fenced: another coordinator leads", nil)
		return
	case d.Outcome != OK:
		e.failures++
		e.failing = true
		e.retryAt = n.now.Add(retryDelay(e.failures))
		n.fault(e.id, fmt.Sprintf("reloading group %s: %v (%v); retrying in %v", e.id, d.Outcome, d.Err, retryDelay(e.failures)))
		n.arm(e)
		return
	case d.Err != nil:
		n.broken[e.id] = d.Err
		n.fault(e.id, fmt.Sprintf("the stored record of group %s is unusable: %v; the group is refused until it is fixed or deleted", e.id, d.Err))
		n.forget(e)
		return
	case rec == nil:
		n.forget(e)
		return
	case isDead(rec):
		n.tombstones[e.id] = rec
		n.forget(e)
		return
	case n.usesBrokenTopic(rec) != "":
		n.forget(e)
		n.breakForTopic(e.id, n.usesBrokenTopic(rec))
		n.fault(e.id, n.broken[e.id].Error())
		return
	}
	g, out, err := group.Restore(rec, n.cfg.Group, n.cfg.IDs, n.registry, n.now)
	if err != nil {
		err = n.brokenRecord(rec, err)
		n.broken[e.id] = err
		n.fault(e.id, fmt.Sprintf("the stored record of group %s is inconsistent: %v; the group is refused until it is fixed or deleted", e.id, err))
		n.forget(e)
		return
	}
	e.g, e.loading, e.failing, e.failures = g, false, false, 0
	e.durable = e.version
	n.after(e, out)
}
