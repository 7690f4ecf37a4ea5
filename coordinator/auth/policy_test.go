package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/internal/rpcerr"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"billing", "billing", true},
		{"billing", "billing-1", false},
		{"billing-*", "billing-", true},
		{"billing-*", "billing-eu-1", true},
		{"billing-*", "billing", false},
		{"*-eu", "orders-eu", true},
		{"*-eu", "orders-eu-2", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXcYb", false},
		{"spiffe://example.org/*", "spiffe://example.org/billing", true},
		{"", "", true},
		{"", "x", false},
	} {
		if got := Match(tc.pattern, tc.name); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestPolicyDecisions(t *testing.T) {
	p, err := ParsePolicy("test", []byte(`
# comment
billing-*     consume,describe  group:billing-*  group:shared
ops           describe,admin    group:* topic:*
orders-admin  admin             topic:orders-*
reader        describe          group:reports-*
coord-*       coordinator
`))
	if err != nil {
		t.Fatal(err)
	}
	type q struct {
		id    string
		right Right
		kind  string // group, topic or any
		name  string
		want  bool
	}
	for _, c := range []q{
		{"billing-1", Consume, "group", "billing-a", true},
		{"billing-1", Consume, "group", "shared", true},
		{"billing-1", Consume, "group", "payroll", false},
		{"billing-1", Describe, "group", "billing-a", true},
		{"billing-1", Admin, "group", "billing-a", false},
		{"billing", Consume, "group", "billing-a", false},
		{"ops", Consume, "group", "billing-a", false},
		{"ops", Admin, "group", "anything", true},
		{"ops", Admin, "topic", "anything", true},
		{"orders-admin", Admin, "topic", "orders-eu", true},
		{"orders-admin", Admin, "topic", "payments", false},
		{"orders-admin", Admin, "group", "orders-eu", false},
		{"orders-admin", Describe, "any", "", false},
		{"reader", Describe, "any", "", true},
		{"reader", Describe, "group", "reports-daily", true},
		{"reader", Describe, "group", "billing-a", false},
		{"coord-1", Coordinator, "any", "", true},
		{"coord-1", Consume, "group", "billing-a", false},
		{"ops", Coordinator, "any", "", false},
		{"", Consume, "group", "billing-a", false},
	} {
		var got bool
		switch c.kind {
		case "group":
			got = p.AllowsGroup(c.id, c.right, c.name)
		case "topic":
			got = p.AllowsTopic(c.id, c.right, c.name)
		default:
			got = p.Grants(c.id, c.right)
		}
		if got != c.want {
			t.Errorf("%s %s on %s %q: allowed %v, want %v", c.id, c.right, c.kind, c.name, got, c.want)
		}
	}
}

func TestPolicyErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"ops", "policy.txt:1: want \"<identity pattern> <rights>"},
		{"# c\nops consme group:*", "policy.txt:2: unknown right \"consme\""},
		{"ops consume, group:*", "unknown right \"\""},
		{"ops consume", "policy.txt:1: consume and describe need a group:<pattern>"},
		{"ops describe topic:*", "consume and describe need a group:<pattern>"},
		{"ops admin", "admin needs a group:<pattern> or topic:<pattern>"},
		{"ops admin groups:*", "resource \"groups:*\": want group:<pattern> or topic:<pattern>"},
		{"ops admin group:", "resource \"group:\""},
		{"\n\n\nc coordinator group:*", "policy.txt:4: coordinator takes no resources"},
	} {
		_, err := ParsePolicy("policy.txt", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePolicy(%q) = %v, want an error with %q", tc.text, err, tc.want)
		}
	}
}

func TestTokenFileErrors(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, tc := range []struct{ text, want string }{
		{"name", "tokens:1: want \"<name> <sha256"},
		{"a " + good + " extra", "got 3 fields"},
		{"\na 1234", "tokens:2: the hash of \"a\" is not 64 hex digits"},
		{"a " + good + "\nb " + good, "tokens:2: the same token as line 1"},
	} {
		_, err := parseTokens("tokens", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseTokens(%q) = %v, want an error with %q", tc.text, err, tc.want)
		}
	}
}

// TestTokenOverPlaintext checks the rule for tokens on connections without
// TLS: accepted only when the coordinator's end of the connection is a
// loopback address. (Tests never bind non-loopback addresses; the
// connection's addresses are what the rule reads.)
func TestTokenOverPlaintext(t *testing.T) {
	h := sha256.Sum256([]byte("secret"))
	r, err := newReloader("token file", nil, time.Hour, hclog.NewNullLogger(), func() (tokens, error) {
		return parseTokens("tokens", []byte("ops "+hex.EncodeToString(h[:])))
	})
	if err != nil {
		t.Fatal(err)
	}
	a := &Auth{tokens: r}
	for _, tc := range []struct {
		local string
		want  regroup.Code
	}{
		{"127.0.0.1", ""},
		{"::1", ""},
		{"10.0.0.7", regroup.CodeUnauthenticated},
		{"0.0.0.0", regroup.CodeUnauthenticated},
	} {
		ctx := peer.NewContext(context.Background(), &peer.Peer{
			Addr:      &net.TCPAddr{IP: net.ParseIP("10.0.0.9"), Port: 5555},
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(tc.local), Port: 9070},
		})
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer secret"))
		id, err := a.authenticate(ctx)
		if got := regroup.CodeOf(rpcerr.FromStatus(err)); got != tc.want {
			t.Errorf("token over plaintext to %s: %v (%+v), want %q", tc.local, err, id, tc.want)
		}
		if tc.want == "" && id != (Identity{Name: "ops", Method: "token"}) {
			t.Errorf("token over plaintext to %s: identity %+v, want ops by token", tc.local, id)
		}
	}
}
