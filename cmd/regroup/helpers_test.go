package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// syncBuffer is a bytes.Buffer that one goroutine may write while another
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// served is `regroup serve` running in the test's process, on loopback
// ports chosen by the system.
type served struct {
	addr        string // gRPC
	metricsAddr string // HTTP, empty when disabled
	logs        *syncBuffer
	stop        func() // stops it (SIGTERM) and checks its exit status
}

// startServe runs `regroup serve` with settings that let test members use
// short sessions, plus extra arguments, and stops it when the test ends.
func startServe(t *testing.T, extra ...string) *served {
	t.Helper()
	s := &served{logs: &syncBuffer{}}
	// The operator surface does not depend on the store; the memory store
	// leads at once (TestServeEmbeddedEtcdKeepsState covers etcd).
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--log-json",
		"--store", "memory", "--min-session-timeout", "500ms", "--initial-rebalance-delay", "0s"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, args, io.Discard, s.logs) }()
	s.stop = sync.OnceFunc(func() {
		cancel()
		if status := <-exited; status != 0 {
			t.Errorf("regroup serve exited with status %d; its logs:\n%s", status, s.logs)
		}
	})
	t.Cleanup(s.stop)
	waitfor.Until(t, "regroup serve logs its addresses", func() error {
		select {
		case status := <-exited:
			t.Fatalf("regroup serve exited with status %d:\n%s", status, s.logs)
		default:
		}
		sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			addr, _ := line["address"].(string)
			switch line["@message"] {
			case "serving":
				s.addr = addr
			case "serving metrics":
				s.metricsAddr = addr
			}
		}
		if s.addr == "" {
			return errors.New("no \"serving\" line yet")
		}
		return nil
	})
	return s
}

// dial connects to a coordinator.
func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// regroupCLI runs one regroup command line in this process.
func regroupCLI(ctx context.Context, args ...string) (stdout, stderr string, status int) {
	var out, errs bytes.Buffer
	status = run(ctx, args, &out, &errs)
	return out.String(), errs.String(), status
}

// member is a static member that speaks the group protocol directly: it
// joins, its leader assigns partitions round-robin, and it keeps a held
// heartbeat in flight, rejoining whenever the group rebalances.
type member struct {
	client   regroupv1.CoordinatorClient
	group    string
	instance string
	session  time.Duration
	topics   []string
	leave    atomic.Bool
	cancel   context.CancelFunc
	done     chan struct{}
	secret   string // from the last JoinGroup answer (used by the member's goroutine only)
}

// startMember runs a member with a session timeout of one second until stop
// or crash is called, or the test ends.
func startMember(t *testing.T, conn *grpc.ClientConn, groupID, instance string, topics ...string) *member {
	return startMemberWithSession(t, conn, groupID, instance, time.Second, topics...)
}

// startMemberWithSession is startMember with the given session timeout.
func startMemberWithSession(t *testing.T, conn *grpc.ClientConn, groupID, instance string, session time.Duration, topics ...string) *member {
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{client: regroupv1.NewCoordinatorClient(conn), group: groupID, instance: instance, session: session, topics: topics,
		cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		var id string
		for ctx.Err() == nil {
			joined, gen, err := m.joinAndSync(ctx, id)
			if errors.Is(err, regroup.ErrUnknownMemberID) {
				id = ""
			}
			if err != nil {
				if regroup.CodeOf(err).Fatal() {
					t.Errorf("member %s: %v", instance, err)
					return
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			id = joined
			for ctx.Err() == nil {
				_, err := m.client.Heartbeat(ctx, &regroupv1.HeartbeatRequest{GroupId: groupID, MemberId: id, GroupInstanceId: instance, Generation: gen, HoldMs: (session / 3).Milliseconds()})
				if err != nil {
					break
				}
			}
		}
		if id != "" && m.leave.Load() {
			_, _ = m.client.LeaveGroup(context.Background(), &regroupv1.LeaveGroupRequest{GroupId: groupID,
				Members: []*regroupv1.LeaveMember{{MemberId: id, GroupInstanceId: instance, Reason: "test member stops", MemberSecret: m.secret}}})
		}
	}()
	t.Cleanup(m.crash)
	return m
}

func (m *member) joinAndSync(ctx context.Context, id string) (string, int32, error) {
	resp, err := m.client.JoinGroup(ctx, &regroupv1.JoinGroupRequest{
		GroupId: m.group, MemberId: id, GroupInstanceId: m.instance, ClientId: "test", SessionTimeoutMs: m.session.Milliseconds(), RebalanceTimeoutMs: 5000,
		Protocols: []*regroupv1.Protocol{{Name: "roundrobin", Subscription: &regroupv1.Subscription{Topics: m.topics, Generation: -1}}},
	})
	if err != nil {
		return "", 0, rpcerr.FromStatus(err)
	}
	m.secret = resp.GetMemberSecret()
	req := &regroupv1.SyncGroupRequest{GroupId: m.group, Generation: resp.GetGeneration(), MemberId: resp.GetMemberId(), GroupInstanceId: m.instance}
	if resp.GetLeaderId() == resp.GetMemberId() && !resp.GetSkipAssignment() {
		plan := map[string]*regroupv1.Assignment{}
		for _, mm := range resp.GetMembers() {
			plan[mm.GetMemberId()] = &regroupv1.Assignment{}
		}
		for _, tp := range resp.GetTopics() {
			for p := range tp.GetPartitions() {
				a := plan[resp.GetMembers()[int(p)%len(resp.GetMembers())].GetMemberId()]
				if n := len(a.Partitions); n == 0 || a.Partitions[n-1].Topic != tp.GetName() {
					a.Partitions = append(a.Partitions, &regroupv1.TopicPartitions{Topic: tp.GetName()})
				}
				last := a.Partitions[len(a.Partitions)-1]
				last.Partitions = append(last.Partitions, p)
			}
		}
		for _, mm := range resp.GetMembers() {
			req.Assignments = append(req.Assignments, &regroupv1.MemberAssignment{MemberId: mm.GetMemberId(), Assignment: plan[mm.GetMemberId()]})
		}
	}
	if _, err := m.client.SyncGroup(ctx, req); err != nil {
		return "", 0, rpcerr.FromStatus(err)
	}
	return resp.GetMemberId(), resp.GetGeneration(), nil
}

// stop makes the member leave the group and waits until it has.
func (m *member) stop() {
	m.leave.Store(true)
	m.cancel()
	<-m.done
}

// crash stops the member without leaving, as a crashed process would.
func (m *member) crash() {
	m.cancel()
	<-m.done
}

// waitStable waits until the group is Stable with the given instances as
// members, every one of them holding an assignment.
func waitStable(t *testing.T, admin regroupv1.AdminClient, groupID string, instances ...string) *regroupv1.DescribeGroupResponse {
	t.Helper()
	var d *regroupv1.DescribeGroupResponse
	waitfor.Until(t, fmt.Sprintf("group %s Stable with members %v", groupID, instances), func() error {
		var err error
		d, err = admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: groupID})
		if err != nil {
			return err
		}
		var got []string
		for _, m := range d.GetMembers() {
			if m.GetAwaitingSync() {
				return fmt.Errorf("member %s has no assignment yet", m.GetMemberId())
			}
			got = append(got, m.GetGroupInstanceId())
		}
		if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || fmt.Sprint(got) != fmt.Sprint(instances) {
			return fmt.Errorf("group is %v with %v", d.GetState(), got)
		}
		return nil
	})
	return d
}
