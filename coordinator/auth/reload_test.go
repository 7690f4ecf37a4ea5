package auth_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/auth"
	"github.com/regroup-dev/regroup/internal/testcerts"
	"github.com/regroup-dev/regroup/internal/waitfor"
)

// TestCertificateReload replaces the coordinator's certificate files while
// it serves: the next handshake presents the new certificate; a bad
// replacement keeps the previous one.
func TestCertificateReload(t *testing.T) {
	ca := testcerts.NewCA(t, "test")
	pair := ca.Issue(t, "server", testcerts.Server("first"))
	s := startSecured(t, newAuth(t, auth.Config{CertFile: pair.CertFile, KeyFile: pair.KeyFile}), auth.Listener{})
	if cn, err := peerCN(t, s.addr, ca); err != nil || cn != "first" {
		t.Fatalf("first handshake: certificate %q, %v; want first", cn, err)
	}
	ca.Issue(t, "server", testcerts.Server("second"))
	waitfor.Until(t, "a new handshake presents the rotated certificate", func() error {
		if cn, err := peerCN(t, s.addr, ca); err != nil || cn != "second" {
			return fmt.Errorf("certificate %q, %v", cn, err)
		}
		return nil
	})
	if err := os.WriteFile(pair.CertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if cn, err := peerCN(t, s.addr, ca); err != nil || cn != "second" {
			t.Fatalf("after a bad certificate file: certificate %q, %v; want the previous one, second", cn, err)
		}
	}
}

// TestPolicyAndTokenReload changes the policy and token files while the
// coordinator serves: calls see the change within the check interval; a
// bad policy keeps the previous one.
func TestPolicyAndTokenReload(t *testing.T) {
	dir := t.TempDir()
	tokens := writeFile(t, dir, "tokens", tokenLine("billing-1", "b"))
	policy := writeFile(t, dir, "policy", "billing-* consume group:billing-*\n")
	s := startSecured(t, newAuth(t, auth.Config{TokenFile: tokens, PolicyFile: policy}), auth.Listener{})
	c := connect(t, s.addr, nil, "b")
	wantCode(t, "before the change", find(t, c, "payroll"), regroup.CodeNotAuthorized)

	writeFile(t, dir, "policy", "billing-* consume group:billing-* group:payroll\n")
	waitfor.Until(t, "the new policy allows payroll", func() error { return find(t, c, "payroll") })

	writeFile(t, dir, "policy", "billing-* consume\n")
	time.Sleep(1500 * time.Millisecond) // past the files' check interval (1 s), so the bad file was read
	for range 3 {
		wantCode(t, "after a bad policy", find(t, c, "payroll"), "")
	}
	writeFile(t, dir, "tokens", tokenLine("billing-1", "b2"))
	waitfor.Until(t, "the old token is refused", func() error {
		if err := find(t, c, "payroll"); regroup.CodeOf(err) != regroup.CodeUnauthenticated {
			return fmt.Errorf("old token: %v", err)
		}
		return nil
	})
	wantCode(t, "new token", find(t, connect(t, s.addr, nil, "b2"), "payroll"), "")
}
