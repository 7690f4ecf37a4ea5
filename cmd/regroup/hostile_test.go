package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
	"github.com/regroup-dev/regroup/internal/bearer"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// The hostile-client suite: a coordinator with authentication and a
// policy, attacked over real gRPC by a client that may join the victim's
// group (so the policy alone does not stop it) and knows everything
// DescribeGroup shows. Every attack must be refused with its code, and the
// victim must not notice. The attacks that need no credentials at all
// (huge topics, floods of groups, pending ids and metadata, barrier
// stalls, escape sequences, invalid UTF-8) are in limits_test.go.

// hostile is a coordinator with three identities: alice (the victim's
// owner), mallory (the attacker, with the same rights on the shared group)
// and ops (an operator).
type hostile struct {
	*served
	alice, mallory, ops, anon *grpc.ClientConn
}

const hostilePolicy = `# alice and mallory may both consume and describe the shared group
alice    consume,describe  group:shared group:alice-*
mallory  consume,describe  group:shared group:mallory-*
ops      describe,admin    group:* topic:*
`

// startHostile starts the coordinator, and ops puts the topic orders.
func startHostile(t *testing.T, extra ...string) *hostile {
	t.Helper()
	h := newHostile(t, extra...)
	waitfor.Until(t, "ops puts the topic orders", func() error {
		_, err := regroupv1.NewAdminClient(h.ops).PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 8}})
		return err
	})
	return h
}

// newHostile starts the coordinator.
func newHostile(t *testing.T, extra ...string) *hostile {
	t.Helper()
	dir := t.TempDir()
	var tokens strings.Builder
	for _, name := range []string{"alice", "mallory", "ops"} {
		sum := sha256.Sum256([]byte("token-of-" + name))
		fmt.Fprintf(&tokens, "%s %s\n", name, hex.EncodeToString(sum[:]))
	}
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	s := startServe(t, append([]string{"--token-file", write("tokens", tokens.String()), "--policy-file", write("policy", hostilePolicy)}, extra...)...)
	as := func(name string) *grpc.ClientConn {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if name != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(bearer.New("token-of-"+name, true)))
		}
		conn, err := grpc.NewClient(s.addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	return &hostile{served: s, alice: as("alice"), mallory: as("mallory"), ops: as("ops"), anon: as("")}
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, what string, err error, code regroup.Code) {
	t.Helper()
	if got := regroup.CodeOf(rpcerr.FromStatus(err)); got != code {
		t.Errorf("%s: got %v, want %s", what, err, code)
	}
}

// victim is alice's static member of the shared group, Stable, with its
// id, generation and assignment as the coordinator shows them.
func (h *hostile) victim(t *testing.T) (*member, *regroupv1.MemberDescription, int32) {
	t.Helper()
	m := startMemberWithSession(t, h.alice, "shared", "a", 6*time.Second, "orders")
	d := waitStable(t, regroupv1.NewAdminClient(h.ops), "shared", "a")
	return m, d.GetMembers()[0], d.GetGeneration()
}

// unchanged checks that the victim is still the Stable member it was.
func (h *hostile) unchanged(t *testing.T, before *regroupv1.MemberDescription, gen int32) {
	t.Helper()
	d := waitStable(t, regroupv1.NewAdminClient(h.ops), "shared", "a")
	m := d.GetMembers()[0]
	if d.GetGeneration() != gen || m.GetMemberId() != before.GetMemberId() || fmt.Sprint(m.GetAssignment()) != fmt.Sprint(before.GetAssignment()) {
		t.Errorf("the victim changed: generation %d -> %d, member %s -> %s, assignment %v -> %v",
			gen, d.GetGeneration(), before.GetMemberId(), m.GetMemberId(), before.GetAssignment(), m.GetAssignment())
	}
	if m.GetIdentity() != "alice" {
		t.Errorf("the victim's identity is %q, want alice", m.GetIdentity())
	}
}

func TestHostileUnauthenticated(t *testing.T) {
	h := startHostile(t)
	ctx := context.Background()
	_, err := regroupv1.NewCoordinatorClient(h.anon).JoinGroup(ctx, &regroupv1.JoinGroupRequest{GroupId: "shared"})
	wantCode(t, "a JoinGroup without a token", err, regroup.CodeUnauthenticated)
	_, err = regroupv1.NewAdminClient(h.anon).ListGroups(ctx, &regroupv1.ListGroupsRequest{})
	wantCode(t, "a ListGroups without a token", err, regroup.CodeUnauthenticated)
	bad, err := grpc.NewClient(h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer.New("guessed", true)))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	_, err = regroupv1.NewCoordinatorClient(bad).Heartbeat(ctx, &regroupv1.HeartbeatRequest{GroupId: "shared", MemberId: "x"})
	wantCode(t, "a Heartbeat with a wrong token", err, regroup.CodeUnauthenticated)
}

