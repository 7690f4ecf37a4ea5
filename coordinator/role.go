package coordinator

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/store"
)

// Elector elects one leader among the coordinators that share a store.
// coordinator/election implements it over etcd.
type Elector interface {
	// Campaign blocks until this coordinator is elected, announcing
	// address as the leader's, or until ctx ends. Once it returns a Term
	// the caller owns it and must Resign it.
	Campaign(ctx context.Context, address string) (Term, error)
	// Leader returns the elected leader's address, or "" while none is
	// known. It is cheap: followers call it for every call they refuse.
	Leader() string
	// Coordinators returns the advertised address of every coordinator
	// taking part in the election, the leader first, or nothing while
	// they are not known. Members learn them through FindCoordinator.
	Coordinators() []string
}

// Term is one coordinator's leadership, from its election until it ends.
type Term interface {
	// Store returns the store of this term: its writes are fenced on the
	// term and fail with store.ErrFenced once another coordinator leads.
	Store() store.Store
	// ValidUntil returns the time until which the term certainly holds:
	// its lease cannot have expired before. It only grows while the term
	// lasts, as keep-alives succeed.
	ValidUntil() time.Time
	// Done is closed once the term may have ended: ValidUntil passed
	// without a renewal, or the lease is gone.
	Done() <-chan struct{}
	// Info describes the term for operators.
	Info() TermInfo
	// Resign ends the term so that another coordinator can be elected at
	// once, and releases its resources. A term whose lease is already
	// gone just releases them.
	Resign(ctx context.Context) error
}

// TermInfo describes a term.
type TermInfo struct {
	// Key is the term's election key and Revision its creation revision,
	// which fence the term's writes.
	Key      string
	Revision int64
	// LeaseID and LeaseTTL describe the lease that keeps the term alive.
	LeaseID  int64
	LeaseTTL time.Duration
}

// NewElected returns a Server that serves groups only while e has elected
// it; Run drives the elections. Until Run wins one, the Server answers as a
// follower: NOT_COORDINATOR with the leader's address for group calls,
// Admin calls forwarded to the leader.
func NewElected(cfg Config, e Elector) (*Server, error) {
	if e == nil {
		return nil, errors.New("regroup: NewElected needs an Elector")
	}
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	s.elector = e
	return s, nil
}

// resignTimeout bounds the resignation at the end of a term, and
// loadTimeout the load at its start.
const (
	resignTimeout = 5 * time.Second
	loadTimeout   = time.Minute
)

// Run campaigns for leadership and serves groups for as long as each term
// lasts, then campaigns again, until ctx ends or Close is called; it then
// resigns and returns (a term it led ends with ctx's cause as the reason,
// when it has one). Run may be called again once it returned, unless
// Close was called. A campaign that fails (etcd unreachable, say) is
// retried with capped exponential backoff. Run returns an error only if
// the Server was not made by NewElected.
func (s *Server) Run(ctx context.Context) error {
	if s.elector == nil {
		return errors.New("regroup: Run needs a Server made by NewElected")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	// Capped low: a campaign that fails for want of etcd already waits for
	// its lease grant, and once etcd is back every second counts against
	// the members' sessions.
	retry := backoff{min: 200 * time.Millisecond, max: time.Second}
	for ctx.Err() == nil {
		s.cfg.TermLogger.Info("campaigning for leadership", "address", s.cfg.Address, "leader", s.elector.Leader())
		term, err := s.elector.Campaign(ctx, s.cfg.Address)
		if err == nil && s.lead(ctx, term) {
			retry.reset()
			continue
		}
		if ctx.Err() != nil {
			break
		}
		d := retry.next()
		if err != nil {
			s.log.Error("cannot campaign for leadership; members are told NOT_COORDINATOR until this works", "error", err, "retry_in", d)
		}
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	return nil
}

// lead serves one term until it ends, then resigns it. It reports whether
// the term was served at all.
func (s *Server) lead(ctx context.Context, term Term) bool {
	info := term.Info()
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), resignTimeout)
		defer cancel()
		if err := term.Resign(rctx); err != nil {
			s.log.Warn("resigning failed; the lease is revoked once etcd answers, or expires by itself", "lease", info.LeaseID, "error", err)
			return
		}
		s.cfg.TermLogger.Info("resigned: the lease is revoked", "lease", info.LeaseID)
	}()
	lctx, cancel := context.WithTimeout(ctx, loadTimeout)
	go func() {
		select {
		case <-term.Done():
			cancel()
		case <-lctx.Done():
		}
	}()
	t, err := s.load(lctx, term.Store(), term)
	cancel()
	if err == nil {
		err = s.install(t)
	}
	if err != nil {
		if t != nil {
			s.mu.Lock()
			refusal := s.notLeading()
			s.mu.Unlock()
			t.end("elected, but cannot serve", refusal)
		}
		s.log.Error("elected, but cannot serve; resigning", "election_key", info.Key, "error", err)
		return false
	}
	s.cfg.TermLogger.Info("leading: serving groups", "address", s.cfg.Address, "election_key", info.Key, "revision", info.Revision,
		"lease", info.LeaseID, "lease_ttl", info.LeaseTTL, "lease_left", time.Until(term.ValidUntil()).Round(time.Millisecond))
	var reason string
	asked := false
	select {
	case <-term.Done():
		reason = "the lease may have expired: no keep-alive succeeded in time"
	case <-t.done:
		reason = "the tenure ended"
	case <-ctx.Done():
		reason, asked = "shutting down", true
		if c := context.Cause(ctx); c != nil && c != context.Canceled {
			reason = c.Error()
		}
	}
	s.stepDown(t, reason, asked)
	return true
}

