package member

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// suspectFor is how long an endpoint that failed a call (refused, reset,
// or overdue) is passed over when a redirect names it: followers keep
// naming a dead or hung leader until its election key expires.
const suspectFor = 10 * time.Second

// discoverEvery is how often a member asks its coordinator, with
// FindCoordinator, which coordinators there are; it also asks after every
// move to another coordinator. discoverTimeout bounds one such call.
const (
	discoverEvery   = time.Minute
	discoverTimeout = 2 * time.Second
)

// transport sends the member's requests to the coordinator it believes
// leads: it follows NOT_COORDINATOR to the leader the error names, unless
// that one just failed, and moves to the next endpoint when one cannot be
// reached, refuses, or lets a call run past its deadline (a hung process
// or a silent network answers nothing at all). Probes go to every known
// coordinator at once. Beyond the configured endpoints it knows every
// coordinator that takes part in the election, learned with
// FindCoordinator, and every leader a redirect named.
type transport struct {
	log      hclog.Logger
	settings connSettings
	clock    func() time.Time
	group    string
	life     context.Context // ends with close
	end      context.CancelFunc

	mu         sync.Mutex
	endpoints  []string // configured, then learned
	current    string
	suspect    map[string]time.Time   // endpoint -> until when it is passed over
	conns      map[string]*sharedConn // acquired from the process's pool
	closed     bool
	discovered time.Time // when FindCoordinator was last asked; zero: ask now
	asking     bool      // a FindCoordinator call is under way
}

func newTransport(group string, endpoints []string, settings connSettings, log hclog.Logger) *transport {
	life, end := context.WithCancel(context.Background())
	return &transport{log: log, settings: settings, clock: time.Now, group: group, life: life, end: end,
		endpoints: slices.Clone(endpoints), current: endpoints[0], suspect: map[string]time.Time{}, conns: map[string]*sharedConn{}}
}

// conn returns the client of addr, over the process's shared connection
// to it, which the transport holds until close.
func (t *transport) conn(addr string) (regroupv1.CoordinatorClient, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("regroup: member: stopped")
	}
	c := t.conns[addr]
	if c == nil {
		var err error
		if c, err = conns.acquire(addr, t.settings); err != nil {
			return nil, err
		}
		t.conns[addr] = c
	}
	return regroupv1.NewCoordinatorClient(c.cc), nil
}

// target returns the endpoint to use.
func (t *transport) target() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.current
}

// others returns every known endpoint but addr.
func (t *transport) others(addr string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, e := range t.endpoints {
		if e != addr {
			out = append(out, e)
		}
	}
	return out
}

// moveFrom leaves addr, which failed, for the leader it named, or for the
// next endpoint that is not suspect. failed marks addr suspect.
func (t *transport) moveFrom(addr, leader string, failed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock()
	if failed {
		t.suspect[addr] = now.Add(suspectFor)
	}
	t.learn(leader)
	if t.current != addr {
		return // another request moved already
	}
	next := leader
	if next == "" || next == addr || now.Before(t.suspect[next]) {
		next = t.nextAfter(addr, now)
	}
	t.switchTo(next)
}

// switchTo makes addr current, with t.mu held; after a move the member
// asks its new coordinator which coordinators there are.
func (t *transport) switchTo(addr string) {
	if addr == t.current {
		return
	}
	t.log.Info("switching coordinator", "from", t.current, "to", addr)
	t.current = addr
	t.discovered = time.Time{}
}

// learn adds coordinators a FindCoordinator answer or a redirect named,
// with t.mu held.
func (t *transport) learn(addrs ...string) {
	for _, a := range addrs {
		if a != "" && !slices.Contains(t.endpoints, a) {
			t.log.Info("learned a coordinator", "address", a)
			t.endpoints = append(t.endpoints, a)
		}
	}
}

// discover asks addr, which just answered, which coordinators there are,
// if that was not asked lately; the call runs in the background.
func (t *transport) discover(addr string) {
	t.mu.Lock()
	if t.closed || t.asking || t.clock().Sub(t.discovered) < discoverEvery {
		t.mu.Unlock()
		return
	}
	t.asking = true
	t.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(t.life, discoverTimeout)
		defer cancel()
		var resp *regroupv1.FindCoordinatorResponse
		c, err := t.conn(addr)
		if err == nil {
			resp, err = c.FindCoordinator(ctx, &regroupv1.FindCoordinatorRequest{GroupId: t.group})
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		t.asking = false
		if err != nil {
			// An older coordinator does not know the call; a failing one is
			// left to the group calls. Either way ask again later.
			t.log.Debug("could not ask which coordinators there are", "coordinator", addr, "error", err)
			t.discovered = t.clock()
			return
		}
		t.discovered = t.clock()
		t.learn(resp.GetCoordinators()...)
		t.learn(resp.GetLeaderAddress())
	}()
}

