package group

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// limitExceeded is the LIMIT_EXCEEDED refusal of a request past one of the
// coordinator's limits (Config); the message names the limit.
func limitExceeded(format string, args ...any) *regroup.Error {
	return regroup.Errorf(regroup.CodeLimitExceeded, format, args...)
}

// GroupLimitError is the refusal of a JoinGroup that would create a group
// past Config.MaxGroups.
func (c Config) GroupLimitError(id string) error {
	return limitExceeded("creating group %q would exceed this coordinator's limit of %d groups (--max-groups); retry later or use an existing group", id, c.MaxGroups)
}

// memberFootprint is what one member adds to a group's footprint (see
// Config.MaxGroupMetadataBytes): its protocols and its ids; its assignment
// is counted with the group's plan.
func memberFootprint(protocols []*regroupv1.Protocol, ids ...string) int {
	n := 0
	for _, p := range protocols {
		n += proto.Size(p)
	}
	for _, id := range ids {
		n += len(id)
	}
	return n
}

// footprint is m's memberFootprint.
func (m *member) footprint() int {
	return memberFootprint(m.protocols, m.id, m.instanceID, m.clientID, m.clientHost, m.secret)
}

// checkJoinBudget refuses a join that would take the group past its
// metadata budget: r's protocols replace those of old (nil for a new member).
func (g *Group) checkJoinBudget(old *member, r *regroupv1.JoinGroupRequest, host string) *regroup.Error {
	var grow int
	if old == nil {
		// The id to mint is its instance or client id and a UUID.
		inst, client := r.GetGroupInstanceId(), r.GetClientId()
		grow = memberFootprint(r.GetProtocols(), inst, client, host) + len(inst) + len(client) + mintedLength
	} else {
		grow = memberFootprint(r.GetProtocols(), old.id, old.instanceID, r.GetClientId(), host, old.secret) - old.protoBytes
	}
	after := g.protoBytes + g.assignBytes + grow
	if grow <= 0 || after <= g.cfg.MaxGroupMetadataBytes {
		return nil
	}
	return g.budgetError(fmt.Sprintf("this join's %d bytes of protocols", memberFootprint(r.GetProtocols())), after)
}

// mintedLength is what a new member's minted id adds to its footprint
// besides its prefix, and its secret: two UUIDs and a dash.
const mintedLength = 2*36 + 1

// checkPlanBudget refuses a leader's assignment that would take the group
// past its metadata budget.
func (g *Group) checkPlanBudget(plan []*regroupv1.MemberAssignment) *regroup.Error {
	size := 0
	for _, a := range plan {
		size += proto.Size(a.GetAssignment())
	}
	if after := g.protoBytes + size; after > g.cfg.MaxGroupMetadataBytes {
		return g.budgetError(fmt.Sprintf("the assignment's %d bytes", size), after)
	}
	return nil
}

func (g *Group) budgetError(what string, after int) *regroup.Error {
	return limitExceeded("%s would bring group %q to %d bytes of metadata (protocols, assignments and ids of all members); "+
		"the group metadata budget is %d bytes (--max-group-metadata-bytes): send less metadata, or split the group",
		what, g.id, after, g.cfg.MaxGroupMetadataBytes)
}

// recountAssignments sets the assignments' part of the footprint.
func (g *Group) recountAssignments() {
	g.assignBytes = 0
	for _, m := range g.order {
		g.assignBytes += proto.Size(m.assignment)
	}
}

// pendingLimitError refuses a first JoinGroup to a group with
// Config.MaxPendingMembers ids already pending.
func (g *Group) pendingLimitError() *regroup.Error {
	return limitExceeded("group %q has %d member ids waiting for their second JoinGroup, its limit (--max-pending-members); retry shortly",
		g.id, g.pending.len())
}

// Vacant reports whether the group holds nothing: it is Empty, with no
// member and no pending member id. A driver drops a group that a join
// created and that is vacant before anything of it was stored: a first
// JoinGroup, refused or answered MEMBER_ID_REQUIRED, leaves no group behind
// once its id expires.
func (g *Group) Vacant() bool {
	return g.state == Empty && len(g.members) == 0 && g.pending.len() == 0
}
