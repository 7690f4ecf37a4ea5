package auth_test

import (
	"crypto/tls"
	"fmt"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/auth"
	"github.com/regroup-dev/regroup/internal/testcerts"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

const testPolicy = `# members of the billing groups
billing-*  consume,describe  group:billing-*
# operators: everything
ops        describe,admin    group:* topic:*
# topic owners may change their topics only
orders-admin  admin  topic:orders-*
`

func TestNoFlagsAllowsEverythingAnonymously(t *testing.T) {
	s := startSecured(t, newAuth(t, auth.Config{}), auth.Listener{})
	c := connect(t, s.addr, nil, "")
	wantCode(t, "FindCoordinator", find(t, c, "any-group"), "")
	_, err := c.admin.PutTopic(callCtx(t), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 3}})
	wantCode(t, "PutTopic", err, "")
	if id := s.seen.last(); id != (auth.Identity{}) {
		t.Fatalf("handler saw identity %+v, want the anonymous one", id)
	}
}

func TestTLSRefusesPlaintextClients(t *testing.T) {
	ca := testcerts.NewCA(t, "test")
	srvPair := ca.Issue(t, "server", testcerts.Server("coordinator"))
	s := startSecured(t, newAuth(t, auth.Config{CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile}), auth.Listener{})

	wantCode(t, "FindCoordinator over TLS", find(t, connect(t, s.addr, clientTLS(t, ca, nil), ""), "g"), "")

	err := find(t, connect(t, s.addr, nil, ""), "g")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext client of a TLS coordinator: %v, want Unavailable", err)
	}
	other := testcerts.NewCA(t, "other")
	err = find(t, connect(t, s.addr, clientTLS(t, other, nil), ""), "g")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("client that does not trust the coordinator's CA: %v, want Unavailable", err)
	}
}

func TestMTLSIdentityReachesHandler(t *testing.T) {
	ca := testcerts.NewCA(t, "test")
	srvPair := ca.Issue(t, "server", testcerts.Server("coordinator"))
	dir := t.TempDir()
	a := newAuth(t, auth.Config{
		CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile, ClientCAFile: ca.CertFile,
		PolicyFile: writeFile(t, dir, "policy", testPolicy+"spiffe://example.org/billing  consume group:billing-*\n"),
	})
	s := startSecured(t, a, auth.Listener{})

	err := find(t, connect(t, s.addr, clientTLS(t, ca, nil), ""), "billing-a")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("client without a certificate: %v, want Unavailable (the handshake fails)", err)
	}
	rogue := testcerts.NewCA(t, "rogue")
	rp := rogue.Issue(t, "billing-1", testcerts.Spec{CommonName: "billing-1"})
	if err := find(t, connect(t, s.addr, clientTLS(t, ca, &rp), ""), "billing-a"); status.Code(err) != codes.Unavailable {
		t.Fatalf("client certificate from another CA: %v, want Unavailable", err)
	}

	for _, tc := range []struct {
		spec testcerts.Spec
		want string
	}{
		{testcerts.Spec{CommonName: "billing-1"}, "billing-1"},
		{testcerts.Spec{CommonName: "cn", DNSNames: []string{"billing-2", "other"}}, "billing-2"},
		{testcerts.Spec{CommonName: "cn", DNSNames: []string{"other"}, URIs: []string{"spiffe://example.org/billing"}}, "spiffe://example.org/billing"},
	} {
		p := ca.Issue(t, strings.NewReplacer(":", "-", "/", "-").Replace(tc.want), tc.spec)
		c := connect(t, s.addr, clientTLS(t, ca, &p), "")
		wantCode(t, tc.want+" on billing-a", find(t, c, "billing-a"), "")
		if id := s.seen.last(); id != (auth.Identity{Name: tc.want, Method: "mtls"}) {
			t.Fatalf("handler saw %+v, want %q by mtls", id, tc.want)
		}
	}
}

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	a := newAuth(t, auth.Config{
		TokenFile:  writeFile(t, dir, "tokens", "# name hash\n"+tokenLine("billing-1", "s3cret")+tokenLine("ops", "0ps-token")),
		PolicyFile: writeFile(t, dir, "policy", testPolicy),
	})
	s := startSecured(t, a, auth.Listener{})

	// Plaintext is fine on loopback.
	wantCode(t, "good token", find(t, connect(t, s.addr, nil, "s3cret"), "billing-a"), "")
	if id := s.seen.last(); id != (auth.Identity{Name: "billing-1", Method: "token"}) {
		t.Fatalf("handler saw %+v, want billing-1 by token", id)
	}
	wantCode(t, "wrong token", find(t, connect(t, s.addr, nil, "s3cre"), "billing-a"), regroup.CodeUnauthenticated)
	wantCode(t, "no token", find(t, connect(t, s.addr, nil, ""), "billing-a"), regroup.CodeUnauthenticated)
	wantCode(t, "good token, group not granted", find(t, connect(t, s.addr, nil, "s3cret"), "payroll"), regroup.CodeNotAuthorized)

	// Over TLS with a client CA too, a token is an alternative to a certificate.
	ca := testcerts.NewCA(t, "test")
	srvPair := ca.Issue(t, "server", testcerts.Server("coordinator"))
	b := newAuth(t, auth.Config{
		CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile, ClientCAFile: ca.CertFile,
		TokenFile: writeFile(t, dir, "tokens2", tokenLine("ops", "0ps-token")), PolicyFile: writeFile(t, dir, "policy2", testPolicy),
	})
	s2 := startSecured(t, b, auth.Listener{})
	wantCode(t, "token over TLS without a certificate", find(t, connect(t, s2.addr, clientTLS(t, ca, nil), "0ps-token"), "x"), regroup.CodeNotAuthorized)
	_, err := connect(t, s2.addr, clientTLS(t, ca, nil), "0ps-token").admin.ListTopics(callCtx(t), &regroupv1.ListTopicsRequest{})
	wantCode(t, "ops ListTopics by token over TLS", err, "")
	wantCode(t, "neither certificate nor token", find(t, connect(t, s2.addr, clientTLS(t, ca, nil), ""), "billing-a"), regroup.CodeUnauthenticated)
}

