// Package assignor decides which member of a group owns which partition.
//
// An Assignor is a pure function from an Input (the members with their
// subscriptions and owned partitions, the partition count of every topic, the
// group's generation) to a Plan. It reads no clock, does no I/O, uses no
// global random source, and does not modify its input. The same input, with
// members and topics in any order, always gives the same plan: a
// deterministic output avoids needless rebalances.
//
// The group's leader runs the assignor that the group selected; the simulator
// runs the same code.
//
// The built-in assignors (see Lookup): "range" and "roundrobin", Kafka's
// eager assignors; "sticky", balanced and moving only what balance requires;
// "cooperative-sticky", the same target reached without handing a partition
// to a new owner in the round that takes it from the old one; "static", a
// plan that depends only on the members' instance ids and topics. Check,
// Complete and Balanced state what a plan must satisfy.
package assignor

import (
	"fmt"
	"sort"
)

// RebalanceProtocol is how members hand partitions over during a rebalance.
type RebalanceProtocol int

const (
	// Eager members revoke every partition before rejoining; the assignor
	// may move any partition in one round.
	Eager RebalanceProtocol = iota
	// Cooperative members keep their partitions while rejoining; the
	// assignor never gives a partition to a new owner in the round in which
	// it takes it from its old owner, and a follow-up round completes the
	// move.
	Cooperative
)

// String returns "eager" or "cooperative".
func (p RebalanceProtocol) String() string {
	switch p {
	case Eager:
		return "eager"
	case Cooperative:
		return "cooperative"
	}
	return fmt.Sprintf("RebalanceProtocol(%d)", int(p))
}

// TopicPartitions names partitions of one topic.
type TopicPartitions struct {
	Topic      string
	Partitions []int32
}

// Member is one member of the group as the assignor sees it.
type Member struct {
	// ID is the member id; unique within an Input.
	ID string
	// InstanceID is the static instance id, or "" for a dynamic member.
	InstanceID string
	// Topics are the subscribed topics, in any order, possibly with
	// duplicates.
	Topics []string
	// Owned are the partitions the member reports owning, possibly stale or
	// naming topics and partitions that no longer exist.
	Owned []TopicPartitions
	// Generation is the generation in which Owned was assigned, or -1.
	Generation int32
	// NotHeld marks Owned as the member's last assignment, shown for
	// stickiness, rather than a report: the member holds none of it. Such a
	// claim never outranks a held one, and the cooperative rule does not
	// apply to it (nobody has to revoke it first).
	NotHeld bool
	// Rack is the member's rack, or "".
	Rack string
	// UserData is free-form data from the member.
	UserData []byte
}

// Input is everything an assignor may look at.
type Input struct {
	// Members of the group. Callers pass them sorted by ID; assignors must
	// not depend on the order.
	Members []Member
	// Topics maps each topic that exists to its partition count. Subscribed
	// topics missing here, and partitions at or beyond a topic's count, are
	// ignored.
	Topics map[string]int32
	// PartitionRacks optionally gives, per topic, the racks of each partition
	// (indexed by partition number). Rack-aware assignors prefer a member in
	// one of a partition's racks. Nil means no rack information.
	PartitionRacks map[string][][]string
	// Generation is the generation the plan is for.
	Generation int32
}

// Plan maps member id -> topic -> partitions (sorted, no duplicates). Every
// member of the Input has an entry, possibly empty; topics without
// partitions are left out. Plans from the built-in assignors share one
// backing array among their partition lists, each capped at its length.
type Plan map[string]map[string][]int32

// Assignor computes plans.
type Assignor interface {
	// Name is the protocol name members offer in JoinGroup, e.g. "sticky".
	Name() string
	// Protocols lists the rebalance protocols the assignor supports.
	Protocols() []RebalanceProtocol
	// Assign computes a plan. It returns an error only for input that no
	// plan can come from (such as two members with one id).
	Assign(in *Input) (Plan, error)
}

// Supports reports whether a supports protocol p.
func Supports(a Assignor, p RebalanceProtocol) bool {
	for _, q := range a.Protocols() {
		if q == p {
			return true
		}
	}
	return false
}

// ProtocolFor returns the rebalance protocol a member offering these
// assignors uses: Cooperative only if every one of them supports it.
func ProtocolFor(as []Assignor) RebalanceProtocol {
	if len(as) == 0 {
		return Eager
	}
	for _, a := range as {
		if !Supports(a, Cooperative) {
			return Eager
		}
	}
	return Cooperative
}

var builtins = map[string]func() Assignor{}

func register(name string, f func() Assignor) {
	if _, dup := builtins[name]; dup {
		panic("assignor: duplicate builtin " + name)
	}
	builtins[name] = f
}

// Register adds an assignor of the caller's under name, beside the
// built-in ones: Lookup and Names then know it, and so do the simulator's
// scenarios (assignors=name) and its Variants (the member library takes
// Assignor values and needs no registration).
// f returns the instance each Lookup hands out; its Name must be name.
// Register from an init function, before any Lookup: the registry is not
// safe for concurrent use. It panics if name is taken, built-in or
// registered.
func Register(name string, f func() Assignor) { register(name, f) }

// Names returns the names of the built-in assignors, sorted.
func Names() []string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the built-in assignor with this name, or an error listing
// the known names.
func Lookup(name string) (Assignor, error) {
	f, ok := builtins[name]
	if !ok {
		return nil, fmt.Errorf("regroup: unknown assignor %q (known: %v)", name, Names())
	}
	return f(), nil
}
