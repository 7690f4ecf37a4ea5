package node

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// topicOp is a change of the topic registry an administrator asked for:
// put a topic, or delete the one named del.
type topicOp struct {
	req group.ReqID
	put *regroupv1.Topic
	del string
}

// topicQueue runs the registry's changes one at a time, in order: each is
// stored before the groups see it and before it is answered.
type topicQueue struct {
	ops     []topicOp
	writing WriteID // the first op's write, or 0
	reread  bool    // a TopicsStored came while writing: read again after
	// finished counts the writes done (TopicWrites), whatever their
	// outcome.
	finished uint64
}

func (q *topicQueue) add(n *Node, op topicOp) {
	q.ops = append(q.ops, op)
	if len(q.ops) == 1 {
		q.start(n)
	}
}

// start issues the first op's write, answering at once the ops that change
// nothing or cannot apply.
func (q *topicQueue) start(n *Node) {
	for len(q.ops) > 0 {
		op := q.ops[0]
		switch {
		case op.put != nil && n.registry[op.put.GetName()] == op.put.GetPartitions():
			n.send(group.Reply{Req: op.req, Msg: &regroupv1.PutTopicResponse{PreviousPartitions: op.put.GetPartitions()}})
		case op.put == nil && !hasTopic(n.registry, op.del) && n.brokenTopics[op.del] == nil:
			n.send(group.Reply{Req: op.req, Err: regroup.Errorf(regroup.CodeUnknownTopic, "topic %q does not exist", op.del)})
		default:
			n.nextWrite++
			q.writing = n.nextWrite
			n.out.Writes = append(n.out.Writes, Write{ID: q.writing, Topic: op.put, DeleteTopic: op.del})
			return
		}
		q.ops = q.ops[1:]
	}
}

func hasTopic(reg map[string]int32, name string) bool {
	_, ok := reg[name]
	return ok
}

// done takes the outcome of the first op's write: on success the registry
// changes and every group sees it; then the next op starts.
func (q *topicQueue) done(n *Node, d WriteDone) {
	if q.writing == 0 || d.ID != q.writing {
		return
	}
	op := q.ops[0]
	q.ops, q.writing = q.ops[1:], 0
	q.finished++
	switch d.Outcome {
	case OK:
		reg := maps.Clone(n.registry)
		var resp *regroupv1.PutTopicResponse
		if op.put != nil {
			resp = &regroupv1.PutTopicResponse{PreviousPartitions: reg[op.put.GetName()]}
			reg[op.put.GetName()] = op.put.GetPartitions()
		} else {
			delete(reg, op.del)
		}
		rebalanced := n.setRegistry(reg)
		if op.put != nil {
			n.topicFixed(op.put.GetName())
		} else {
			n.topicFixed(op.del)
		}
		if resp != nil {
			resp.RebalancedGroups = rebalanced
			n.send(group.Reply{Req: op.req, Msg: resp})
		} else {
			n.send(group.Reply{Req: op.req, Msg: &regroupv1.DeleteTopicResponse{RebalancedGroups: rebalanced}})
		}
	case Fenced:
		n.send(group.Reply{Req: op.req, Err: regroup.Errorf(regroup.CodeNotCoordinator, "this coordinator is no longer the leader")})
		n.endWith("a topic write was fenced: another coordinator leads", nil)
		return
	default:
		n.fault("", fmt.Sprintf("writing the topic registry: %v (%v)", d.Outcome, d.Err))
		n.send(group.Reply{Req: op.req, Err: regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "the topic change could not be stored (%v); retry it", d.Outcome)})
	}
	q.start(n)
	if q.reread && q.writing == 0 {
		q.reread = false
		n.out.ReadTopics = true
	}
}

// stored applies the registry another coordinator stored (TopicsStored),
// or asks for it again once the node's own write is done, or at once if a
// write of its own was done after the read began (the read may be older).
func (q *topicQueue) stored(n *Node, e TopicsStored) {
	if q.writing != 0 {
		q.reread = true
		return
	}
	if e.Writes != q.finished {
		n.out.ReadTopics = true
		return
	}
	reg := map[string]int32{}
	var kept []string
	unusable := map[string]bool{}
	keep := func(name string) {
		if p, ok := n.registry[name]; ok {
			reg[name] = p
		}
		kept = append(kept, name)
		unusable[name] = true
	}
	for _, t := range e.Topics {
		if err := n.cfg.Group.ValidateTopic(t); err != nil {
			keep(t.GetName())
			continue
		}
		reg[t.GetName()] = t.GetPartitions()
	}
	for name := range e.Broken {
		keep(name)
	}
	if len(kept) > 0 {
		slices.Sort(kept)
		n.fault("", fmt.Sprintf("the stored records of topics %s cannot be used; they keep the partitions this coordinator knew until they are put again or deleted", strings.Join(kept, ", ")))
	}
	// A record broken when this node loaded it and now deleted or put
	// again: the groups it disabled are read again.
	for _, name := range slices.Sorted(maps.Keys(n.brokenTopics)) {
		if !unusable[name] {
			n.topicFixed(name)
		}
	}
	if maps.Equal(reg, n.registry) {
		return
	}
	old := n.registry
	n.setRegistry(reg)
	for name := range old {
		if _, ok := reg[name]; !ok {
			n.topicFixed(name)
		}
	}
	for name, p := range reg {
		if was, ok := old[name]; !ok || was != p {
			n.topicFixed(name)
		}
	}
}

// fail answers every queued op with err.
func (q *topicQueue) fail(n *Node, err error) {
	for _, op := range q.ops {
		n.send(group.Reply{Req: op.req, Err: err})
	}
	q.ops, q.writing = nil, 0
}

// setRegistry installs a new registry (never modified afterwards: groups
// keep it) and hands it to every group; it returns the groups that
// rebalance because of it, sorted.
func (n *Node) setRegistry(reg map[string]int32) []string {
	n.registry = reg
	var rebalanced []string
	for _, id := range slices.Sorted(maps.Keys(n.groups)) {
		e := n.groups[id]
		if e.g == nil || e.tomb != nil {
			continue
		}
		n.stepGroup(e, func(g *group.Group) group.Output {
			out, change := g.SetTopics(n.now, reg)
			if change != "" {
				rebalanced = append(rebalanced, id)
			}
			return out
		})
	}
	return rebalanced
}