func TestPolicyOverGRPC(t *testing.T) {
	dir := t.TempDir()
	a := newAuth(t, auth.Config{
		TokenFile: writeFile(t, dir, "tokens", tokenLine("billing-1", "b")+tokenLine("ops", "o")+tokenLine("orders-admin", "oa")+
			tokenLine("nobody", "n")+tokenLine("payroll-app", "p")),
		PolicyFile: writeFile(t, dir, "policy", testPolicy+"payroll-app consume group:payroll\n"),
	})
	s := startSecured(t, a, auth.Listener{})
	billing, ops := connect(t, s.addr, nil, "b"), connect(t, s.addr, nil, "o")
	ordersAdmin, nobody := connect(t, s.addr, nil, "oa"), connect(t, s.addr, nil, "n")

	put := func(c clients, topic string) error {
		_, err := c.admin.PutTopic(callCtx(t), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: topic, Partitions: 2}})
		return err
	}
	wantCode(t, "ops puts any topic", put(ops, "payments"), "")
	wantCode(t, "orders-admin puts orders-eu", put(ordersAdmin, "orders-eu"), "")
	wantCode(t, "orders-admin puts payments", put(ordersAdmin, "payments"), regroup.CodeNotAuthorized)
	wantCode(t, "billing puts a topic", put(billing, "orders-eu"), regroup.CodeNotAuthorized)
	_, err := ordersAdmin.admin.DeleteTopic(callCtx(t), &regroupv1.DeleteTopicRequest{Name: "payments"})
	wantCode(t, "orders-admin deletes payments", err, regroup.CodeNotAuthorized)

	wantCode(t, "billing consumes billing-a", find(t, billing, "billing-a"), "")
	wantCode(t, "billing consumes payroll", find(t, billing, "payroll"), regroup.CodeNotAuthorized)
	wantCode(t, "ops consumes billing-a (describe and admin only)", find(t, ops, "billing-a"), regroup.CodeNotAuthorized)
	wantCode(t, "nobody consumes", find(t, nobody, "billing-a"), regroup.CodeNotAuthorized)

	// Groups to list: billing-a and payroll, made by their consumers.
	payroll := connect(t, s.addr, nil, "p")
	for g, c := range map[string]clients{"billing-a": billing, "payroll": payroll} {
		_, err := c.coord.JoinGroup(callCtx(t), &regroupv1.JoinGroupRequest{GroupId: g, SessionTimeoutMs: 10000, RebalanceTimeoutMs: 10000,
			Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"orders-eu"}}}}})
		wantCode(t, "first JoinGroup of "+g, err, regroup.CodeMemberIDRequired)
	}
	list := func(c clients) (string, error) {
		resp, err := c.admin.ListGroups(callCtx(t), &regroupv1.ListGroupsRequest{})
		var ids []string
		for _, g := range resp.GetGroups() {
			ids = append(ids, g.GetGroupId())
		}
		sort.Strings(ids)
		return strings.Join(ids, ","), err
	}
	waitfor.Until(t, "ops lists both groups", func() error {
		if ids, err := list(ops); err != nil || ids != "billing-a,payroll" {
			return fmt.Errorf("ops lists %v, %v", ids, err)
		}
		return nil
	})
	if ids, err := list(billing); err != nil || ids != "billing-a" {
		t.Fatalf("billing lists %q, %v; want only billing-a, the group it may describe", ids, err)
	}
	_, err = list(ordersAdmin)
	wantCode(t, "orders-admin lists groups (no describe right)", err, regroup.CodeNotAuthorized)
	_, err = ops.admin.DescribeGroup(callCtx(t), &regroupv1.DescribeGroupRequest{GroupId: "billing-a"})
	wantCode(t, "ops describes billing-a", err, "")
	_, err = billing.admin.DeleteGroup(callCtx(t), &regroupv1.DeleteGroupRequest{GroupId: "billing-a"})
	wantCode(t, "billing deletes its group (no admin right)", err, regroup.CodeNotAuthorized)
	_, err = billing.admin.DescribeCluster(callCtx(t), &regroupv1.DescribeClusterRequest{})
	wantCode(t, "billing describes the cluster", err, "")
	_, err = nobody.admin.DescribeCluster(callCtx(t), &regroupv1.DescribeClusterRequest{})
	wantCode(t, "nobody describes the cluster", err, regroup.CodeNotAuthorized)

	// WatchGroup is authorized at its request.
	stream, err := billing.admin.WatchGroup(callCtx(t), &regroupv1.WatchGroupRequest{GroupId: "payroll"})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, "billing watches payroll", err, regroup.CodeNotAuthorized)
	stream, err = billing.admin.WatchGroup(callCtx(t), &regroupv1.WatchGroupRequest{GroupId: "billing-a"})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, "billing watches billing-a", err, "")
}

