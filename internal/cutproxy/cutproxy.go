// Package cutproxy is a TCP proxy on 127.0.0.1 for tests that cut one
// client off from a server: a network partition between the two, made of
// real connections that fail as real ones do. Severed, connections are
// closed and refused; blackholed, they are accepted and kept but carry
// nothing, as when a network silently drops every packet; delayed, they
// carry everything late, as a slow network does.
package cutproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards connections to a target until it is severed; then it
// drops them and refuses new ones.
type Proxy struct {
	lis    net.Listener
	target func() string

	mu    sync.Mutex
	open  *sync.Cond // signalled when blackholed or cut changes
	conns []net.Conn
	cut   bool
	hole  bool // blackholed

	delay atomic.Int64 // see Delay
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
	p.open = sync.NewCond(&p.mu)
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
		go p.forward(in)
	}
}

// forward connects in to the target once the proxy is not blackholed, or
// closes it if the proxy is severed.
func (p *Proxy) forward(in net.Conn) {
	if !p.pass() {
		in.Close()
		return
	}
	out, err := net.Dial("tcp", p.target())
	if err != nil {
		in.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		in.Close()
		out.Close()
		return
	}
	p.conns = append(p.conns, in, out)
	p.mu.Unlock()
	go p.pipe(out, in)
	go p.pipe(in, out)
}

// pipe copies from src to dst while the proxy is open: a chunk read while
// it is blackholed waits, and the data behind it stays in the kernel's
// buffers, until the blackhole ends. A chunk goes no earlier than the
// delay set when it was read (Delay).
func (p *Proxy) pipe(dst, src net.Conn) {
	chunks := make(chan chunk, 1024)
	go func() {
		defer dst.Close()
		for c := range chunks {
			time.Sleep(time.Until(c.due))
			if !p.pass() || !write(dst, c.b) {
				src.Close() // the reads end too
				for range chunks {
				}
				return
			}
		}
	}()
	defer close(chunks)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunks <- chunk{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(time.Duration(p.delay.Load()))}
		}
		if err != nil {
			return
		}
	}
}

// chunk is what one read got, and when it may be written.
type chunk struct {
	b   []byte
	due time.Time
}

func write(dst net.Conn, b []byte) bool {
	_, err := dst.Write(b)
	return err == nil
}

// pass waits while the proxy is blackholed and reports whether it is still
// open (not severed).
func (p *Proxy) pass() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.hole && !p.cut {
		p.open.Wait()
	}
	return !p.cut
}

// Blackhole keeps every connection, and accepts new ones, but carries
// nothing either way until Restore: the server looks hung, or the network
// silent.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hole = true
}

// Restore ends a blackhole: what was held back flows again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hole = false
	p.open.Broadcast()
}

// Delay makes every chunk read from now on reach the other side d after it
// was read, in order: a slow network, or a server whose calls and answers
// queue in its kernel while its process is starved of CPU. 0 ends it.
func (p *Proxy) Delay(d time.Duration) { p.delay.Store(int64(d)) }

// Sever closes every connection and refuses new ones, for good.
func (p *Proxy) Sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.open.Broadcast()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
