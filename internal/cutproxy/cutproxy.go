// Package cutproxy is a TCP proxy on 127.0.0.1 for tests that cut one
// client off from a server: a network partition between the two, made of
// real connections that fail as real ones do.
package cutproxy

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards connections to a target until it is severed; then it
// drops them and refuses new ones.
type Proxy struct {
	lis    net.Listener
	target func() string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

// Start listens on a free loopback port and forwards every connection to
// the address target returns at the time it is accepted (so a test may
// move the server). The proxy is severed when t ends.
func Start(t testing.TB, target func() string) *Proxy {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{lis: lis, target: target}
	go p.accept()
	t.Cleanup(func() { lis.Close(); p.Sever() })
	return p
}

// Addr is the address clients dial instead of the target's.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

func (p *Proxy) accept() {
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return
		}
		if !p.forward(in) {
			in.Close()
		}
	}
}

// forward connects in to the target, unless the proxy is severed.
func (p *Proxy) forward(in net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	out, err := net.Dial("tcp", p.target())
	if err != nil {
		return false
	}
	p.conns = append(p.conns, in, out)
	go func() { _, _ = io.Copy(out, in); out.Close() }()
	go func() { _, _ = io.Copy(in, out); in.Close() }()
	return true
}

// Sever closes every connection and refuses new ones, for good.
func (p *Proxy) Sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