func TestCoordinatorOnlyListener(t *testing.T) {
	for _, a := range []*auth.Auth{newAuth(t, auth.Config{}), newAuth(t, auth.Config{
		TokenFile:  writeFile(t, t.TempDir(), "tokens", tokenLine("ops", "o")),
		PolicyFile: writeFile(t, t.TempDir(), "policy", testPolicy),
	})} {
		s := startSecured(t, a, auth.Listener{CoordinatorOnly: true})
		c := connect(t, s.addr, nil, "o")
		_, err := c.admin.ListTopics(callCtx(t), &regroupv1.ListTopicsRequest{})
		wantCode(t, "Admin on the members' address ("+a.String()+")", err, regroup.CodeNotAuthorized)
		if !strings.Contains(err.Error(), "admin address") {
			t.Fatalf("refusal %q does not say where Admin is", err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "test")
	p := ca.Issue(t, "server", testcerts.Server("coordinator"))
	policy := writeFile(t, dir, "policy", testPolicy)
	tokens := writeFile(t, dir, "tokens", tokenLine("a", "b"))
	for _, tc := range []struct {
		cfg  auth.Config
		want string
	}{
		{auth.Config{CertFile: p.CertFile}, "--tls-key"},
		{auth.Config{ClientCAFile: ca.CertFile, PolicyFile: policy}, "needs TLS"},
		{auth.Config{TokenFile: tokens}, "give --policy-file"},
		{auth.Config{PolicyFile: policy}, "needs authenticated callers"},
		{auth.Config{CertFile: p.KeyFile, KeyFile: p.KeyFile}, p.KeyFile},
		{auth.Config{TokenFile: writeFile(t, dir, "bad-tokens", "a b\n"), PolicyFile: policy}, "bad-tokens:1"},
		{auth.Config{TokenFile: tokens, PolicyFile: writeFile(t, dir, "bad-policy", "\n\nops admin\n")}, "bad-policy:3"},
		{auth.Config{CertFile: p.CertFile, KeyFile: p.KeyFile, ClientCAFile: p.KeyFile, PolicyFile: policy}, "holds no PEM certificate"},
	} {
		tc.cfg.Logger = quiet()
		_, err := auth.New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
}

// peerCN returns the common name of the certificate the server at addr
// presents in a new handshake.
func peerCN(t testing.TB, addr string, ca *testcerts.CA) (string, error) {
	cfg := clientTLS(t, ca, nil)
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}