func TestHostileWithoutRights(t *testing.T) {
	h := startHostile(t)
	ctx := context.Background()
	coord, admin := regroupv1.NewCoordinatorClient(h.mallory), regroupv1.NewAdminClient(h.mallory)
	_, err := coord.JoinGroup(ctx, &regroupv1.JoinGroupRequest{GroupId: "alice-orders"})
	wantCode(t, "joining another identity's group", err, regroup.CodeNotAuthorized)
	_, err = admin.DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: "alice-orders"})
	wantCode(t, "describing another identity's group", err, regroup.CodeNotAuthorized)
	_, err = admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 1}})
	wantCode(t, "PutTopic without admin", err, regroup.CodeNotAuthorized)
	_, err = admin.DeleteTopic(ctx, &regroupv1.DeleteTopicRequest{Name: "orders"})
	wantCode(t, "DeleteTopic without admin", err, regroup.CodeNotAuthorized)
	_, err = admin.RemoveMembers(ctx, &regroupv1.RemoveMembersRequest{GroupId: "shared", GroupInstanceIds: []string{"a"}})
	wantCode(t, "RemoveMembers without admin", err, regroup.CodeNotAuthorized)
	_, err = admin.DeleteGroup(ctx, &regroupv1.DeleteGroupRequest{GroupId: "shared"})
	wantCode(t, "DeleteGroup without admin", err, regroup.CodeNotAuthorized)
	resp, err := regroupv1.NewAdminClient(h.ops).ListTopics(ctx, &regroupv1.ListTopicsRequest{})
	if err != nil || len(resp.GetTopics()) != 1 || resp.GetTopics()[0].GetPartitions() != 8 {
		t.Errorf("the topics after the attempts: %v, %v; want orders with 8 partitions", resp.GetTopics(), err)
	}
}

// TestHostileImpersonation: mallory may consume the shared group and reads
// alice's member id, instance id and generation from DescribeGroup, then
// heartbeats, syncs, rejoins, kicks and takes over as alice's member.
func TestHostileImpersonation(t *testing.T) {
	h := startHostile(t)
	_, victim, gen := h.victim(t)
	ctx := context.Background()
	coord := regroupv1.NewCoordinatorClient(h.mallory)
	id, inst := victim.GetMemberId(), victim.GetGroupInstanceId()
	if _, err := regroupv1.NewAdminClient(h.mallory).DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: "shared"}); err != nil {
		t.Fatalf("mallory may describe the shared group: %v", err)
	}

	_, err := coord.Heartbeat(ctx, &regroupv1.HeartbeatRequest{GroupId: "shared", MemberId: id, GroupInstanceId: inst, Generation: gen})
	wantCode(t, "a heartbeat as alice's member", err, regroup.CodeNotAuthorized)
	_, err = coord.SyncGroup(ctx, &regroupv1.SyncGroupRequest{GroupId: "shared", MemberId: id, GroupInstanceId: inst, Generation: gen})
	wantCode(t, "a SyncGroup as alice's member (to read its partitions and token)", err, regroup.CodeNotAuthorized)
	join := &regroupv1.JoinGroupRequest{GroupId: "shared", MemberId: id, GroupInstanceId: inst, ClientId: "x", SessionTimeoutMs: 6000, RebalanceTimeoutMs: 5000,
		Protocols: []*regroupv1.Protocol{{Name: "roundrobin", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}, Generation: -1}}}}
	_, err = coord.JoinGroup(ctx, join)
	wantCode(t, "a rejoin as alice's member", err, regroup.CodeNotAuthorized)
	join.MemberId = ""
	_, err = coord.JoinGroup(ctx, join)
	wantCode(t, "taking alice's static instance over", err, regroup.CodeNotAuthorized)
	for _, e := range []*regroupv1.LeaveMember{{MemberId: id, GroupInstanceId: inst}, {GroupInstanceId: inst}} {
		resp, err := coord.LeaveGroup(ctx, &regroupv1.LeaveGroupRequest{GroupId: "shared", Members: []*regroupv1.LeaveMember{e}})
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.GetMembers()[0]; r.GetErrorReason() != string(regroup.CodeNotAuthorized) {
			t.Errorf("a LeaveGroup of alice's member (%v): got %q %q, want NOT_AUTHORIZED", e, r.GetErrorReason(), r.GetErrorMessage())
		}
	}
	h.unchanged(t, victim, gen)
}

