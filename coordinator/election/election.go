// Package election elects the one coordinator that serves groups among the
// `regroup serve` processes sharing an etcd cluster. It implements
// coordinator.Elector with etcd's concurrency.Session and
// concurrency.Election under etcdstore.ElectionPrefix: each candidate puts
// a key bound to its own lease, whose value is its advertised address, and
// the candidate with the oldest key leads. The leader's term is fenced on
// that key's creation revision (see etcdstore).
//
// # Leases are measured from the send time
//
// A leader must stop serving before its lease can have expired in etcd,
// because a successor can be elected right after. The session's lease is
// therefore kept alive by this package, not by the session: a keep-alive
// is sent every TTL/3 and the term is held until the send time of the last
// successful one plus the TTL, minus a margin (Config.Margin). The
// coordinator refuses calls past that deadline and steps down; a failed
// keep-alive is retried every 100 ms until then.
package election

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
)

// DefaultTTL is the default lease TTL: how long a leader that stops
// renewing its lease (it crashed, or lost etcd) keeps the others waiting.
const DefaultTTL = 5 * time.Second

// Config configures an Elector. The zero value of each field has the
// meaning given in its comment.
type Config struct {
	// Client reaches the etcd cluster; required. The Elector does not
	// close it.
	Client *clientv3.Client
	// Prefix is the key prefix shared with the store; "" means
	// etcdstore.DefaultPrefix.
	Prefix string
	// TTL is the lease TTL, a whole number of seconds; 0 means DefaultTTL.
	TTL time.Duration
	// Margin is taken off the lease's validity, for clock rate differences
	// and the time it takes to stop serving; 0 means TTL/10, at least
	// 100 ms. It must be less than TTL/2.
	Margin time.Duration
	// Logger receives the election's logs; nil means hclog's default.
	Logger hclog.Logger
	// Shards is the cluster's number of shards (see etcdstore.Shards) and
	// Shard the one this Elector elects a leader of, under
	// etcdstore.ShardElectionPrefix; its terms' stores hold only that
	// shard's groups. Shards 0 or 1 means one shard for every group,
	// elected under etcdstore.ElectionPrefix.
	Shard, Shards int
}

// electionPrefix returns the prefix of the election's keys.
func (c Config) electionPrefix() string {
	if c.Shards > 1 {
		return etcdstore.ShardElectionPrefix(c.Prefix, c.Shard)
	}
	return etcdstore.ElectionPrefix(c.Prefix)
}

// Elector campaigns for a coordinator and tells who leads. Its methods are
// safe for concurrent use.
type Elector struct {
	cfg  Config
	cli  *clientv3.Client
	log  hclog.Logger
	view atomic.Pointer[view]
	hold atomic.Bool // test hook, see export_test.go

	ctx      context.Context // ends with Close
	stop     context.CancelFunc
	done     chan struct{}
	revoking sync.WaitGroup // revokeLater's goroutines
}

var _ coordinator.Elector = (*Elector)(nil)

