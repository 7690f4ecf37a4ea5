package member

import (
	"crypto/tls"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

// connOf returns the connection member m uses for addr (dialing nothing:
// gRPC connects on the first call).
func connOf(t *testing.T, m *Member, addr string) *grpc.ClientConn {
	t.Helper()
	if _, err := m.tr.conn(addr); err != nil {
		t.Fatal(err)
	}
	m.tr.mu.Lock()
	defer m.tr.mu.Unlock()
	return m.tr.conns[addr].cc
}

func newForConns(t *testing.T, addr string, edit func(*Config)) *Member {
	t.Helper()
	cfg := Config{Endpoints: []string{addr}, Group: "g", Topics: []string{"t"}, Logger: hclog.NewNullLogger()}
	edit(&cfg)
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMembersShareConnections: members of one process with the same
// settings share one connection per coordinator address; members with
// other credentials (TLS configuration, token, dial options) or another
// address do not; the last member to close closes the connection.
func TestMembersShareConnections(t *testing.T) {
	const addr, other = "127.0.0.1:17", "127.0.0.1:19"
	tlsA, tlsB := &tls.Config{}, &tls.Config{}
	optsA := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	optsB := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	plain1 := newForConns(t, addr, func(*Config) {})
	plain2 := newForConns(t, addr, func(*Config) {})
	tls1 := newForConns(t, addr, func(c *Config) { c.TLS, c.Token = tlsA, "alice" })
	tls2 := newForConns(t, addr, func(c *Config) { c.TLS, c.Token = tlsA, "alice" })
	tlsOtherToken := newForConns(t, addr, func(c *Config) { c.TLS, c.Token = tlsA, "bob" })
	tlsOtherConfig := newForConns(t, addr, func(c *Config) { c.TLS, c.Token = tlsB, "alice" })
	opts1 := newForConns(t, addr, func(c *Config) { c.DialOptions = optsA })
	opts2 := newForConns(t, addr, func(c *Config) { c.DialOptions = optsA })
	optsOther := newForConns(t, addr, func(c *Config) { c.DialOptions = optsB })

	shared := connOf(t, plain1, addr)
	if connOf(t, plain2, addr) != shared {
		t.Error("two members with the default settings use two connections to one address")
	}
	if connOf(t, plain1, other) == shared {
		t.Error("a member uses one connection for two addresses")
	}
	if connOf(t, tls1, addr) != connOf(t, tls2, addr) {
		t.Error("two members with the same TLS configuration and token use two connections")
	}
	if connOf(t, opts1, addr) != connOf(t, opts2, addr) {
		t.Error("two members with the same DialOptions use two connections")
	}
	seen := map[*grpc.ClientConn]string{}
	for name, m := range map[string]*Member{"default": plain1, "TLS and token": tls1, "another token": tlsOtherToken,
		"another TLS configuration": tlsOtherConfig, "DialOptions": opts1, "other DialOptions": optsOther} {
		c := connOf(t, m, addr)
		if prev, ok := seen[c]; ok {
			t.Errorf("members with %s and with %s share a connection", prev, name)
		}
		seen[c] = name
	}

	plain1.tr.close()
	if s := shared.GetState(); s == connectivity.Shutdown {
		t.Fatal("the connection closed while another member still uses it")
	}
	plain2.tr.close()
	if s := shared.GetState(); s != connectivity.Shutdown {
		t.Errorf("the connection is %v after its last member closed; want Shutdown", s)
	}
	for _, m := range []*Member{tls1, tls2, tlsOtherToken, tlsOtherConfig, opts1, opts2, optsOther} {
		m.tr.close()
	}
	conns.mu.Lock()
	defer conns.mu.Unlock()
	for k := range conns.conns {
		if k.addr == addr || k.addr == other {
			t.Errorf("the pool still holds a connection to %s after every member closed", k.addr)
		}
	}
}

// TestConnectionsHoldAtMost256Members: a connection carries at most
// membersPerConn members, within the coordinator's stream limit; more open
// another connection to the same address.
func TestConnectionsHoldAtMost256Members(t *testing.T) {
	const addr = "127.0.0.1:23"
	settings := settingsFor(nil, nil, "", []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())})
	perConn := map[*grpc.ClientConn]int{}
	var trs []*transport
	for range membersPerConn + 1 {
		tr := newTransport("g", []string{addr}, settings, hclog.NewNullLogger())
		if _, err := tr.conn(addr); err != nil {
			t.Fatal(err)
		}
		perConn[tr.conns[addr].cc]++
		trs = append(trs, tr)
	}
	if len(perConn) != 2 {
		t.Fatalf("%d members over %d connections; want 2", membersPerConn+1, len(perConn))
	}
	for _, n := range perConn {
		if n != membersPerConn && n != 1 {
			t.Errorf("a connection carries %d members; want %d or 1", n, membersPerConn)
		}
	}
	for _, tr := range trs {
		tr.close()
	}
	for c := range perConn {
		if c.GetState() != connectivity.Shutdown {
			t.Errorf("a connection is %v after every member closed; want Shutdown", c.GetState())
		}
	}
}