// TestHostileCorruptedRecords damages two records in etcd behind the
// coordinators' back (a group's, with bytes that are not a record, and a
// topic's): the next leader refuses that group and leaves that topic out,
// naming their keys, and serves everything else.
func TestHostileCorruptedRecords(t *testing.T) {
	node, onEtcd := sharedEtcd(t)
	first := startHostile(t, onEtcd...)
	for _, g := range []string{"alice-good", "alice-bad"} {
		startMemberWithSession(t, first.alice, g, "m", 6*time.Second, "orders")
		waitStable(t, regroupv1.NewAdminClient(first.ops), g, "m")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{node.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	groupKey := etcdstore.GroupsPrefix(etcdstore.DefaultPrefix) + "alice-bad"
	topicKey := etcdstore.TopicsPrefix(etcdstore.DefaultPrefix) + "payments"
	// Damage the record only once no write of it is coming: the group is
	// Stable in memory before its record is, and a shard that loaded
	// before the topic was put forms the group without its partitions,
	// then rebalances when the registry reaches it. A later write would
	// overwrite the damage.
	waitfor.Until(t, "etcd holds alice-bad's final Stable record", func() error {
		d, err := regroupv1.NewAdminClient(first.ops).DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: "alice-bad"})
		if err != nil {
			return err
		}
		if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != 1 || len(d.GetMembers()[0].GetAssignment().GetPartitions()) == 0 {
			return fmt.Errorf("alice-bad is %v, its member assigned %v", d.GetState(), d.GetMembers())
		}
		resp, err := cli.Get(ctx, groupKey)
		if err != nil || len(resp.Kvs) == 0 {
			return fmt.Errorf("no record yet (%v)", err)
		}
		rec := &storev1.GroupRecord{}
		if err := proto.Unmarshal(resp.Kvs[0].Value, rec); err != nil {
			return err
		}
		if rec.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || rec.GetGeneration() != d.GetGeneration() {
			return fmt.Errorf("the record is %v at generation %d, the group Stable at %d", rec.GetState(), rec.GetGeneration(), d.GetGeneration())
		}
		return nil
	})
	for _, key := range []string{groupKey, topicKey} {
		if _, err := cli.Put(ctx, key, "\xff\xff not a record"); err != nil {
			t.Fatal(err)
		}
	}

	next := newHostile(t, onEtcd...)
	first.stop()
	admin := regroupv1.NewAdminClient(next.ops)
	waitfor.Until(t, "the next coordinator leads every shard", func() error { return leadsAll(ctx, admin) })
	waitfor.Until(t, "the next coordinator serves the intact group", func() error {
		d, err := admin.DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: "alice-good"})
		if err != nil {
			return err
		}
		if len(d.GetMembers()) != 1 {
			return fmt.Errorf("alice-good has %d members", len(d.GetMembers()))
		}
		return nil
	})
	// (Until its shard is loaded the answer is COORDINATOR_NOT_AVAILABLE
	// too, without the key.)
	waitfor.Until(t, "the damaged group is refused, naming its key", func() error {
		_, err := admin.DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: "alice-bad"})
		if code := regroup.CodeOf(rpcerr.FromStatus(err)); code != regroup.CodeCoordinatorNotAvailable {
			return fmt.Errorf("alice-bad: got %v (%v), want %s", code, err, regroup.CodeCoordinatorNotAvailable)
		}
		if !strings.Contains(err.Error(), groupKey) {
			return fmt.Errorf("the error does not name the key %q: %v", groupKey, err)
		}
		return nil
	})
	var topics *regroupv1.ListTopicsResponse
	waitfor.Until(t, "the next coordinator lists the topics", func() error {
		topics, err = admin.ListTopics(ctx, &regroupv1.ListTopicsRequest{})
		return err
	})
	if len(topics.GetTopics()) != 1 || topics.GetTopics()[0].GetName() != "orders" {
		t.Errorf("topics after the damage: %v; want orders only", topics.GetTopics())
	}
	if !strings.Contains(next.logs.String(), topicKey) {
		t.Errorf("the coordinator's log does not name the damaged topic's key %q", topicKey)
	}
}

// With tokens and no coordinator certificates, a follower cannot vouch for
// a caller's identity to the leader: it sends an authenticated Admin call
// to the leader (NOT_COORDINATOR naming it) instead of forwarding it, which
// the leader would refuse as unauthenticated.
func TestHostileFollowerSendsTokenCallersToLeader(t *testing.T) {
	_, onEtcd := sharedEtcd(t)
	leader := startHostile(t, onEtcd...)
	follower := newHostile(t, onEtcd...)
	// Until the follower has read the election it knows no leader; then it
	// must name it rather than forward the call.
	waitfor.Until(t, "an operator's PutTopic on the follower is sent to the leader", func() error {
		_, err := regroupv1.NewAdminClient(follower.ops).PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 8}})
		var e *regroup.Error
		if !errors.As(rpcerr.FromStatus(err), &e) || e.Code != regroup.CodeNotCoordinator {
			t.Fatalf("got %v, want NOT_COORDINATOR naming the leader %s", err, leader.addr)
		}
		if e.Metadata[regroup.MetaLeader] != leader.addr {
			return fmt.Errorf("got %v, want NOT_COORDINATOR naming the leader %s", err, leader.addr)
		}
		return nil
	})
}

// sharedEtcd starts an etcd node for coordinators to share, and returns it
// with the flags that point regroup serve at it.
func sharedEtcd(t *testing.T) (*embedetcd.Node, []string) {
	t.Helper()
	node, err := embedetcd.Start(embedetcd.Config{Dir: t.TempDir(), Name: "e"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Close)
	return node, []string{"--store", "etcd", "--etcd-endpoints", node.Endpoint(), "--lease-ttl", "2s"}
}
