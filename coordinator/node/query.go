package node

import (
	"maps"

	"github.com/regroup-dev/regroup"
	"slices"

	"github.com/regroup-dev/regroup/coordinator/group"
)

// Group returns a group for reading (describing it, listing it), or the
// error that answers an Admin call for it: UNKNOWN_GROUP, or
// COORDINATOR_NOT_AVAILABLE while it is being reloaded or its record is
// unusable. A group whose writes fail is shown as it is in memory. The
// caller must not step it, and must read it before the node's next step.
func (n *Node) Group(id string) (*group.Group, error) {
	if err := group.ValidateGroupID(id); err != nil {
		return nil, err
	}
	if err := n.broken[id]; err != nil {
		return nil, n.brokenError(id, err)
	}
	switch e := n.groups[id]; {
	case e == nil || e.tomb != nil:
		return nil, regroup.Errorf(regroup.CodeUnknownGroup, "group %q does not exist", id)
	case e.loading:
		return nil, n.loadingError(id)
	default:
		return e.g, nil
	}
}

// GroupIDs returns the ids of the groups that serve calls, sorted.
func (n *Node) GroupIDs() []string {
	ids := make([]string, 0, len(n.groups))
	for id, e := range n.groups {
		if e.g != nil && e.tomb == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Registry returns the topic registry: topic name -> partitions. The map
// is never modified; a change installs a new one.
func (n *Node) Registry() map[string]int32 { return n.registry }

// Broken returns the groups whose stored record cannot be used, with why.
func (n *Node) Broken() map[string]error { return maps.Clone(n.broken) }

// TopicWrites counts the node's writes of the topic registry that are
// done; a driver reads it as it begins a read of the registry
// (TopicsStored.Writes).
func (n *Node) TopicWrites() uint64 { return n.topics.finished }

// Counts returns what the process's limits count of this node (see
// Input.Elsewhere): its members (group.Group.Admitted) and its groups.
func (n *Node) Counts() Elsewhere { return Elsewhere{Members: n.admitted, Groups: len(n.groups)} }

// Tombstones returns how many deleted groups the node remembers.
func (n *Node) Tombstones() int { return len(n.tombstones) }
