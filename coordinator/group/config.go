package group

import (
	"fmt"
	"time"
)

// Config holds the coordinator-wide settings that shape every group. Every
// field is taken literally; DefaultConfig returns Kafka's defaults.
type Config struct {
	// MinSessionTimeout and MaxSessionTimeout bound the session timeout a
	// member may ask for (INVALID_SESSION_TIMEOUT outside them).
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// MaxRebalanceTimeout bounds the rebalance timeout a member may ask for.
	MaxRebalanceTimeout time.Duration
	// InitialRebalanceDelay is how long the first rebalance of an empty group
	// waits for more members, extended while members keep arriving and
	// capped by the rebalance timeout. Zero completes it as soon as every
	// member has joined.
	InitialRebalanceDelay time.Duration
	// MaxSize caps the number of members; zero means no cap.
	MaxSize int
	// NewMemberJoinTimeout is how long a new member's first join may stay
	// parked before it is dropped (it cannot heartbeat meanwhile).
	NewMemberJoinTimeout time.Duration
	// EmptyRetention is how long an Empty group is kept before it is deleted.
	EmptyRetention time.Duration
	// MaxMetadataBytes caps the encoded size of a JoinGroup's protocols and
	// of each assignment's user data.
	MaxMetadataBytes int
	// HistoryLimit is the number of rebalances kept per group.
	HistoryLimit int

	// The limits below bound what clients can make a coordinator hold;
	// a request past one is refused with LIMIT_EXCEEDED (see limits.go).

	// MaxTopicPartitions caps a topic's partition count in the registry:
	// assignments and their checks are sized by it.
	MaxTopicPartitions int32
	// MaxGroups caps the groups a coordinator serves (a process, over
	// every shard it leads: node.Input.Elsewhere); a join that would
	// create one more is refused. Zero means no cap.
	MaxGroups int
	// MaxMembers caps the members of all groups of a coordinator together
	// (a process, over every shard it leads; counting the dynamic members
	// told their id): a call that would add
	// one more is refused as overloaded, retriable, until some leave.
	// Zero means no cap.
	MaxMembers int
	// MaxPendingMembers caps a group's minted member ids that no second
	// JoinGroup has used yet.
	MaxPendingMembers int
	// PendingMemberTimeout is how long a minted member id stays valid for
	// the member's second JoinGroup (at most the session timeout it asked
	// for), and the longest a barrier waits for such ids once every member
	// has rejoined. Ids minted outside a join phase never hold a barrier.
	PendingMemberTimeout time.Duration
	// MaxGroupMetadataBytes caps a group's footprint: the sum over its
	// members of their protocols (subscriptions with their owned
	// partitions and user data), assignments and ids. It keeps the
	// leader's JoinGroup answer, DescribeGroup's answer and the group's
	// stored record within their size limits; keep it at most half of
	// each (the other half leaves room for history and bookkeeping).
	MaxGroupMetadataBytes int

	// The next-generation protocol (Reconcile).

	// AssignmentInterval is the shortest time between two computations of
	// a next-generation group's target assignment: a change after a quiet
	// spell is assigned at once, and a storm of joins once per interval
	// (each computation runs the server-side assignor over the group).
	AssignmentInterval time.Duration
	// MemberHeartbeat is the interval next-generation members are told to
	// hold their calls for (capped at a third of their session timeout).
	MemberHeartbeat time.Duration
}

// DefaultConfig returns the defaults: sessions of 6 s to 30 min, rebalance
// timeouts up to 1 h, an initial delay of 3 s, no size cap, 5 min for a new
// member's join, empty groups kept for 24 h, 1 MiB of metadata, and the last
// 32 rebalances; for next-generation groups, a target assignment at most
// every 50 ms and calls held for 3 s; and the limits: 1,048,576 partitions per topic, 10,000
// groups, 1,000 pending member ids per group valid for 5 s, and 16 MiB of
// metadata per group (half the embedded etcd's 32 MiB request limit, a
// quarter of the default 64 MiB gRPC message limit).
func DefaultConfig() Config {
	return Config{
		MinSessionTimeout:     6 * time.Second,
		MaxSessionTimeout:     30 * time.Minute,
		MaxRebalanceTimeout:   time.Hour,
		InitialRebalanceDelay: 3 * time.Second,
		NewMemberJoinTimeout:  5 * time.Minute,
		EmptyRetention:        24 * time.Hour,
		MaxMetadataBytes:      1 << 20,
		HistoryLimit:          32,
		MaxTopicPartitions:    1 << 20,
		MaxGroups:             10_000,
		MaxPendingMembers:     10_000,
		PendingMemberTimeout:  5 * time.Second,
		MaxGroupMetadataBytes: 16 << 20,
		AssignmentInterval:    50 * time.Millisecond,
		MemberHeartbeat:       3 * time.Second,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MinSessionTimeout <= 0:
		return fmt.Errorf("regroup: minimum session timeout must be positive, got %v", c.MinSessionTimeout)
	case c.MaxSessionTimeout < c.MinSessionTimeout:
		return fmt.Errorf("regroup: maximum session timeout %v is below the minimum %v", c.MaxSessionTimeout, c.MinSessionTimeout)
	case c.MaxRebalanceTimeout <= 0:
		return fmt.Errorf("regroup: maximum rebalance timeout must be positive, got %v", c.MaxRebalanceTimeout)
	case c.InitialRebalanceDelay < 0:
		return fmt.Errorf("regroup: initial rebalance delay must not be negative, got %v", c.InitialRebalanceDelay)
	case c.MaxMembers < 0:
		return fmt.Errorf("regroup: member limit must not be negative (0 means no limit), got %d", c.MaxMembers)
	case c.MaxSize < 0:
		return fmt.Errorf("regroup: maximum group size must not be negative (0 means no limit), got %d", c.MaxSize)
	case c.NewMemberJoinTimeout <= 0:
		return fmt.Errorf("regroup: new member join timeout must be positive, got %v", c.NewMemberJoinTimeout)
	case c.EmptyRetention <= 0:
		return fmt.Errorf("regroup: empty group retention must be positive, got %v", c.EmptyRetention)
	case c.MaxMetadataBytes <= 0:
		return fmt.Errorf("regroup: metadata limit must be positive, got %d", c.MaxMetadataBytes)
	case c.HistoryLimit <= 0:
		return fmt.Errorf("regroup: history limit must be positive, got %d", c.HistoryLimit)
	case c.MaxTopicPartitions <= 0:
		return fmt.Errorf("regroup: partitions per topic limit must be positive, got %d", c.MaxTopicPartitions)
	case c.MaxGroups < 0:
		return fmt.Errorf("regroup: group limit must not be negative (0 means no limit), got %d", c.MaxGroups)
	case c.MaxPendingMembers <= 0:
		return fmt.Errorf("regroup: pending member id limit must be positive, got %d", c.MaxPendingMembers)
	case c.PendingMemberTimeout <= 0:
		return fmt.Errorf("regroup: pending member timeout must be positive, got %v", c.PendingMemberTimeout)
	case c.AssignmentInterval < 0:
		return fmt.Errorf("regroup: assignment interval must not be negative, got %v", c.AssignmentInterval)
	case c.MemberHeartbeat <= 0:
		return fmt.Errorf("regroup: the next-generation heartbeat interval must be positive, got %v", c.MemberHeartbeat)
	case c.MaxGroupMetadataBytes < c.MaxMetadataBytes:
		return fmt.Errorf("regroup: group metadata budget %d is below the per-member metadata limit %d: no member with the largest metadata could join", c.MaxGroupMetadataBytes, c.MaxMetadataBytes)
	}
	return nil
}
