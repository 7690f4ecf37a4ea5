package member

import (
	"crypto/tls"
	"fmt"
	"sync"

	"google.golang.org/grpc"
)

// membersPerConn is how many members share one connection at most. Each
// member keeps a held heartbeat in flight and at times a probe, a join or
// sync and a FindCoordinator beside it: four streams at most, so 256
// members stay within regroup serve's default of 1,024 concurrent streams
// per connection (--max-concurrent-streams), past which calls would wait
// for one another. More members open another connection.
const membersPerConn = 256

// connKey says which members may share a connection: those that reach the
// same address with the same settings. Settings are compared by identity,
// never by value: the same *tls.Config and token (the default dial options
// built from them), or the same DialOptions slice, so that members with
// different credentials never share a connection, and members that share
// one configuration do.
type connKey struct {
	addr  string
	tls   *tls.Config
	token string
	// custom: the application gave DialOptions; opts is their first
	// element (nil if there are none) and nopts their number.
	custom bool
	opts   *grpc.DialOption
	nopts  int
}

// connSettings are a member's connection settings: its dial options and
// the key its connections are shared under (without the address).
type connSettings struct {
	opts []grpc.DialOption
	key  connKey
}

// settingsFor returns the settings of a member whose application gave
// dialOpts (nil: none) and TLS and token, and whose dial options, with
// defaults filled in, are opts.
func settingsFor(dialOpts []grpc.DialOption, tlsCfg *tls.Config, token string, opts []grpc.DialOption) connSettings {
	if dialOpts != nil {
		k := connKey{custom: true, nopts: len(dialOpts)}
		if len(dialOpts) > 0 {
			k.opts = &dialOpts[0]
		}
		return connSettings{opts: opts, key: k}
	}
	return connSettings{opts: opts, key: connKey{tls: tlsCfg, token: token}}
}

// sharedConn is a connection and the number of members using it.
type sharedConn struct {
	cc    *grpc.ClientConn
	users int
}

// connPool holds the process's connections to coordinators, counted by
// reference: gRPC multiplexes every member's calls over them. The last
// member to release a connection closes it. It is safe for concurrent use.
type connPool struct {
	mu    sync.Mutex
	conns map[connKey][]*sharedConn
}

// conns is the process-wide pool every member's transport uses.
var conns = &connPool{conns: map[connKey][]*sharedConn{}}

// acquire returns a connection to addr with settings s that has room for
// one more member, dialing a new one if none has; release it when done.
func (p *connPool) acquire(addr string, s connSettings) (*sharedConn, error) {
	key := s.key
	key.addr = addr
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns[key] {
		if c.users < membersPerConn {
			c.users++
			return c, nil
		}
	}
	cc, err := grpc.NewClient(addr, s.opts...)
	if err != nil {
		return nil, fmt.Errorf("regroup: member: coordinator address %q: %w", addr, err)
	}
	c := &sharedConn{cc: cc, users: 1}
	p.conns[key] = append(p.conns[key], c)
	return c, nil
}

// release gives back a connection acquire returned for addr and s; the
// last user closes it.
func (p *connPool) release(addr string, s connSettings, c *sharedConn) {
	key := s.key
	key.addr = addr
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.users--; c.users > 0 {
		return
	}
	_ = c.cc.Close()
	list := p.conns[key]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(p.conns, key)
	} else {
		p.conns[key] = list
	}
}