// New validates cfg and starts watching the election, so that Leader
// knows the leader's address. Close stops it.
func New(cfg Config) (*Elector, error) {
	if cfg.Client == nil {
		return nil, errors.New("regroup: election: an etcd client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = etcdstore.DefaultPrefix
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < time.Second || cfg.TTL%time.Second != 0 {
		return nil, fmt.Errorf("regroup: election: lease TTL %v: etcd leases last a whole number of seconds, at least 1s", cfg.TTL)
	}
	if cfg.Margin == 0 {
		cfg.Margin = max(cfg.TTL/10, 100*time.Millisecond)
	}
	if cfg.Margin < 0 || cfg.Margin >= cfg.TTL/2 {
		return nil, fmt.Errorf("regroup: election: margin %v must be positive and under half the TTL %v", cfg.Margin, cfg.TTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.Default()
	}
	if cfg.Shards > 1 && (cfg.Shard < 0 || cfg.Shard >= cfg.Shards) {
		return nil, fmt.Errorf("regroup: election: shard %d of %d: shards are numbered from 0", cfg.Shard, cfg.Shards)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Elector{cfg: cfg, cli: cfg.Client, log: cfg.Logger, ctx: ctx, stop: cancel, done: make(chan struct{})}
	e.view.Store(&view{})
	go e.observe(ctx)
	return e, nil
}

// Close stops watching the election. Terms already won are not affected.
func (e *Elector) Close() {
	e.stop()
	<-e.done
	e.revoking.Wait()
}

// view is what an Elector last read of the election.
type view struct {
	leader       string
	coordinators []string  // every candidate's address, oldest key first
	rev          int64     // the read's revision
	seen         time.Time // when the read was sent
}

// current returns the last view if it is recent: once a whole TTL has
// passed since the last read that etcd answered, the leader it named may
// have lost its lease unseen, so the Elector names no one until etcd
// answers again.
func (e *Elector) current() *view {
	if v := e.view.Load(); time.Since(v.seen) <= e.cfg.TTL {
		return v
	}
	return &view{}
}

// Fresh reports whether the Elector's view of the election is recent: read
// from etcd within two refresh intervals (a fifth of the TTL each, at
// least 200 ms). A decision that must not rest on an old view (handing a
// shard over) waits until it is.
func (e *Elector) Fresh() bool { return time.Since(e.view.Load().seen) <= 2*e.refreshEvery() }

// Leader returns the address of the coordinator that leads, as last read
// from etcd, or "" while none is known or etcd has not answered for a TTL.
func (e *Elector) Leader() string { return e.current().leader }

// Coordinators implements coordinator.Elector: the addresses under the
// election prefix, the leader's first, as last read from etcd; nothing
// while etcd has not answered for a TTL.
func (e *Elector) Coordinators() []string { return slices.Clone(e.current().coordinators) }

// refreshEvery is how often the election is read even when the watch shows
// no change, so that a coordinator cut off from etcd notices it within a
// fraction of the TTL.
func (e *Elector) refreshEvery() time.Duration { return max(e.cfg.TTL/5, 200*time.Millisecond) }

// observe keeps e.view up to date: it reads the keys under the election
// prefix whenever one of them changes and every refreshEvery.
func (e *Elector) observe(ctx context.Context) {
	defer close(e.done)
	pfx := e.cfg.electionPrefix() + "/"
	retry := 100 * time.Millisecond
	blind := false // logged that etcd has not answered for a TTL
	for ctx.Err() == nil {
		err := e.refresh(ctx, pfx)
		if err == nil {
			retry, blind = 100*time.Millisecond, false
			err = e.watch(ctx, pfx)
		}
		if ctx.Err() != nil {
			return
		}
		e.log.Debug("watching the election failed; retrying", "error", err, "retry_in", retry)
		if since := time.Since(e.view.Load().seen); !blind && since > e.cfg.TTL {
			blind = true
			e.log.Warn("etcd has not answered for longer than the lease TTL: no leader is named until it does", "since", since.Round(time.Millisecond), "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, e.refreshEvery())
	}
}

// watch re-reads the election whenever a key under pfx changes and every
// refreshEvery, until a read or the watch fails.
func (e *Elector) watch(ctx context.Context, pfx string) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := e.cli.Watch(clientv3.WithRequireLeader(wctx), pfx, clientv3.WithPrefix(), clientv3.WithRev(e.view.Load().rev+1))
	tick := time.NewTicker(e.refreshEvery())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wr, ok := <-wch:
			if !ok {
				return errors.New("the watch ended")
			}
			if err := wr.Err(); err != nil {
				return err
			}
		case <-tick.C:
		}
		if err := e.refresh(ctx, pfx); err != nil {
			return err
		}
	}
}

// refresh reads every key under pfx, oldest first.
func (e *Elector) refresh(ctx context.Context, pfx string) error {
	rctx, cancel := context.WithTimeout(ctx, max(e.refreshEvery(), time.Second))
	defer cancel()
	sent := time.Now()
	resp, err := e.cli.Get(rctx, pfx, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return err
	}
	v := &view{rev: resp.Header.Revision, seen: sent}
	for _, kv := range resp.Kvs {
		if addr := string(kv.Value); !slices.Contains(v.coordinators, addr) {
			v.coordinators = append(v.coordinators, addr)
		}
	}
	if len(v.coordinators) > 0 {
		v.leader = v.coordinators[0]
	}
	if prev := e.view.Swap(v); prev.leader != v.leader {
		if v.leader == "" {
			e.log.Info("no coordinator leads")
		} else {
			e.log.Info("coordinator leader", "address", v.leader)
		}
	}
	return nil
}

// Campaign implements coordinator.Elector: it grants a lease, keeps it
// alive, and waits until this candidate's key is the oldest. It fails if
// the lease may have expired meanwhile or etcd cannot be reached.
func (e *Elector) Campaign(ctx context.Context, address string) (coordinator.Term, error) {
	k := &keeper{Lease: e.cli.Lease, margin: e.cfg.Margin, hold: &e.hold, log: e.log}
	gctx, cancel := context.WithTimeout(ctx, max(e.cfg.TTL, 5*time.Second))
	grant, err := k.Grant(gctx, int64(e.cfg.TTL/time.Second))
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %v", max(e.cfg.TTL, 5*time.Second))
		}
		return nil, fmt.Errorf("regroup: etcd at %s is unreachable: granting a lease: %w", strings.Join(e.cli.Endpoints(), ","), err)
	}
	// The session runs on a client that shares the real one's connection
	// but whose Lease is the keeper.
	tctx, tcancel := context.WithCancel(context.Background())
	sc := clientv3.NewCtxClient(tctx)
	sc.KV, sc.Watcher, sc.Lease = e.cli.KV, e.cli.Watcher, k
	sess, err := concurrency.NewSession(sc, concurrency.WithLease(grant.ID), concurrency.WithContext(tctx))
	if err != nil {
		tcancel()
		return nil, fmt.Errorf("regroup: starting an etcd session: %w", err)
	}
	t := &term{keeper: k, sess: sess, lease: grant.ID, cancel: tcancel, revokeLater: e.revokeLater}
	el := concurrency.NewElection(sess, e.cfg.electionPrefix())
	cctx, ccancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-sess.Done():
			ccancel()
		case <-cctx.Done():
		}
	}()
	if e.Leader() != "" && e.Leader() != address {
		wctx, wcancel := context.WithTimeout(cctx, time.Second)
		e.logWait(wctx)
		wcancel()
	}
	// A campaign given up (ctx ended, or the lease was lost) resigns
	// through the session's context, which would wait for an etcd that may
	// not answer: end that context too, and leave the lease to Resign below
	// (or revokeLater).
	stop := context.AfterFunc(cctx, tcancel)
	err = el.Campaign(cctx, address)
	if !stop() && err == nil {
		err = fmt.Errorf("given up while elected: %w", context.Cause(cctx))
	}
	ccancel()
	if err == nil && !time.Now().Before(k.deadline()) {
		err = errors.New("the lease may have expired while campaigning")
	}
	if err != nil {
		select {
		case <-sess.Done():
			err = fmt.Errorf("the lease was lost while campaigning (%w)", err)
		default:
		}
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		_ = t.Resign(rctx)
		rcancel()
		return nil, fmt.Errorf("regroup: campaigning in etcd: %w", err)
	}
	t.info = coordinator.TermInfo{Key: el.Key(), Revision: el.Rev(), LeaseID: int64(grant.ID), LeaseTTL: k.granted()}
	t.st = etcdstore.New(e.cli, e.cfg.Prefix, etcdstore.Fence{Key: el.Key(), Revision: el.Rev()})
	if e.cfg.Shards > 1 {
		t.st = t.st.OfShard(e.cfg.Shard, e.cfg.Shards)
	}
	return t, nil
}

