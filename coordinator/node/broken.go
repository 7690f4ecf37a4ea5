package node

import (
	"fmt"
	"maps"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/store"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// A stored record that cannot be used disables only what it touches: a
// broken group record, that group; a broken topic record, that topic (left
// out of the registry) and the groups that were assigned partitions of it,
// which are refused rather than rebalanced as if the topic had gone. Once
// the topic is put again or deleted, those groups are reloaded.

// loadTopics fills the registry from snap, leaving out the topics whose
// records are broken or invalid.
func (n *Node) loadTopics(snap *store.Snapshot) {
	n.topicKeys = snap.TopicKeys
	maps.Copy(n.brokenTopics, snap.BrokenTopics)
	for _, t := range snap.Topics {
		if err := n.cfg.Group.ValidateTopic(t); err != nil {
			why := err.Error()
			if e, ok := err.(*regroup.Error); ok {
				why = e.Message
			}
			n.brokenTopics[t.GetName()] = fmt.Errorf("topic %q: the record at %s%s is invalid (%s); put the topic again (regroup topics put) or delete the record",
				t.GetName(), snap.TopicKeys, t.GetName(), why)
			continue
		}
		n.registry[t.GetName()] = t.GetPartitions()
	}
}

// usesBrokenTopic reports the first topic of rec's last assignment whose
// stored record is broken, or "".
func (n *Node) usesBrokenTopic(rec *storev1.GroupRecord) string {
	for _, t := range rec.GetTopics() {
		if n.brokenTopics[t.GetName()] != nil {
			return t.GetName()
		}
	}
	return ""
}

// breakForTopic refuses group id, whose partitions of topic cannot be
// known, until the topic is fixed.
func (n *Node) breakForTopic(id, topic string) {
	n.broken[id] = fmt.Errorf("it owns partitions of topic %q, whose record at %s%s is unusable; put the topic again (regroup topics put) or delete its record, and the group is reloaded",
		topic, n.topicKeys, topic)
	n.awaitTopic[topic] = append(n.awaitTopic[topic], id)
}

// topicFixed is called once topic was put or deleted: the groups it
// disabled are read again from the store.
func (n *Node) topicFixed(topic string) {
	if n.brokenTopics[topic] == nil {
		return
	}
	delete(n.brokenTopics, topic)
	for _, id := range n.awaitTopic[topic] {
		delete(n.broken, id)
		e := n.add(id, nil)
		e.loading = true
		n.out.Loads = append(n.out.Loads, id)
	}
	delete(n.awaitTopic, topic)
}

// brokenRecord names where a group's unusable record lives.
func (n *Node) brokenRecord(rec *storev1.GroupRecord, err error) error {
	return fmt.Errorf("%w; fix or delete the record at %s%s", err, n.groupKeys, rec.GetGroupId())
}

// BrokenTopics returns the topics whose stored record cannot be used, with
// why; they are not in the registry.
func (n *Node) BrokenTopics() map[string]error { return maps.Clone(n.brokenTopics) }

// isDead reports whether rec is a tombstone.
func isDead(rec *storev1.GroupRecord) bool {
	return rec.GetState() == regroupv1.GroupState_GROUP_STATE_DEAD
}
