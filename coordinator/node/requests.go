package node

import (
	"fmt"
	"strconv"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// request routes a call to its group, or to the topic registry.
func (n *Node) request(r Request) {
	c := group.Caller{Host: r.Host, Identity: r.Identity}
	switch m := r.Msg.(type) {
	case *regroupv1.JoinGroupRequest:
		if m.GetMemberId() == "" {
			if err := n.newcomerRefusal(m.GetGroupId(), m.GetGroupInstanceId()); err != nil {
				n.fail(r, err)
				return
			}
		}
		n.groupCall(r, m.GetGroupId(), m.GetMemberId() == "", func(g *group.Group) group.Output {
			return g.Join(n.now, r.Req, c, m)
		})
	case *regroupv1.SyncGroupRequest:
		n.groupCall(r, m.GetGroupId(), false, func(g *group.Group) group.Output { return g.Sync(n.now, r.Req, c, m) })
	case *regroupv1.HeartbeatRequest:
		n.groupCall(r, m.GetGroupId(), false, func(g *group.Group) group.Output { return g.Heartbeat(n.now, r.Req, c, m) })
	case *regroupv1.LeaveGroupRequest:
		n.groupCall(r, m.GetGroupId(), false, func(g *group.Group) group.Output { return g.Leave(n.now, r.Req, c, m) })
	case *regroupv1.ReconcileRequest:
		join := m.GetMemberId() == "" && m.GetMemberEpoch() == 0
		if join {
			if err := n.newcomerRefusal(m.GetGroupId(), m.GetGroupInstanceId()); err != nil {
				n.fail(r, err)
				return
			}
		}
		n.groupCall(r, m.GetGroupId(), join, func(g *group.Group) group.Output { return g.Reconcile(n.now, r.Req, c, m) })
	case *regroupv1.RemoveMembersRequest:
		n.removeMembers(r, m)
	case *regroupv1.DeleteGroupRequest:
		n.deleteGroup(r, m)
	case *regroupv1.PutTopicRequest:
		if err := n.cfg.Group.ValidateTopic(m.GetTopic()); err != nil {
			n.fail(r, err)
			return
		}
		n.topics.add(n, topicOp{req: r.Req, put: m.GetTopic()})
	case *regroupv1.DeleteTopicRequest:
		if err := n.cfg.Group.ValidateTopic(&regroupv1.Topic{Name: m.GetName(), Partitions: 1}); err != nil {
			n.fail(r, err)
			return
		}
		n.topics.add(n, topicOp{req: r.Req, del: m.GetName()})
	default:
		n.fail(r, regroup.Errorf(regroup.CodeInvalidRequest, "the coordinator does not serve %T", r.Msg))
	}
}

func (n *Node) fail(r Request, err error) { n.send(group.Reply{Req: r.Req, Err: err}) }

// groupCall steps group id with a member's call. A valid JoinGroup with an
// empty member id creates a missing group (continuing its tombstone's
// generations and holds); other calls for a missing group are answered as
// group.AnswerUnknownGroup says.
func (n *Node) groupCall(r Request, id string, create bool, step func(g *group.Group) group.Output) {
	if err := group.ValidateGroupID(id); err != nil {
		n.fail(r, err)
		return
	}
	e, err := n.lookup(id)
	if err != nil {
		n.fail(r, err)
		return
	}
	if e == nil {
		if !create {
			reply := group.AnswerUnknownGroup(n.cfg.Group, r.Msg)
			reply.Req = r.Req
			n.send(reply)
			return
		}
		if err := validateFirst(n.cfg.Group, r.Msg); err != nil {
			n.fail(r, err)
			return
		}
		if e, err = n.create(id); err != nil {
			n.fail(r, err)
			return
		}
	} else {
		n.noteTransit(e.g, r.Msg)
		if !leaving(r.Msg) && e.g.Forming() {
			if err := n.load.Refusal(n.now); err != nil {
				n.fail(r, err) // a group never formed: new work, shed
				return
			}
		}
	}
	if !n.stepGroup(e, step) {
		n.fail(r, regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "internal error in group %q; it is reloaded from the store: retry shortly", id))
	}
}

// newcomerRefusal returns why the node refuses a call that would add a
// member to group id (a JoinGroup with an empty member id, or a Reconcile
// join; inst is its static instance id), or nil. New members are new
// work: shed while the node is overloaded (Overload), and refused while
// its groups and those of the process's other nodes (Input.Elsewhere) hold
// group.Config.MaxMembers, an operator's cap at what one coordinator
// serves, so that load beyond it waits instead of growing
// until the coordinator is overloaded: shedding reacts once a queue has
// formed, and the members it let in meanwhile are members it must keep.
// A static member that takes its own place adds nobody and is not capped.
// The refusal is COORDINATOR_OVERLOADED with a back-off hint of one
// interval, which a newcomer doubles with every refusal in a row
// (member/fsm).
func (n *Node) newcomerRefusal(id, inst string) error {
	if err := n.load.Refusal(n.now); err != nil {
		return err
	}
	limit := n.cfg.Group.MaxMembers
	if limit <= 0 || n.admitted+n.elsewhere.Members < limit {
		return nil
	}
	if e := n.groups[id]; inst != "" && e != nil && e.g != nil && e.g.HasInstance(inst) {
		return nil
	}
	hint := n.load.Interval()
	return regroup.Errorf(regroup.CodeCoordinatorOverloaded,
		"the coordinator serves its limit of %d members (--max-members) and takes no new ones now; retry in %v",
		limit, hint).With(regroup.MetaRetryAfterMs, strconv.FormatInt(hint.Milliseconds(), 10))
}

