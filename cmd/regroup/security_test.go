package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/internal/testcerts"
	"github.com/regroup-dev/regroup/internal/waitfor"
)

// TestPlaintextRefusal checks the rule on listeners without TLS: fine on
// loopback, refused elsewhere (wildcards included) unless
// --insecure-plaintext. It reads addresses only; tests bind no
// non-loopback address.
func TestPlaintextRefusal(t *testing.T) {
	for _, tc := range []struct {
		ip            string
		tls, insecure bool
		refused       bool
	}{
		{"127.0.0.1", false, false, false},
		{"::1", false, false, false},
		{"127.0.0.2", false, false, false},
		{"10.0.0.1", false, false, true},
		{"0.0.0.0", false, false, true},
		{"::", false, false, true},
		{"10.0.0.1", true, false, false},
		{"0.0.0.0", false, true, false},
	} {
		err := plaintextRefusal("--listen", &net.TCPAddr{IP: net.ParseIP(tc.ip), Port: 9070}, tc.tls, tc.insecure)
		if (err != nil) != tc.refused {
			t.Errorf("%s tls=%v insecure=%v: %v, want refused %v", tc.ip, tc.tls, tc.insecure, err, tc.refused)
		}
		if err != nil && !strings.Contains(err.Error(), "--insecure-plaintext") {
			t.Errorf("the refusal %q does not say what to do", err)
		}
	}
}

func TestLoopbackEndpoint(t *testing.T) {
	for ep, want := range map[string]bool{
		"127.0.0.1:9070": true, "[::1]:9070": true, "localhost:9070": true,
		"10.0.0.1:9070": false, "coordinator:9070": false, "127.0.0.1": false,
	} {
		if got := loopbackEndpoint(ep); got != want {
			t.Errorf("loopbackEndpoint(%q) = %v, want %v", ep, got, want)
		}
	}
}

// TestServeMTLSWithAdminAddress runs `regroup serve` with mTLS, a policy
// and a separate Admin address, and the CLI against it.
func TestServeMTLSWithAdminAddress(t *testing.T) {
	ca := testcerts.NewCA(t, "test")
	srv := ca.Issue(t, "coordinator", testcerts.Server("coordinator"))
	ops := ca.Issue(t, "ops", testcerts.Spec{CommonName: "ops"})
	billing := ca.Issue(t, "billing-1", testcerts.Spec{CommonName: "billing-1"})
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy")
	if err := os.WriteFile(policy, []byte("ops describe,admin group:* topic:*\nbilling-* consume group:billing-*\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("0ps"))
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("ops "+hex.EncodeToString(h[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--tls-client-ca", ca.CertFile,
		"--policy-file", policy, "--token-file", tokens, "--admin-listen", "127.0.0.1:0")
	var adminAddr string
	waitfor.Until(t, "regroup serve logs its Admin address", func() error {
		sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["@message"] == "serving Admin" {
				adminAddr, _ = line["address"].(string)
				return nil
			}
		}
		return errors.New("no \"serving Admin\" line yet")
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	as := func(p testcerts.Pair, endpoint string, args ...string) (string, string, int) {
		return regroupCLI(ctx, append(args, "--endpoint", endpoint, "--tls-ca", ca.CertFile, "--tls-cert", p.CertFile, "--tls-key", p.KeyFile)...)
	}
	if out, errs, st := as(ops, adminAddr, "topics", "put", "orders", "--partitions", "3"); st != 0 {
		t.Fatalf("ops puts a topic on the Admin address: status %d\n%s%s", st, out, errs)
	}
	if _, errs, st := as(ops, s.addr, "topics", "list"); st == 0 || !strings.Contains(errs, "admin address") {
		t.Fatalf("ops lists topics on the members' address: status %d, %q; want a refusal naming the admin address", st, errs)
	}
	if _, errs, st := as(billing, adminAddr, "topics", "delete", "orders"); st == 0 || !strings.Contains(errs, "NOT_AUTHORIZED") {
		t.Fatalf("billing deletes a topic: status %d, %q; want NOT_AUTHORIZED", st, errs)
	}
	if _, errs, st := regroupCLI(ctx, "topics", "list", "--endpoint", adminAddr); st == 0 {
		t.Fatalf("a plaintext CLI against the TLS coordinator succeeded: %q", errs)
	}
	out, errs, st := regroupCLI(ctx, "topics", "list", "--endpoint", adminAddr, "--tls-ca", ca.CertFile, "--token", "0ps")
	if st != 0 || !strings.Contains(out, "orders") {
		t.Fatalf("ops lists topics by token: status %d\n%s%s", st, out, errs)
	}
}
