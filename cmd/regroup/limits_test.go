package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// The hostile-client tests of the limits: each attack over real gRPC against
// `regroup serve`, the refusal it gets, and that other groups go on.

func limitsCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantRefusal fails the test unless err is the protocol error code, carried
// in a gRPC status with the given code, whose message mentions mention.
func wantRefusal(t *testing.T, what string, err error, grpcCode codes.Code, code regroup.Code, mention string) {
	t.Helper()
	if status.Code(err) != grpcCode || regroup.CodeOf(rpcerr.FromStatus(err)) != code || !strings.Contains(err.Error(), mention) {
		t.Fatalf("%s: got %v, want %v %s mentioning %q", what, err, grpcCode, code, mention)
	}
}

func limitsJoin(groupID, memberID, instance string, userData int) *regroupv1.JoinGroupRequest {
	return &regroupv1.JoinGroupRequest{GroupId: groupID, MemberId: memberID, GroupInstanceId: instance, ClientId: "test",
		SessionTimeoutMs: 30 * 60 * 1000, RebalanceTimeoutMs: 20_000,
		Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}, Generation: -1, UserData: make([]byte, userData)}}}}
}

// TestLimitHugeTopicRefused: a topic of 2^31-1 partitions, which would
// make the next leader SyncGroup allocate until the process dies, is
// refused with LIMIT_EXCEEDED and never stored.
func TestLimitHugeTopicRefused(t *testing.T) {
	s := startServe(t)
	admin := regroupv1.NewAdminClient(dial(t, s.addr))
	ctx := limitsCtx(t)
	_, err := admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "huge", Partitions: 1<<31 - 1}})
	wantRefusal(t, "PutTopic of 2^31-1 partitions", err, codes.ResourceExhausted, regroup.CodeLimitExceeded, "--max-topic-partitions")
	l, err := admin.ListTopics(ctx, &regroupv1.ListTopicsRequest{})
	if err != nil || len(l.GetTopics()) != 0 {
		t.Fatalf("topics after the refusal: %v %v, want none", l, err)
	}
}

// TestLimitBarrierStallAttack: one first JoinGroup (asking for a 30 min
// session) used to hold the victim group's next join barrier until its id
// expired; now the victim's rejoin completes at once.
func TestLimitBarrierStallAttack(t *testing.T) {
	s := startServe(t)
	conn := dial(t, s.addr)
	c := regroupv1.NewCoordinatorClient(conn)
	ctx := limitsCtx(t)
	v, err := c.JoinGroup(ctx, limitsJoin("victim", "", "v", 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SyncGroup(ctx, &regroupv1.SyncGroupRequest{GroupId: "victim", MemberId: v.GetMemberId(), GroupInstanceId: "v", Generation: v.GetGeneration()}); err != nil {
		t.Fatal(err)
	}
	_, err = c.JoinGroup(ctx, limitsJoin("victim", "", "", 0))
	wantRefusal(t, "the attacker's first join", err, codes.FailedPrecondition, regroup.CodeMemberIDRequired, "rejoin with member id")

	start := time.Now()
	r, err := c.JoinGroup(ctx, limitsJoin("victim", v.GetMemberId(), "v", 0)) // the leader rejoins: a rebalance
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second || r.GetGeneration() != v.GetGeneration()+1 {
		t.Fatalf("the victim's rejoin took %v and reached generation %d, want a new generation at once", took, r.GetGeneration())
	}
}

// TestLimitPendingIDFlood: first joins past --max-pending-members are
// refused with LIMIT_EXCEEDED; another group is unaffected.
func TestLimitPendingIDFlood(t *testing.T) {
	s := startServe(t, "--max-pending-members", "20")
	c := regroupv1.NewCoordinatorClient(dial(t, s.addr))
	ctx := limitsCtx(t)
	for i := range 20 {
		_, err := c.JoinGroup(ctx, limitsJoin("flooded", "", "", 0))
		wantRefusal(t, fmt.Sprintf("first join %d", i), err, codes.FailedPrecondition, regroup.CodeMemberIDRequired, "rejoin")
	}
	_, err := c.JoinGroup(ctx, limitsJoin("flooded", "", "", 0))
	wantRefusal(t, "the 21st first join", err, codes.ResourceExhausted, regroup.CodeLimitExceeded, "--max-pending-members")

	start := time.Now()
	if _, err := c.JoinGroup(ctx, limitsJoin("other", "", "o", 0)); err != nil {
		t.Fatalf("another group: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("another group's join took %v", took)
	}
}

// TestLimitMetadataFlood: members with large metadata are admitted up to
// the group's budget; the next is refused with LIMIT_EXCEEDED naming it,
// and the group stays describable.
func TestLimitMetadataFlood(t *testing.T) {
	s := startServe(t, "--max-group-metadata-bytes", "3000000")
	conn := dial(t, s.addr)
	c, admin := regroupv1.NewCoordinatorClient(conn), regroupv1.NewAdminClient(conn)
	ctx := limitsCtx(t)
	parked, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i, inst := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func() { // joins park at the barrier: answered or canceled at the end
			defer wg.Done()
			_, _ = c.JoinGroup(parked, limitsJoin("fat", "", inst, 900_000))
		}()
		waitfor.Until(t, "the member joined", func() error {
			d, err := admin.DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: "fat"})
			if err != nil || len(d.GetMembers()) != i+1 {
				return errors.New("not yet")
			}
			return nil
		})
	}
	_, err := c.JoinGroup(ctx, limitsJoin("fat", "", "d", 900_000))
	wantRefusal(t, "the fourth 900 kB member", err, codes.ResourceExhausted, regroup.CodeLimitExceeded, "--max-group-metadata-bytes")
	if _, err := admin.DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: "fat"}); err != nil {
		t.Fatalf("DescribeGroup after the refusal: %v", err)
	}
}

