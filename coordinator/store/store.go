// Package store defines where the coordinator keeps its durable state: one
// record per group (tombstones of deleted groups included) and the topic
// registry.
//
// A Store belongs to one term of one coordinator's leadership. Every write
// is fenced on that term: once another coordinator has been elected (or the
// term was ended), writes fail with ErrFenced and the coordinator must stop
// serving at once. Implementations: memstore (tests, the simulator, and
// `regroup serve --store memory`) and etcdstore.
package store

import (
	"context"
	"errors"

	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// ErrFenced is returned by writes after the store's leadership term ended.
var ErrFenced = errors.New("regroup: store: this coordinator is no longer the leader; its write was refused")

// Snapshot is everything a coordinator loads when it becomes leader.
type Snapshot struct {
	// Groups are the stored group records, tombstones included, by group id.
	Groups []*storev1.GroupRecord
	// Topics is the topic registry, by name.
	Topics []*regroupv1.Topic
	// Broken maps the id of each group whose record could not be decoded to
	// the reason; those groups are refused, the others served.
	Broken map[string]error
	// BrokenTopics maps the name of each topic whose record could not be
	// decoded to the reason; those topics are left out of the registry and
	// the groups that use them are refused.
	BrokenTopics map[string]error
	// GroupKeys and TopicKeys are where the records live, as prefixes of
	// a group id or topic name, for messages that name a broken record.
	GroupKeys, TopicKeys string
}

// Store keeps group records and topics. Its methods are safe for concurrent
// use; writes to one group are issued one at a time by the coordinator.
type Store interface {
	// Load reads every group record and topic.
	Load(ctx context.Context) (*Snapshot, error)
	// PutGroup writes a group's record, replacing the previous one.
	PutGroup(ctx context.Context, rec *storev1.GroupRecord) error
	// DeleteGroup removes a group's record (tombstone included).
	DeleteGroup(ctx context.Context, groupID string) error
	// PutTopic creates or replaces a topic.
	PutTopic(ctx context.Context, t *regroupv1.Topic) error
	// DeleteTopic removes a topic; deleting an absent topic is not an error.
	DeleteTopic(ctx context.Context, name string) error
}

// TopicWatcher is a Store whose topic registry other coordinators change
// too (the leaders of other shards, which share it): the coordinator
// watches it and applies their changes.
type TopicWatcher interface {
	// WatchTopics calls changed once it watches the registry, then after
	// every change of it, one call at a time, until ctx ends; it returns
	// then. A watch that breaks is set up again (and changed called).
	WatchTopics(ctx context.Context, changed func())
	// LoadTopics reads the registry, as Load does.
	LoadTopics(ctx context.Context) (topics []*regroupv1.Topic, broken map[string]error, err error)
}
