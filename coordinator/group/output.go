package group

import (
	"time"

	"google.golang.org/protobuf/proto"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// ReqID identifies one request to the group. The driver picks it (unique
// among the requests it has in flight) and matches replies with it.
type ReqID uint64

// Reply answers one request: with Msg (a *regroupv1.JoinGroupResponse,
// SyncGroupResponse, HeartbeatResponse or LeaveGroupResponse) or with Err (a
// *regroup.Error).
//
// A reply with a non-zero HoldUntil is a held heartbeat: the driver delivers
// it at HoldUntil, unless a later Reply for the same ReqID arrives first, in
// which case that one is delivered at once instead. Replies to requests the
// driver no longer waits for (the client went away) are dropped.
type Reply struct {
	Req       ReqID
	Msg       proto.Message
	Err       error
	HoldUntil time.Time
}

// Cause is the kind of event that started a rebalance.
type Cause string

// The causes of a rebalance.
const (
	CauseMemberJoined        Cause = "member-joined"
	CauseMemberLeft          Cause = "member-left"
	CauseMemberRemoved       Cause = "member-removed"
	CauseMemberExpired       Cause = "member-expired"
	CauseSubscriptionChanged Cause = "subscription-changed"
	CauseLeaderRejoined      Cause = "leader-rejoined"
	CauseSyncTimeout         Cause = "sync-timeout"
	CauseTopicChanged        Cause = "topic-changed"
	CauseAssignmentRefused   Cause = "assignment-refused"
	CauseStaticReplaced      Cause = "static-replaced"
	CauseFailover            Cause = "coordinator-failover"
	CauseGroupTooLarge       Cause = "group-too-large"
	// CauseFollowUp: partitions were released or left without an owner,
	// and the next round assigns them (cooperative rebalancing).
	CauseFollowUp Cause = "follow-up"
)

// EventKind says what an Event reports.
type EventKind int

// The kinds of Event.
const (
	// EventStateChanged: the group moved from From to To.
	EventStateChanged EventKind = iota + 1
	// EventRebalanceStarted: a rebalance started; Cause says why.
	EventRebalanceStarted
	// EventRebalanceDone: a rebalance completed; Rebalance describes it
	// (its start, join_completed and end times give the phases' lengths).
	EventRebalanceDone
	// EventAssignmentRefused: the leader's assignment was refused; Detail
	// says why.
	EventAssignmentRefused
	// EventMemberRemoved: a member left the group; Detail says why.
	EventMemberRemoved
	// EventMemberReplaced: a static member was replaced by a restarted
	// process without a rebalance.
	EventMemberReplaced
)

// Event reports something an operator may want to see: drivers turn events
// into logs, metrics and watch streams. Events carry no protocol decision.
type Event struct {
	Kind      EventKind
	From, To  State
	Member    string
	Detail    string
	Cause     Cause
	Rebalance *regroupv1.Rebalance
	// Unowned is, for EventRebalanceDone, the number of partitions of
	// subscribed topics that the new assignment leaves without an owner.
	Unowned int
}

// Output is what one step of the group asks of its driver, in order:
//  1. if Persist or Delete, write the group's Record and, should that fail,
//     call Abort instead of sending anything;
//  2. send Replies;
//  3. if Delete, forget the group: it is Dead and its record is a
//     tombstone (see Record); otherwise call Tick at NextDeadline.
type Output struct {
	Replies []Reply
	Persist bool
	Delete  bool
	Events  []Event
}

func (o *Output) reply(req ReqID, msg proto.Message) {
	o.Replies = append(o.Replies, Reply{Req: req, Msg: msg})
}

func (o *Output) fail(req ReqID, err error) {
	o.Replies = append(o.Replies, Reply{Req: req, Err: err})
}

func (o *Output) event(e Event) {
	o.Events = append(o.Events, e)
}