// nextAfter returns the first endpoint after addr that is not suspect, or
// simply the next one if all are.
func (t *transport) nextAfter(addr string, now time.Time) string {
	i := slices.Index(t.endpoints, addr) + 1
	for k := range t.endpoints {
		if e := t.endpoints[(i+k)%len(t.endpoints)]; e != addr && !now.Before(t.suspect[e]) {
			return e
		}
	}
	return t.endpoints[i%len(t.endpoints)]
}

// follow makes addr current: it answered.
func (t *transport) follow(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.suspect, addr)
	t.switchTo(addr)
}

// call sends one request to the current coordinator and returns the
// answer, with protocol errors as *regroup.Error.
func (t *transport) call(ctx context.Context, req proto.Message) (proto.Message, error) {
	return t.callAt(ctx, t.target(), req)
}

// probe sends a request to the current coordinator and to every other
// known one at once, and returns the first success; the coordinator that
// gave it becomes current. Without a success it returns the current one's
// answer.
func (t *transport) probe(ctx context.Context, req proto.Message) (proto.Message, error) {
	addr := t.target()
	others := t.others(addr)
	if len(others) == 0 {
		return t.callAt(ctx, addr, req)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		addr string
		msg  proto.Message
		err  error
	}
	results := make(chan result, 1+len(others))
	for _, a := range append([]string{addr}, others...) {
		go func() {
			msg, err := t.send(ctx, a, req)
			results <- result{a, msg, err}
		}()
	}
	var first error
	var leader string // a leader another coordinator named
	for range 1 + len(others) {
		r := <-results
		if r.err == nil {
			t.follow(r.addr)
			t.discover(r.addr)
			return r.msg, nil
		}
		if r.addr == addr {
			first = t.failed(addr, r.err)
			continue
		}
		var e *regroup.Error
		if errors.As(rpcerr.FromStatus(r.err), &e) && e.Code == regroup.CodeNotCoordinator && e.Metadata[regroup.MetaLeader] != addr {
			leader = e.Metadata[regroup.MetaLeader]
		}
	}
	if leader != "" {
		t.prefer(leader)
	}
	return nil, first
}

// prefer makes leader current unless it failed lately: another coordinator
// named it while the current one was silent.
func (t *transport) prefer(leader string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.learn(leader)
	if !t.clock().Before(t.suspect[leader]) {
		t.switchTo(leader)
	}
}

// callAt sends req to addr and moves on from addr if it failed.
func (t *transport) callAt(ctx context.Context, addr string, req proto.Message) (proto.Message, error) {
	msg, err := t.send(ctx, addr, req)
	if err != nil {
		return nil, t.failed(addr, err)
	}
	t.discover(addr)
	return msg, nil
}

// send sends req to addr.
func (t *transport) send(ctx context.Context, addr string, req proto.Message) (proto.Message, error) {
	c, err := t.conn(addr)
	if err != nil {
		return nil, err
	}
	switch r := req.(type) {
	case *regroupv1.JoinGroupRequest:
		return c.JoinGroup(ctx, r)
	case *regroupv1.SyncGroupRequest:
		return c.SyncGroup(ctx, r)
	case *regroupv1.HeartbeatRequest:
		return c.Heartbeat(ctx, r)
	case *regroupv1.LeaveGroupRequest:
		return c.LeaveGroup(ctx, r)
	case *regroupv1.ReconcileRequest:
		return c.Reconcile(ctx, r)
	}
	return nil, fmt.Errorf("regroup: member: cannot send %T", req)
}

// failed turns a call's error into a protocol error and moves on from
// addr when the error says another coordinator should be tried: a
// redirect, a coordinator that is not available, or a transport failure,
// a deadline included (a hung coordinator or a silent network answers
// nothing). A call canceled by the member itself moves nothing.
func (t *transport) failed(addr string, err error) error {
	perr := rpcerr.FromStatus(err)
	t.log.Debug("call failed", "coordinator", addr, "error", perr)
	var e *regroup.Error
	switch {
	case errors.As(perr, &e) && e.Code == regroup.CodeNotCoordinator:
		t.moveFrom(addr, e.Metadata[regroup.MetaLeader], false)
	case errors.As(perr, &e) && e.Code == regroup.CodeCoordinatorNotAvailable:
		t.moveFrom(addr, "", false)
	case e == nil && status.Code(err) != codes.Canceled:
		t.moveFrom(addr, "", true)
	}
	return perr
}

func (t *transport) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	t.end()
	for addr, c := range t.conns {
		conns.release(addr, t.settings, c)
	}
	clear(t.conns)
}
