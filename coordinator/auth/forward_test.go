package auth_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/auth"
	"github.com/regroup-dev/regroup/coordinator/election"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/testcerts"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

const forwardPolicy = `coord-*  coordinator
ops      describe,admin  group:* topic:*
billing-*  consume,describe  group:billing-*
`

// electedCoord is one `regroup serve` with mTLS: its own policy file,
// elector and gRPC server.
type electedCoord struct {
	addr   string
	policy string
	srv    *coordinator.Server
}

func startElected(t *testing.T, name string, ca *testcerts.CA, endpoints []string) *electedCoord {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pair := ca.Issue(t, name, testcerts.Server(name))
	c := &electedCoord{addr: lis.Addr().String(), policy: writeFile(t, t.TempDir(), "policy", forwardPolicy)}
	a := newAuth(t, auth.Config{CertFile: pair.CertFile, KeyFile: pair.KeyFile, ClientCAFile: ca.CertFile, PolicyFile: c.policy})
	peerTLS, err := a.PeerTLS(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := etcdstore.NewClient(endpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	el, err := election.New(election.Config{Client: cli, TTL: 2 * time.Second, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	gcfg := group.DefaultConfig()
	gcfg.InitialRebalanceDelay = 0
	c.srv, err = coordinator.NewElected(coordinator.Config{Group: gcfg, Logger: quiet(), Address: c.addr, PeerTLS: peerTLS}, el)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(a.ServerOptions(auth.Listener{})...)
	c.srv.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.srv.Run(ctx)
	}()
	t.Cleanup(func() {
		c.srv.Close()
		cancel()
		<-done
		gs.Stop()
		el.Close()
		cli.Close()
	})
	return c
}

// TestForwardingOverMTLS: a follower forwards an Admin call to the leader
// over mTLS with its own certificate, and the leader authorizes it as the
// original caller; the leader refuses forwarded identities from a peer
// without the coordinator right, and from a client that forges one.
func TestForwardingOverMTLS(t *testing.T) {
	dir := t.TempDir()
	nodes, err := embedetcd.StartCluster([]embedetcd.Config{{Dir: filepath.Join(dir, "etcd0"), Name: "etcd0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nodes[0].Close() })
	ca := testcerts.NewCA(t, "test")
	a := startElected(t, "coord-a", ca, embedetcd.Endpoints(nodes))
	b := startElected(t, "coord-b", ca, embedetcd.Endpoints(nodes))
	var leader, follower *electedCoord
	waitfor.Until(t, "one of two coordinators leads", func() error {
		switch {
		case a.srv.Leading() && !b.srv.Leading():
			leader, follower = a, b
		case b.srv.Leading() && !a.srv.Leading():
			leader, follower = b, a
		default:
			return fmt.Errorf("a leads: %v, b leads: %v", a.srv.Leading(), b.srv.Leading())
		}
		return nil
	})
	opsPair := ca.Issue(t, "ops", testcerts.Spec{CommonName: "ops"})
	billingPair := ca.Issue(t, "billing-1", testcerts.Spec{CommonName: "billing-1"})
	ops := connect(t, follower.addr, clientTLS(t, ca, &opsPair), "")
	billing := connect(t, follower.addr, clientTLS(t, ca, &billingPair), "")
	put := func(c clients, topic string) error {
		_, err := c.admin.PutTopic(callCtx(t), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: topic, Partitions: 2}})
		return err
	}
	waitfor.Until(t, "the follower forwards ops's PutTopic to the leader", func() error { return put(ops, "orders") })
	resp, err := connect(t, leader.addr, clientTLS(t, ca, &opsPair), "").admin.ListTopics(callCtx(t), &regroupv1.ListTopicsRequest{})
	if err != nil || len(resp.GetTopics()) != 1 || resp.GetTopics()[0].GetName() != "orders" {
		t.Fatalf("the leader's topics after a forwarded PutTopic: %v, %v", resp, err)
	}
	wantCode(t, "billing's PutTopic at the follower", put(billing, "orders"), regroup.CodeNotAuthorized)

	// A client may not claim to be forwarding for someone else.
	forged := metadata.AppendToOutgoingContext(callCtx(t), "regroup-forwarded-identity-bin", "ops", "regroup-forwarded-method", "mtls")
	_, err = connect(t, leader.addr, clientTLS(t, ca, &billingPair), "").admin.PutTopic(forged,
		&regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "forged", Partitions: 2}})
	wantCode(t, "a forged forwarded identity", err, regroup.CodeNotAuthorized)

	// Without the coordinator right, the follower's forwards are refused.
	writeFile(t, filepath.Dir(leader.policy), "policy", strings.Replace(forwardPolicy, "coord-*  coordinator\n", "", 1))
	waitfor.Until(t, "the leader refuses forwards from a follower that is no longer a coordinator", func() error {
		err := put(ops, "payments")
		if regroup.CodeOf(rpcerr.FromStatus(err)) != regroup.CodeNotAuthorized || !strings.Contains(err.Error(), "not a coordinator") {
			return fmt.Errorf("forwarded PutTopic: %v", err)
		}
		return nil
	})
}