// revokeFor bounds how long revokeLater keeps trying: past it, the lease
// has certainly expired unless etcd was without quorum for longer, and
// then it expires a TTL after quorum returns.
const revokeFor = 2 * time.Minute

// revokeLater revokes lease in the background, retrying until etcd answers,
// for a term whose resignation failed (etcd unreachable or without
// quorum). etcd renews every lease for a full TTL when it regains a leader,
// so without this the next coordinator would wait a TTL after etcd is back
// for a key nobody holds.
func (e *Elector) revokeLater(k *keeper, lease clientv3.LeaseID) {
	e.revoking.Add(1)
	go func() {
		defer e.revoking.Done()
		give := time.Now().Add(revokeFor)
		for time.Now().Before(give) {
			select {
			case <-e.ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(e.ctx, time.Second)
			_, err := k.Revoke(ctx, lease)
			cancel()
			switch {
			case err == nil:
				e.log.Info("revoked the lease of an ended term once etcd answered: no one waits for it", "lease", int64(lease))
				return
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				return
			}
		}
		e.log.Warn("could not revoke the lease of an ended term; it expires by itself", "lease", int64(lease))
	}()
}

// RevokePast revokes the lease of every election key in etcd, so that a
// coordinator restarted after a crash does not wait for its own past
// life's lease to expire. Only a coordinator that knows no other one uses
// this etcd may call it: one on its own embedded etcd, whose data
// directory no other process can hold. It returns how many keys it
// revoked; each is logged with the time its lease had left.
func (e *Elector) RevokePast(ctx context.Context) (int, error) {
	pfx := e.cfg.electionPrefix() + "/"
	resp, err := e.cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("regroup: election: reading the election keys: %w", err)
	}
	n := 0
	for _, kv := range resp.Kvs {
		lease := clientv3.LeaseID(kv.Lease)
		left := time.Duration(0)
		if ttl, err := e.cli.TimeToLive(ctx, lease); err == nil {
			left = time.Duration(ttl.TTL) * time.Second
		}
		if _, err := e.cli.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return n, fmt.Errorf("regroup: election: revoking the lease of %s: %w", kv.Key, err)
		}
		e.log.Info("revoked the election key of this coordinator's previous life instead of waiting for its lease",
			"key", string(kv.Key), "address", string(kv.Value), "lease", int64(lease), "lease_left", left)
		n++
	}
	return n, nil
}

