package node

import (
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup/coordinator/group"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Input is one step of the node: an Event, the time it happens at, and how
// long the term certainly lasts.
type Input struct {
	// Now is the current time, read by the driver just before the step.
	Now time.Time
	// ValidUntil is the instant until which the term certainly holds (the
	// leader's lease cannot have expired before it). The zero time means
	// the term has no end: a lone coordinator that owns its store.
	ValidUntil time.Time
	// Event is what happened.
	Event Event
	// Queued is, for a Request, how long the call waited between its
	// arrival and this step, and for a Tick, how late the tick comes after
	// the deadline it was asked for: the node's measure of its own load
	// (see Overload). Other events ignore it.
	Queued time.Duration
	// Elsewhere is what the other nodes of the driver's process hold (a
	// process that leads several shards runs a node for each): the limits
	// of group.Config, MaxMembers and MaxGroups, cap the process.
	Elsewhere Elsewhere
}

// Elsewhere counts what the other nodes of a process hold, as Counts
// reports them.
type Elsewhere struct {
	// Members counts their members (group.Group.Admitted).
	Members int
	// Groups counts their groups.
	Groups int
}

// Event is one of Request, Tick, WriteDone, LoadDone and TopicsStored.
type Event interface{ event() }

// Request is a call to answer: a group call (*regroupv1.JoinGroupRequest,
// SyncGroupRequest, HeartbeatRequest or LeaveGroupRequest) or an Admin call
// that changes state (*regroupv1.RemoveMembersRequest, DeleteGroupRequest,
// PutTopicRequest or DeleteTopicRequest). Its answer comes in this step's
// Output or a later one, matched by Req.
type Request struct {
	// Req identifies the call; the driver picks it, unique among the calls
	// it waits for.
	Req group.ReqID
	// Host is the caller's address, as operators see it.
	Host string
	// Identity is the caller's authenticated identity, or "" without
	// authentication; see group.Caller.
	Identity string
	// Msg is the request.
	Msg proto.Message
}

// Tick tells the node that NextDeadline has come.
type Tick struct{}

// Outcome is what became of a store operation.
type Outcome int

// The outcomes of a store operation.
const (
	// OK: the store holds what was written.
	OK Outcome = iota + 1
	// Failed: the store refused the operation; nothing changed.
	Failed
	// Unknown: no answer came in time (a timeout, a lost connection); the
	// operation may or may not have taken effect.
	Unknown
	// Fenced: another coordinator leads; the term is over.
	Fenced
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	case Fenced:
		return "fenced"
	}
	return "invalid"
}

// WriteDone reports the outcome of a Write.
type WriteDone struct {
	ID      WriteID
	Outcome Outcome
	// Err says what went wrong, for any outcome but OK.
	Err error
}

// LoadDone answers a load the node asked for (Output.Loads): the group's
// stored record, if any.
type LoadDone struct {
	Group string
	// Outcome is OK when Record is what the store holds (nil: no record).
	Outcome Outcome
	Record  *storev1.GroupRecord
	// Err says why the read failed, or why the record cannot be decoded
	// (Outcome OK with Err set: the record is broken).
	Err error
}

// TopicsStored is the topic registry as the store holds it, read by the
// driver after the registry's keys changed there: a change made by another
// coordinator (the leader of another shard, which shares the registry).
// The node applies what differs from its own registry as if it had made
// the change: subscribers rebalance, and groups refused for a broken topic
// are reloaded. A topic whose record cannot be used (in Broken, or invalid
// here) keeps the partitions the node knew, with a Fault: a bad record
// must not take partitions from their owners. While a change of the
// node's own is being written the node cannot tell whether the read holds
// it; it asks for another read once that write is done (Output.ReadTopics),
// and at once for a read begun before a write of its own was done (Writes):
// an older registry must not undo the node's newer change.
type TopicsStored struct {
	// Writes is the node's TopicWrites when the driver began the read.
	Writes uint64
	Topics []*regroupv1.Topic
	// Broken maps the name of each topic whose record could not be
	// decoded to the reason.
	Broken map[string]error
}

func (Request) event()      {}
func (Tick) event()         {}
func (WriteDone) event()    {}
func (LoadDone) event()     {}
func (TopicsStored) event() {}

// WriteID identifies a Write.
type WriteID uint64

// Write is one store operation the node needs: exactly one of Group, Topic
// and DeleteTopic is set. The driver performs it and steps the node with its
// WriteDone; replies that depend on it are held back until then. Writes of
// one group are issued one at a time, and so are topic writes.
type Write struct {
	ID WriteID
	// Group is a group's record to put, a tombstone included. The record
	// shares nothing that the node changes later: it may be encoded after
	// the step.
	Group *storev1.GroupRecord
	// Topic is a topic to create or replace.
	Topic *regroupv1.Topic
	// DeleteTopic is the name of a topic to delete.
	DeleteTopic string
}

// Observed is an event of a group, for logs, metrics and watchers.
type Observed struct {
	// Group is the group it happened to; read it only before the next step.
	Group *group.Group
	Event group.Event
}

// Fault is something that went wrong and that the node handled: a store
// operation that failed, a record that cannot be used, a bug in a group's
// state machine. Drivers log it as an error.
type Fault struct {
	// Group is the group concerned, or "" for the topic registry.
	Group  string
	Detail string
}

// Output is what one step asks of the driver, in order: perform Writes and
// Loads (in any order, concurrently; each answers with an input), send
// Replies, report Observed and Faults, and call back with Tick at
// NextDeadline. If Ended is set, the term is over: every waiting call has
// been answered and the node refuses every call from now on.
type Output struct {
	Replies  []group.Reply
	Writes   []Write
	Loads    []string
	Observed []Observed
	Faults   []Fault
	// ReadTopics asks the driver to read the topic registry again and
	// step the node with it (TopicsStored).
	ReadTopics bool
	Ended      string
}