// install makes t the tenure being served.
func (s *Server) install(t *tenure) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("regroup: the coordinator is shutting down")
	}
	if !t.valid(s.clock()) {
		return errors.New("regroup: the lease may have expired while loading")
	}
	s.cur.Store(t)
	return nil
}

// stepDown stops serving t's groups at once, if t is being served: every
// waiting request is answered NOT_COORDINATOR and the groups are dropped
// from memory (the next leader loads them from the store). asked: the
// Server was asked to stop (a shutdown, a handover), which is logged as
// news, not as a warning.
func (s *Server) stepDown(t *tenure, reason string, asked bool) {
	s.mu.Lock()
	if !s.cur.CompareAndSwap(t, nil) {
		s.mu.Unlock()
		return
	}
	t.ended.Store(true)
	s.mu.Unlock()
	err := regroup.Errorf(regroup.CodeNotCoordinator, "this coordinator stopped leading (%s); retry on another one", reason)
	s.watchers.end(err)
	n := t.end(reason, err)
	log, level := s.log, hclog.Warn
	if asked {
		log, level = s.cfg.TermLogger, hclog.Info // a shutdown, a handover
	}
	log.Log(level, "stopped leading: groups dropped from memory", "reason", reason, "groups", n, "led_for", s.clock().Sub(t.since).Round(time.Millisecond))
}

// serving returns the tenure to serve a call from, or the error to answer
// it with when this coordinator does not lead.
func (s *Server) serving() (*tenure, error) {
	t := s.cur.Load()
	if t == nil || !t.valid(s.clock()) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return nil, s.notLeading()
	}
	return t, nil
}

// notLeading is the error a coordinator that does not lead answers with,
// with s.mu held.
func (s *Server) notLeading() error {
	if s.closed {
		return regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "the coordinator is shutting down; retry on another one")
	}
	leader := s.leader()
	switch {
	case leader == "":
		return regroup.Errorf(regroup.CodeNotCoordinator, "this coordinator does not lead and no leader is known yet; retry shortly, on any coordinator")
	case leader == s.cfg.Address:
		return regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "this coordinator is changing roles (elected and loading the groups, or stepping down); retry shortly")
	}
	return regroup.Errorf(regroup.CodeNotCoordinator, "this coordinator does not lead; the leader is %s", leader).With(regroup.MetaLeader, leader)
}

// leader returns the leader's address as far as this coordinator knows.
func (s *Server) leader() string {
	if s.elector == nil {
		if s.cur.Load() != nil {
			return s.cfg.Address
		}
		return ""
	}
	return s.elector.Leader()
}

// coordinators returns every coordinator's address as far as this one
// knows, the leader first.
func (s *Server) coordinators() []string {
	if s.elector == nil {
		return []string{s.cfg.Address}
	}
	return s.elector.Coordinators()
}

// Leading reports whether this coordinator serves groups right now. Health
// checks and the leadership gauge read it.
func (s *Server) Leading() bool {
	t := s.cur.Load()
	return t != nil && t.valid(s.clock())
}

// backoff is a capped exponential backoff.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }
