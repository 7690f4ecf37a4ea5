package group_test

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup/coordinator/group"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func marshal(rec *storev1.GroupRecord) ([]byte, error) { return proto.Marshal(rec) }

func unmarshal(b []byte) (*storev1.GroupRecord, error) {
	rec := &storev1.GroupRecord{}
	return rec, proto.Unmarshal(b, rec)
}

// invariants checks, after every step, what must hold whatever the inputs:
// generations never decrease; every JoinGroup answer of a generation names
// the same leader, and only the leader gets the member list; no partition is
// delivered to two members of the group in one generation; no request is
// answered twice (a held answer may be replaced until a final one).
type invariants struct {
	generation int32
	leaders    map[int32]string
	delivered  map[string]string // "gen/topic/partition" -> member
	answered   map[group.ReqID]bool
	held       map[group.ReqID]bool
	syncs      map[group.ReqID]string // SyncGroup request -> its member id
}

// syncSent notes which member sent SyncGroup request req.
func (v *invariants) syncSent(req group.ReqID, member string) { v.syncs[req] = member }

func newInvariants() *invariants {
	return &invariants{
		leaders:   map[int32]string{},
		delivered: map[string]string{},
		answered:  map[group.ReqID]bool{},
		held:      map[group.ReqID]bool{},
		syncs:     map[group.ReqID]string{},
	}
}

func (v *invariants) check(t testing.TB, g *group.Group, out group.Output) {
	t.Helper()
	if err := v.verify(g, out); err != nil {
		t.Fatal(err)
	}
}

func (v *invariants) verify(g *group.Group, out group.Output) error {
	if g.Generation() < v.generation {
		return fmt.Errorf("generation went from %d down to %d", v.generation, g.Generation())
	}
	v.generation = g.Generation()
	members := map[string]bool{}
	for _, m := range g.Describe().GetMembers() {
		members[m.GetMemberId()] = true
	}
	for _, r := range out.Replies {
		if v.answered[r.Req] && !v.held[r.Req] {
			return fmt.Errorf("request %d answered twice", r.Req)
		}
		// A held answer may be replaced, by another held one or by a
		// final one.
		v.held[r.Req] = !r.HoldUntil.IsZero()
		v.answered[r.Req] = true
		switch m := r.Msg.(type) {
		case *regroupv1.JoinGroupResponse:
			if l, ok := v.leaders[m.GetGeneration()]; ok && l != m.GetLeaderId() {
				// A static leader replaced without a rebalance hands the
				// leadership to its successor: the old one must be gone.
				if members[l] {
					return fmt.Errorf("generation %d has two leaders: %s and %s", m.GetGeneration(), l, m.GetLeaderId())
				}
			}
			v.leaders[m.GetGeneration()] = m.GetLeaderId()
			if len(m.GetMembers()) > 0 && m.GetMemberId() != m.GetLeaderId() {
				return fmt.Errorf("follower %s received the member list", m.GetMemberId())
			}
		case *regroupv1.SyncGroupResponse:
			owner, ok := v.syncs[r.Req]
			if !ok {
				return fmt.Errorf("sync reply to request %d, which was not a SyncGroup", r.Req)
			}
			for _, tp := range m.GetAssignment().GetPartitions() {
				for _, p := range tp.GetPartitions() {
					k := fmt.Sprintf("%d/%s/%d", g.Generation(), tp.GetTopic(), p)
					if prev, ok := v.delivered[k]; ok && prev != owner && members[prev] {
						return fmt.Errorf("partition %s/%d delivered to both %s and %s in generation %d", tp.GetTopic(), p, prev, owner, g.Generation())
					}
					v.delivered[k] = owner
				}
			}
		}
	}
	return nil
}
