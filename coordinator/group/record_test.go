package group_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/internal/scenario"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// storedMember is a member record as a coordinator writes it.
func storedMember(id, instance string, gen int32, parts ...int32) *storev1.MemberRecord {
	return &storev1.MemberRecord{
		MemberId: id, GroupInstanceId: instance, SessionTimeoutMs: 10000, RebalanceTimeoutMs: 30000,
		Protocols:            []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}}}},
		Assignment:           &regroupv1.Assignment{Partitions: []*regroupv1.TopicPartitions{{Topic: "orders", Partitions: parts}}},
		AssignmentGeneration: gen,
	}
}

// TestRestoreRefusesDamagedRecords restores records that no coordinator
// writes: each is refused with what is wrong, and the well-formed one
// they are made from is restored.
func TestRestoreRefusesDamagedRecords(t *testing.T) {
	good := &storev1.GroupRecord{
		GroupId: "g", Generation: 3, ProtocolName: "range", LeaderId: "a", State: regroupv1.GroupState_GROUP_STATE_STABLE,
		Topics:  []*regroupv1.Topic{{Name: "orders", Partitions: 4}},
		Members: []*storev1.MemberRecord{storedMember("a", "ia", 3, 0, 1), storedMember("b", "ib", 3, 2, 3)},
		Holds:   []*storev1.HoldRecord{{MemberId: "old", SessionTimeoutMs: 10000}},
	}
	registry := map[string]int32{"orders": 4}
	restore := func(rec *storev1.GroupRecord) error {
		_, _, err := group.Restore(rec, group.DefaultConfig(), &scenario.SeqIDs{}, registry, time.Unix(0, 0))
		return err
	}
	if err := restore(good); err != nil {
		t.Fatalf("the well-formed record: %v", err)
	}
	for _, c := range []struct {
		name, want string
		damage     func(*storev1.GroupRecord)
	}{
		{"double assignment", `partition orders/1 is assigned to both "a" and "b"`, func(r *storev1.GroupRecord) {
			r.Members[1].Assignment.Partitions[0].Partitions = []int32{1, 2, 3}
		}},
		{"shared instance id", `share instance id "ia"`, func(r *storev1.GroupRecord) { r.Members[1].GroupInstanceId = "ia" }},
		{"negative partition", "partition -1", func(r *storev1.GroupRecord) { r.Members[0].Assignment.Partitions[0].Partitions = []int32{-1} }},
		{"negative generation", "negative generation", func(r *storev1.GroupRecord) { r.Generation = -2 }},
		{"nameless topic", "topic with no name", func(r *storev1.GroupRecord) { r.Members[0].Assignment.Partitions[0].Topic = "" }},
		{"hold of nobody", "a hold names no member", func(r *storev1.GroupRecord) { r.Holds[0].MemberId = "" }},
		{"unknown leader", "not a member", func(r *storev1.GroupRecord) { r.LeaderId = "zz" }},
	} {
		rec := proto.Clone(good).(*storev1.GroupRecord)
		c.damage(rec)
		err := restore(rec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.want)
		}
	}
	// The same partition in assignments of different generations is not a
	// double claim: one of them is stale.
	stale := proto.Clone(good).(*storev1.GroupRecord)
	stale.Members[1].AssignmentGeneration = 2
	stale.Members[1].Assignment.Partitions[0].Partitions = []int32{1, 2, 3}
	if err := restore(stale); err != nil {
		t.Errorf("assignments of different generations: %v", err)
	}
}