// TestLimitGroupFlood: joins past --max-groups are refused with
// LIMIT_EXCEEDED; a group that a first join created and that never got a
// member does not hold its place once its id expires.
func TestLimitGroupFlood(t *testing.T) {
	s := startServe(t, "--max-groups", "3", "--pending-member-timeout", "300ms")
	c := regroupv1.NewCoordinatorClient(dial(t, s.addr))
	ctx := limitsCtx(t)
	for _, id := range []string{"g1", "g2"} {
		if _, err := c.JoinGroup(ctx, limitsJoin(id, "", "a", 0)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.JoinGroup(ctx, limitsJoin("only-asked", "", "", 0))
	wantRefusal(t, "a first join", err, codes.FailedPrecondition, regroup.CodeMemberIDRequired, "rejoin")
	_, err = c.JoinGroup(ctx, limitsJoin("g4", "", "a", 0))
	wantRefusal(t, "a fourth group", err, codes.ResourceExhausted, regroup.CodeLimitExceeded, "--max-groups")
	waitfor.Until(t, "the group without members is dropped", func() error {
		_, err := c.JoinGroup(ctx, limitsJoin("g4", "", "a", 0))
		return err
	})
}

// TestInvalidUTF8IsInvalidArgument: a string that is not UTF-8 is the
// client's error, InvalidArgument naming the field, not Internal.
func TestInvalidUTF8IsInvalidArgument(t *testing.T) {
	s := startServe(t)
	conn := dial(t, s.addr)
	ctx := limitsCtx(t)
	_, err := regroupv1.NewCoordinatorClient(conn).JoinGroup(ctx, limitsJoin("bad\xffgroup", "", "", 0))
	wantRefusal(t, "JoinGroup", err, codes.InvalidArgument, regroup.CodeInvalidRequest, "group_id: is not valid UTF-8")
	r := limitsJoin("g", "", "", 0)
	r.Protocols[0].Subscription.Topics = []string{"ok", "\xc3"}
	_, err = regroupv1.NewCoordinatorClient(conn).JoinGroup(ctx, r)
	wantRefusal(t, "JoinGroup", err, codes.InvalidArgument, regroup.CodeInvalidRequest, "protocols[0].subscription.topics[1]")
	_, err = regroupv1.NewAdminClient(conn).PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "\xfe", Partitions: 1}})
	wantRefusal(t, "PutTopic", err, codes.InvalidArgument, regroup.CodeInvalidRequest, "topic.name")
}

// TestEscapeSequencesInReasons: a reason with terminal escape sequences is
// refused, and what the history shows is printed inert.
func TestEscapeSequencesInReasons(t *testing.T) {
	s := startServe(t)
	conn := dial(t, s.addr)
	c := regroupv1.NewCoordinatorClient(conn)
	ctx := limitsCtx(t)
	j, err := c.JoinGroup(ctx, limitsJoin("g", "", "a", 0))
	if err != nil {
		t.Fatal(err)
	}
	forged := "\x1b[2K\r12:00:00.000 state Stable -> Dead"
	_, err = c.LeaveGroup(ctx, &regroupv1.LeaveGroupRequest{GroupId: "g", Members: []*regroupv1.LeaveMember{{MemberId: j.GetMemberId(), GroupInstanceId: "a", Reason: forged}}})
	wantRefusal(t, "LeaveGroup with an escape sequence", err, codes.InvalidArgument, regroup.CodeInvalidRequest, "members[0].reason")
	_, err = regroupv1.NewAdminClient(conn).RemoveMembers(ctx, &regroupv1.RemoveMembersRequest{GroupId: "g", GroupInstanceIds: []string{"a"}, Reason: "\u202eevil"})
	wantRefusal(t, "RemoveMembers with a bidi override", err, codes.InvalidArgument, regroup.CodeInvalidRequest, "reason")

	// A reason stored before the checks (or by an older coordinator).
	line := watchLine(&regroupv1.WatchGroupResponse{Event: &regroupv1.WatchGroupResponse_MemberRemoved{
		MemberRemoved: &regroupv1.MemberRemoved{MemberId: "m", Reason: forged}}})
	if strings.ContainsAny(line, "\x1b\r") || !strings.Contains(line, `\x1b[2K\r12:00:00.000`) {
		t.Fatalf("groups watch prints a stored reason as %q, want its escape sequences escaped", line)
	}
}
