// Package storetest is the contract every store.Store implementation must
// meet. Each implementation's tests call Run.
package storetest

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup/coordinator/store"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Backend is what Run needs from an implementation: a fresh, empty backing
// state on each call, with a way to open successive leadership terms on it
// and to overwrite a group's or a topic's stored bytes with garbage.
type Backend struct {
	// Fresh returns empty backing state and its opener: every call of open
	// starts a new term, fencing the Stores of earlier terms.
	Fresh func(t *testing.T) (open func(t *testing.T) store.Store, corrupt Corrupt)
}

// Corrupt overwrites the stored bytes of group name, or of topic name when
// topic is set.
type Corrupt func(t *testing.T, topic bool, name string, b []byte)

func groupRecord(id string, gen int32) *storev1.GroupRecord {
	return &storev1.GroupRecord{
		GroupId:      id,
		Generation:   gen,
		ProtocolName: "cooperative-sticky",
		LeaderId:     id + "-m1",
		State:        regroupv1.GroupState_GROUP_STATE_STABLE,
		Members: []*storev1.MemberRecord{{
			MemberId:         id + "-m1",
			SessionTimeoutMs: 10000,
			Protocols:        []*regroupv1.Protocol{{Name: "cooperative-sticky", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}}}},
			Assignment:       &regroupv1.Assignment{Partitions: []*regroupv1.TopicPartitions{{Topic: "orders", Partitions: []int32{0, 1, 2}}}},
		}},
	}
}

// Run runs the contract against b.
func Run(t *testing.T, b Backend) {
	ctx := context.Background()

	t.Run("EmptyLoad", func(t *testing.T) {
		open, _ := b.Fresh(t)
		snap, err := open(t).Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Groups)+len(snap.Topics)+len(snap.Broken) != 0 {
			t.Fatalf("fresh store is not empty: %+v", snap)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		open, _ := b.Fresh(t)
		s := open(t)
		recs := []*storev1.GroupRecord{groupRecord("b", 3), groupRecord("a", 7), {GroupId: "dead", Generation: 9, State: regroupv1.GroupState_GROUP_STATE_DEAD}}
		for _, r := range recs {
			if err := s.PutGroup(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutGroup(ctx, groupRecord("a", 8)); err != nil {
			t.Fatal(err)
		}
		for _, tp := range []*regroupv1.Topic{{Name: "payments", Partitions: 4}, {Name: "orders", Partitions: 8}, {Name: "orders", Partitions: 16}} {
			if err := s.PutTopic(ctx, tp); err != nil {
				t.Fatal(err)
			}
		}
		snap, err := open(t).Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []*storev1.GroupRecord{groupRecord("a", 8), groupRecord("b", 3), recs[2]}
		if len(snap.Groups) != len(want) {
			t.Fatalf("loaded %d groups, want %d", len(snap.Groups), len(want))
		}
		for i := range want {
			if !proto.Equal(snap.Groups[i], want[i]) {
				t.Fatalf("group %d: got %v, want %v (groups must load in id order)", i, snap.Groups[i], want[i])
			}
		}
		wantTopics := []*regroupv1.Topic{{Name: "orders", Partitions: 16}, {Name: "payments", Partitions: 4}}
		if len(snap.Topics) != 2 || !proto.Equal(snap.Topics[0], wantTopics[0]) || !proto.Equal(snap.Topics[1], wantTopics[1]) {
			t.Fatalf("topics: got %v, want %v (in name order)", snap.Topics, wantTopics)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		open, _ := b.Fresh(t)
		s := open(t)
		for _, id := range []string{"a", "b"} {
			if err := s.PutGroup(ctx, groupRecord(id, 1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutTopic(ctx, &regroupv1.Topic{Name: "orders", Partitions: 2}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteGroup(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTopic(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTopic(ctx, "never-existed"); err != nil {
			t.Fatalf("deleting an absent topic: %v", err)
		}
		snap, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Groups) != 1 || snap.Groups[0].GetGroupId() != "b" || len(snap.Topics) != 0 {
			t.Fatalf("after deletes: %v %v", snap.Groups, snap.Topics)
		}
	})

	t.Run("FencedAfterNewTerm", func(t *testing.T) {
		open, _ := b.Fresh(t)
		old := open(t)
		if err := old.PutGroup(ctx, groupRecord("a", 1)); err != nil {
			t.Fatal(err)
		}
		next := open(t)
		for name, write := range map[string]func() error{
			"PutGroup":    func() error { return old.PutGroup(ctx, groupRecord("a", 2)) },
			"DeleteGroup": func() error { return old.DeleteGroup(ctx, "a") },
			"PutTopic":    func() error { return old.PutTopic(ctx, &regroupv1.Topic{Name: "x", Partitions: 1}) },
			"DeleteTopic": func() error { return old.DeleteTopic(ctx, "x") },
		} {
			if err := write(); !errors.Is(err, store.ErrFenced) {
				t.Errorf("%s by a deposed term: got %v, want store.ErrFenced", name, err)
			}
		}
		snap, err := next.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Groups) != 1 || snap.Groups[0].GetGeneration() != 1 {
			t.Fatalf("the new term must see the old term's writes and none after it: %v", snap.Groups)
		}
		if err := next.PutGroup(ctx, groupRecord("a", 2)); err != nil {
			t.Fatalf("the current term cannot write: %v", err)
		}
	})

	t.Run("BrokenRecordIsolated", func(t *testing.T) {
		open, corrupt := b.Fresh(t)
		s := open(t)
		for _, id := range []string{"good1", "bad", "good2"} {
			if err := s.PutGroup(ctx, groupRecord(id, 1)); err != nil {
				t.Fatal(err)
			}
		}
		corrupt(t, false, "bad", []byte("\xff\xff not protobuf"))
		snap, err := open(t).Load(ctx)
		if err != nil {
			t.Fatalf("one broken record must not fail the load: %v", err)
		}
		if len(snap.Groups) != 2 || snap.Groups[0].GetGroupId() != "good1" || snap.Groups[1].GetGroupId() != "good2" {
			t.Fatalf("good groups: %v", snap.Groups)
		}
		if snap.Broken["bad"] == nil {
			t.Fatalf("broken group not reported: %v", snap.Broken)
		}
	})

	t.Run("BrokenTopicIsolated", func(t *testing.T) {
		open, corrupt := b.Fresh(t)
		s := open(t)
		for _, name := range []string{"good", "bad", "renamed"} {
			if err := s.PutTopic(ctx, &regroupv1.Topic{Name: name, Partitions: 4}); err != nil {
				t.Fatal(err)
			}
		}
		corrupt(t, true, "bad", []byte("\xff\xff not protobuf"))
		other, err := proto.Marshal(&regroupv1.Topic{Name: "good", Partitions: 8})
		if err != nil {
			t.Fatal(err)
		}
		corrupt(t, true, "renamed", other)
		snap, err := open(t).Load(ctx)
		if err != nil {
			t.Fatalf("a broken topic must not fail the load: %v", err)
		}
		if len(snap.Topics) != 1 || snap.Topics[0].GetName() != "good" || snap.Topics[0].GetPartitions() != 4 {
			t.Fatalf("good topics: %v", snap.Topics)
		}
		if snap.BrokenTopics["bad"] == nil || snap.BrokenTopics["renamed"] == nil {
			t.Fatalf("broken topics not reported: %v", snap.BrokenTopics)
		}
	})
}
