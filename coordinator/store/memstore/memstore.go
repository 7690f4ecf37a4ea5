// Package memstore is an in-memory store.Store. It keeps records as encoded
// protobuf, as a real store does, so that a coordinator reloading from it
// sees exactly what was written. Leadership terms are fenced like etcd's:
// Open starts a term, and a Store from an earlier term fails its writes
// with store.ErrFenced.
package memstore

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup/coordinator/store"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Data is the shared state behind the Stores of successive terms. The zero
// value is empty and ready to use.
type Data struct {
	mu     sync.Mutex
	term   uint64
	groups map[string][]byte
	topics map[string][]byte
}

// Open starts a new leadership term and returns its Store. Stores of earlier
// terms are fenced from now on.
func (d *Data) Open() *Store {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.term++
	return &Store{d: d, term: d.term}
}

// Corrupt replaces the stored bytes of group name, or of topic name when
// topic is set, for tests of broken records.
func (d *Data) Corrupt(topic bool, name string, b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.groups == nil {
		d.groups, d.topics = map[string][]byte{}, map[string][]byte{}
	}
	if topic {
		d.topics[name] = b
		return
	}
	d.groups[name] = b
}

// Store is one term's view of Data.
type Store struct {
	d    *Data
	term uint64
}

// New returns a Store over fresh Data.
func New() *Store { return (&Data{}).Open() }

var _ store.Store = (*Store)(nil)

func (s *Store) lock() error {
	s.d.mu.Lock()
	if s.d.term != s.term {
		s.d.mu.Unlock()
		return store.ErrFenced
	}
	if s.d.groups == nil {
		s.d.groups, s.d.topics = map[string][]byte{}, map[string][]byte{}
	}
	return nil
}

// Load implements store.Store.
func (s *Store) Load(ctx context.Context) (*store.Snapshot, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.d.mu.Unlock()
	snap := &store.Snapshot{Broken: map[string]error{}, BrokenTopics: map[string]error{}, GroupKeys: "memory:groups/", TopicKeys: "memory:topics/"}
	ids := make([]string, 0, len(s.d.groups))
	for id := range s.d.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		rec := &storev1.GroupRecord{}
		if err := proto.Unmarshal(s.d.groups[id], rec); err != nil || rec.GetGroupId() != id {
			if err == nil {
				err = fmt.Errorf("record names group %q", rec.GetGroupId())
			}
			snap.Broken[id] = fmt.Errorf("regroup: group %q: the stored record cannot be decoded (%w); delete it to serve the group again", id, err)
			continue
		}
		snap.Groups = append(snap.Groups, rec)
	}
	names := make([]string, 0, len(s.d.topics))
	for n := range s.d.topics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := &regroupv1.Topic{}
		if err := proto.Unmarshal(s.d.topics[n], t); err != nil || t.GetName() != n {
			if err == nil {
				err = fmt.Errorf("record names topic %q", t.GetName())
			}
			snap.BrokenTopics[n] = fmt.Errorf("regroup: topic %q: the stored record cannot be decoded (%w); put the topic again or delete it", n, err)
			continue
		}
		snap.Topics = append(snap.Topics, t)
	}
	return snap, nil
}

// PutGroup implements store.Store.
func (s *Store) PutGroup(ctx context.Context, rec *storev1.GroupRecord) error {
	b, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.d.mu.Unlock()
	s.d.groups[rec.GetGroupId()] = b
	return nil
}

// DeleteGroup implements store.Store.
func (s *Store) DeleteGroup(ctx context.Context, groupID string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.d.mu.Unlock()
	delete(s.d.groups, groupID)
	return nil
}

// PutTopic implements store.Store.
func (s *Store) PutTopic(ctx context.Context, t *regroupv1.Topic) error {
	b, err := proto.Marshal(t)
	if err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.d.mu.Unlock()
	s.d.topics[t.GetName()] = b
	return nil
}

// DeleteTopic implements store.Store.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.d.mu.Unlock()
	delete(s.d.topics, name)
	return nil
}