// noteTransit gives the load meter the transit a held call of a member of
// g reports (see Overload). Only members' reports count: a call for
// another group, or from a process that is not a member, says nothing of
// the coordinator's members.
func (n *Node) noteTransit(g *group.Group, msg any) {
	var member string
	var ms int64
	switch m := msg.(type) {
	case *regroupv1.HeartbeatRequest:
		member, ms = m.GetMemberId(), m.GetTransitMs()
	case *regroupv1.ReconcileRequest:
		member, ms = m.GetMemberId(), m.GetTransitMs()
	default:
		return
	}
	if ms > 0 && member != "" && g.HasMember(member) {
		n.load.ObserveTransit(n.now, time.Duration(ms)*time.Millisecond)
	}
}

// leaving reports whether msg leaves a group, which an overloaded node
// never sheds: it takes work off it.
func leaving(msg any) bool {
	switch m := msg.(type) {
	case *regroupv1.LeaveGroupRequest:
		return true
	case *regroupv1.ReconcileRequest:
		return m.GetMemberEpoch() < 0
	}
	return false
}

// validateFirst checks the call that would create a group: a JoinGroup or
// a Reconcile join.
func validateFirst(cfg group.Config, msg any) error {
	if m, ok := msg.(*regroupv1.ReconcileRequest); ok {
		return cfg.ValidateReconcile(m)
	}
	return cfg.ValidateJoin(msg.(*regroupv1.JoinGroupRequest))
}

// lookup returns a group's entry, nil if the node has none, or the error
// that answers calls for a group that cannot take them now.
func (n *Node) lookup(id string) (*entry, error) {
	if err := n.broken[id]; err != nil {
		return nil, n.brokenError(id, err)
	}
	e := n.groups[id]
	switch {
	case e == nil:
		return nil, nil
	case e.loading:
		return nil, n.loadingError(id)
	case e.failing:
		return nil, regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "the record of group %q could not be stored; retry shortly", id)
	case e.tomb != nil:
		return nil, regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "group %q is being deleted; retry shortly", id)
	}
	return e, nil
}

func (n *Node) brokenError(id string, err error) error {
	return regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "group %q is unavailable: %v", id, err)
}

func (n *Node) loadingError(id string) error {
	return regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "group %q is being reloaded from the store; retry shortly", id)
}

// create adds a new Empty group, continuing its tombstone if it has one,
// unless the coordinator serves as many groups as it may.
func (n *Node) create(id string) (*entry, error) {
	if limit := n.cfg.Group.MaxGroups; limit > 0 && len(n.groups)+n.elsewhere.Groups >= limit {
		return nil, n.cfg.Group.GroupLimitError(id)
	}
	tomb := n.tombstones[id]
	if tomb == nil {
		e := n.add(id, group.New(id, n.cfg.Group, n.cfg.IDs, n.registry, n.now))
		e.created = true
		return e, nil
	}
	g, out, err := group.Restore(tomb, n.cfg.Group, n.cfg.IDs, n.registry, n.now)
	if err != nil {
		n.broken[id] = err
		n.fault(id, fmt.Sprintf("the tombstone of group %s cannot be restored: %v", id, err))
		return nil, regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "group %q is unavailable: its stored tombstone is unusable (%v); an operator must fix or delete the record", id, err)
	}
	delete(n.tombstones, id)
	e := n.add(id, g)
	e.created, e.origin = true, tomb
	n.after(e, out)
	return e, nil
}

// existing returns the entry of a group an Admin call names, or the error
// to answer it with.
func (n *Node) existing(id string) (*entry, error) {
	if err := group.ValidateGroupID(id); err != nil {
		return nil, err
	}
	e, err := n.lookup(id)
	if err == nil && e == nil {
		err = regroup.Errorf(regroup.CodeUnknownGroup, "group %q does not exist", id)
	}
	return e, err
}

// removeMembers removes static members on an administrator's request: a
// LeaveGroup by instance id, which keeps what the members may still hold
// until their leases end.
func (n *Node) removeMembers(r Request, m *regroupv1.RemoveMembersRequest) {
	e, err := n.existing(m.GetGroupId())
	if err != nil {
		n.fail(r, err)
		return
	}
	leave := &regroupv1.LeaveGroupRequest{GroupId: m.GetGroupId()}
	for _, inst := range m.GetGroupInstanceIds() {
		if inst == "" {
			n.fail(r, regroup.Errorf(regroup.CodeInvalidRequest, "group_instance_ids: an instance id is empty").With(regroup.MetaField, "group_instance_ids"))
			return
		}
		leave.Members = append(leave.Members, &regroupv1.LeaveMember{GroupInstanceId: inst, Reason: m.GetReason()})
	}
	n.stepGroup(e, func(g *group.Group) group.Output {
		out := g.Leave(n.now, r.Req, group.Caller{Host: r.Host, Identity: r.Identity, Admin: true}, leave)
		for i, reply := range out.Replies {
			if resp, ok := reply.Msg.(*regroupv1.LeaveGroupResponse); ok && reply.Req == r.Req {
				out.Replies[i].Msg = &regroupv1.RemoveMembersResponse{Members: resp.GetMembers()}
			}
		}
		return out
	})
}

// deleteGroup deletes an Empty group: its record becomes a tombstone that
// keeps its generation and its holds.
func (n *Node) deleteGroup(r Request, m *regroupv1.DeleteGroupRequest) {
	e, err := n.existing(m.GetGroupId())
	if err != nil {
		n.fail(r, err)
		return
	}
	n.stepGroup(e, func(g *group.Group) group.Output {
		out, err := g.Delete(n.now)
		if err != nil {
			out.Replies = append(out.Replies, group.Reply{Req: r.Req, Err: err})
		} else {
			out.Replies = append(out.Replies, group.Reply{Req: r.Req, Msg: &regroupv1.DeleteGroupResponse{}})
		}
		return out
	})
}
