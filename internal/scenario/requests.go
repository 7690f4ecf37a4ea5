package scenario

import (
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// JoinRequest builds a JoinGroupRequest from a command's arguments:
// [group=g] [member=ID] [instance=I] [client=c] [session=10s]
// [rebalance=30s] [protocols=range,...] [topics=orders] [owned=a:0-3/b:1]
// [gen=-1] [reason=R] [no-protocols] [userdata=N (N bytes of user data)]
// [lost=N (partitions_lost)].
func JoinRequest(t testing.TB, d *datadriven.TestData) *regroupv1.JoinGroupRequest {
	sub := &regroupv1.Subscription{Topics: List(ArgOr(d, "topics", "orders")), Generation: int32(Int(t, ArgOr(d, "gen", "-1")))}
	if o, ok := Arg(d, "owned"); ok && o != "" {
		sub.OwnedPartitions = Partitions(t, o)
	}
	if n, ok := Arg(d, "userdata"); ok {
		sub.UserData = make([]byte, Int(t, n))
	}
	var protocols []*regroupv1.Protocol
	for _, name := range List(ArgOr(d, "protocols", "range")) {
		protocols = append(protocols, &regroupv1.Protocol{Name: name, Subscription: sub})
	}
	r := &regroupv1.JoinGroupRequest{
		GroupId:            ArgOr(d, "group", "g"),
		MemberId:           ArgOr(d, "member", ""),
		GroupInstanceId:    ArgOr(d, "instance", ""),
		ClientId:           ArgOr(d, "client", "c"),
		SessionTimeoutMs:   Duration(t, ArgOr(d, "session", "10s")).Milliseconds(),
		RebalanceTimeoutMs: Duration(t, ArgOr(d, "rebalance", "30s")).Milliseconds(),
		Protocols:          protocols,
		Reason:             ArgOr(d, "reason", ""),
		PartitionsLost:     int32(Int(t, ArgOr(d, "lost", "0"))),
	}
	if _, ok := Arg(d, "no-protocols"); ok {
		r.Protocols = nil
	}
	return r
}

// SyncRequest builds a SyncGroupRequest from a command's arguments
// ([group=g] member=ID [instance=I] gen=G [protocol=P]) and, for a leader,
// its input: one line per member, "ID: topic=0,1 other=2 [userdata=N]".
func SyncRequest(t testing.TB, d *datadriven.TestData) *regroupv1.SyncGroupRequest {
	r := &regroupv1.SyncGroupRequest{
		GroupId:         ArgOr(d, "group", "g"),
		MemberId:        ArgOr(d, "member", ""),
		GroupInstanceId: ArgOr(d, "instance", ""),
		Generation:      int32(Int(t, ArgOr(d, "gen", "0"))),
		ProtocolName:    ArgOr(d, "protocol", ""),
	}
	for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
		if line == "" {
			continue
		}
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s: bad assignment line %q: want ID: topic=0,1", d.Pos, line)
		}
		a := &regroupv1.Assignment{}
		for _, f := range strings.Fields(rest) {
			topic, ps, _ := strings.Cut(f, "=")
			if topic == "userdata" {
				a.UserData = make([]byte, Int(t, ps))
				continue
			}
			tp := &regroupv1.TopicPartitions{Topic: topic}
			for _, p := range List(ps) {
				tp.Partitions = append(tp.Partitions, int32(Int(t, p)))
			}
			a.Partitions = append(a.Partitions, tp)
		}
		r.Assignments = append(r.Assignments, &regroupv1.MemberAssignment{MemberId: strings.TrimSpace(id), Assignment: a})
	}
	return r
}

// ReconcileRequest builds a ReconcileRequest from a command's arguments:
// [group=g] [member=ID] [epoch=E] [instance=I] [client=c] [session=10s]
// [rebalance=30s] [topics=orders] [owned=a:0-3/b:1] [hold=0s]
// [assignor=NAME] [lost=N] [rev=N] [transit=D]. The caller sets the member
// secret, and the assignment revision unless rev is given.
func ReconcileRequest(t testing.TB, d *datadriven.TestData) *regroupv1.ReconcileRequest {
	r := &regroupv1.ReconcileRequest{
		GroupId:            ArgOr(d, "group", "g"),
		MemberId:           ArgOr(d, "member", ""),
		MemberEpoch:        int32(Int(t, ArgOr(d, "epoch", "0"))),
		GroupInstanceId:    ArgOr(d, "instance", ""),
		ClientId:           ArgOr(d, "client", "c"),
		SessionTimeoutMs:   Duration(t, ArgOr(d, "session", "10s")).Milliseconds(),
		RebalanceTimeoutMs: Duration(t, ArgOr(d, "rebalance", "30s")).Milliseconds(),
		SubscribedTopics:   List(ArgOr(d, "topics", "orders")),
		ServerAssignor:     ArgOr(d, "assignor", ""),
		HoldMs:             Duration(t, ArgOr(d, "hold", "0s")).Milliseconds(),
		PartitionsLost:     int32(Int(t, ArgOr(d, "lost", "0"))),
		AssignmentRevision: Int(t, ArgOr(d, "rev", "0")),
		TransitMs:          Duration(t, ArgOr(d, "transit", "0s")).Milliseconds(),
	}
	if o, ok := Arg(d, "owned"); ok && o != "" {
		r.Owned = Partitions(t, o)
	}
	return r
}
