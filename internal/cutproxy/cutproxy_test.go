package cutproxy_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/internal/cutproxy"
)

// echo serves a line echo on a free loopback port.
func echo(t *testing.T) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return lis.Addr().String()
}

// roundTrip sends line and reads it back within d, or reports what
// happened instead.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string, d time.Duration) (string, error) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	got, err := r.ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

// connected starts a proxy in front of a line echo and connects to it.
func connected(t *testing.T) (*cutproxy.Proxy, net.Conn, *bufio.Reader) {
	t.Helper()
	addr := echo(t)
	p := cutproxy.Start(t, func() string { return addr })
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c, bufio.NewReader(c)
}

func TestBlackholeHoldsThenDelivers(t *testing.T) {
	p, c, r := connected(t)
	if got, err := roundTrip(t, c, r, "before", 10*time.Second); err != nil || got != "before" {
		t.Fatalf("before the blackhole: got %q, %v", got, err)
	}

	p.Blackhole()
	if got, err := roundTrip(t, c, r, "held", 300*time.Millisecond); err == nil {
		t.Fatalf("a blackholed connection answered %q", got)
	}
	// A new connection is accepted, but answers nothing either.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("a blackholed proxy refused a connection: %v", err)
	}
	defer c2.Close()
	r2 := bufio.NewReader(c2)
	if got, err := roundTrip(t, c2, r2, "new", 300*time.Millisecond); err == nil {
		t.Fatalf("a connection made during the blackhole answered %q", got)
	}

	p.Restore()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "held\n" {
		t.Fatalf("after the blackhole, the held line: got %q, %v", got, err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if got, err := r2.ReadString('\n'); err != nil || got != "new\n" {
		t.Fatalf("after the blackhole, the new connection's line: got %q, %v", got, err)
	}
}

func TestSeverClosesAndRefuses(t *testing.T) {
	p, c, r := connected(t)
	if got, err := roundTrip(t, c, r, "hello", 10*time.Second); err != nil || got != "hello" {
		t.Fatalf("got %q, %v", got, err)
	}
	p.Blackhole()
	p.Sever() // also ends a blackhole: nothing waits forever
	if _, err := roundTrip(t, c, r, "after", 10*time.Second); err == nil {
		t.Fatal("a severed connection still answered")
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return // refused outright: fine
	}
	defer c2.Close()
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection to a severed proxy carried data")
	}
}

func TestDelayCarriesLateInOrder(t *testing.T) {
	p, c, r := connected(t)
	const d = 150 * time.Millisecond
	p.Delay(d)
	start := time.Now()
	for _, line := range []string{"one", "two", "three"} {
		if _, err := c.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"one", "two", "three"} {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := r.ReadString('\n')
		if err != nil || got != want+"\n" {
			t.Fatalf("delayed: got %q, %v; want %q (in order)", got, err, want)
		}
	}
	if took := time.Since(start); took < 2*d {
		t.Fatalf("a round trip through a proxy delaying %v each way took %v", d, took)
	}
	p.Delay(0)
	if got, err := roundTrip(t, c, r, "after", 10*time.Second); err != nil || got != "after" {
		t.Fatalf("after the delay: got %q, %v", got, err)
	}
}
