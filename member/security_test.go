package member_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/auth"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/internal/testcerts"
	"github.com/regroup-dev/regroup/internal/waitfor"
	"github.com/regroup-dev/regroup/member"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// startMTLSCoordinator starts a coordinator that requires client
// certificates signed by ca, with policy, and returns its address.
func startMTLSCoordinator(t *testing.T, ca *testcerts.CA, policy string) string {
	t.Helper()
	pair := ca.Issue(t, "coordinator", testcerts.Server("coordinator"))
	policyFile := filepath.Join(t.TempDir(), "policy")
	if err := os.WriteFile(policyFile, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{CertFile: pair.CertFile, KeyFile: pair.KeyFile, ClientCAFile: ca.CertFile, PolicyFile: policyFile, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := coordinator.New(context.Background(), coordinator.Config{Group: testGroupConfig(), Logger: quietLogger()}, memstore.New())
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(a.ServerOptions(auth.Listener{})...)
	srv.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(func() {
		srv.Close()
		gs.Stop()
	})
	return lis.Addr().String()
}

func tlsFor(t *testing.T, ca *testcerts.CA, name string) *tls.Config {
	t.Helper()
	pair := ca.Issue(t, name, testcerts.Spec{CommonName: name})
	cfg, err := auth.ClientTLS(ca.CertFile, pair.CertFile, pair.KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestMemberOverMTLS runs a member with a client certificate against a
// coordinator that requires one: it gets every partition; a member whose
// identity the policy does not allow on the group stops with
// NOT_AUTHORIZED.
func TestMemberOverMTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "test")
	addr := startMTLSCoordinator(t, ca, "billing-*  consume  group:billing\nops  describe,admin  group:* topic:*\n")

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsFor(t, ca, "ops"))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := regroupv1.NewAdminClient(conn).PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 4}}); err != nil {
		t.Fatal(err)
	}

	run := func(name string) (*member.Member, chan error, context.CancelFunc) {
		m, err := member.New(member.Config{
			Endpoints: []string{addr}, Group: "billing", Topics: []string{"orders"},
			SessionTimeout: 2 * time.Second, HeartbeatInterval: 500 * time.Millisecond, SafetyMargin: 200 * time.Millisecond,
			TLS: tlsFor(t, ca, name), Logger: quietLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		t.Cleanup(cancel)
		return m, done, cancel
	}
	m, done, stop := run("billing-1")
	waitfor.Until(t, "the member over mTLS owns the 4 partitions", func() error {
		if n := len(m.Assignment()); n != 4 {
			return fmt.Errorf("owns %d", n)
		}
		return nil
	})
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30 s after its context ended")
	}

	_, done, _ = run("payroll-1")
	select {
	case err := <-done:
		if !errors.Is(err, regroup.ErrNotAuthorized) {
			t.Fatalf("a member without the consume right: Run returned %v, want NOT_AUTHORIZED", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a member without the consume right did not stop within 30 s")
	}
}

func TestConfigTLSAndDialOptions(t *testing.T) {
	base := member.Config{Group: "g", Topics: []string{"t"}, Logger: quietLogger()}
	for _, tc := range []struct {
		name string
		set  func(*member.Config)
		want string
	}{
		{"DialOptions and TLS", func(c *member.Config) {
			c.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
			c.TLS = &tls.Config{}
		}, "not both"},
		{"DialOptions and Token", func(c *member.Config) {
			c.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
			c.Token = "x"
		}, "not both"},
		{"Token without TLS", func(c *member.Config) { c.Token = "x" }, "set TLS too"},
	} {
		c := base
		tc.set(&c)
		if _, err := member.New(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	c := base
	c.TLS, c.Token = &tls.Config{}, "x"
	if _, err := member.New(c); err != nil {
		t.Errorf("TLS and Token: %v", err)
	}
}