// logWait says, when a campaign has to wait for a leader, whom it waits
// for and how long that leader's lease has left.
func (e *Elector) logWait(ctx context.Context) {
	pfx := e.cfg.electionPrefix() + "/"
	resp, err := e.cli.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) == 0 {
		return
	}
	kv := resp.Kvs[0]
	left := "unknown"
	if ttl, err := e.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil {
		left = (time.Duration(ttl.TTL) * time.Second).String()
	}
	e.log.Info("waiting for the current leader: this coordinator leads when that one resigns or its lease expires",
		"leader", string(kv.Value), "lease", kv.Lease, "lease_left", left)
}

// term is one won election.
type term struct {
	keeper *keeper
	sess   *concurrency.Session
	lease  clientv3.LeaseID
	cancel context.CancelFunc
	info   coordinator.TermInfo
	st     *etcdstore.Store

	// revokeLater keeps trying to revoke the lease when Resign could not.
	revokeLater func(*keeper, clientv3.LeaseID)

	resignOnce sync.Once
	resignErr  error
}

// Store implements coordinator.Term.
func (t *term) Store() store.Store { return t.st }

// ValidUntil implements coordinator.Term.
func (t *term) ValidUntil() time.Time { return t.keeper.deadline() }

// Done implements coordinator.Term: the session ends when its keep-alives
// stop, which they do once the lease may have expired.
func (t *term) Done() <-chan struct{} { return t.sess.Done() }

// Info implements coordinator.Term.
func (t *term) Info() coordinator.TermInfo { return t.info }

// Resign implements coordinator.Term: it stops the keep-alives and revokes
// the lease, which deletes the election key. If etcd does not answer, the
// lease is revoked in the background once it does.
func (t *term) Resign(ctx context.Context) error {
	t.resignOnce.Do(func() {
		t.sess.Orphan()
		_, err := t.keeper.Revoke(ctx, t.lease)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			err = nil
		}
		if err != nil {
			t.revokeLater(t.keeper, t.lease)
		}
		t.resignErr = err
		t.cancel()
	})
	return t.resignErr
}
