// Package cluster runs one `regroup serve` process of a cluster whose
// groups are sharded (coordinator/shard): a coordinator.Server per shard,
// each elected through an election.Elector of its own and fenced on its
// shard's key, behind one set of gRPC services that routes every call by
// its group's shard (router.go).
//
// The process announces itself in a registry of live coordinators
// (registry.go) and campaigns for the shards that shard.Plan gives it, from
// the live coordinators and the shards' current leaders: every process
// computes the same plan, so each leads about as many shards as the
// others. A shard the plan moves is handed over gracefully: the new
// leader campaigns first, and the old one, once it sees that, stops
// serving the shard (every acknowledged change is already stored) and
// resigns, so the new one is elected at once and loads the shard with full
// sessions, as after a failover. A process that leaves removes itself
// from the registry first and hands over every shard it leads the same
// way; one that dies loses its shards when their leases expire, and only
// those fail over.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/election"
	"github.com/regroup-dev/regroup/coordinator/shard"
	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Config configures a Process. The zero value of each field has the
// meaning given in its comment.
type Config struct {
	// Client reaches the etcd cluster; required. The Process does not
	// close it.
	Client *clientv3.Client
	// Prefix is the key prefix shared with the store; "" means
	// etcdstore.DefaultPrefix.
	Prefix string
	// Shards is the cluster's number of shards, as etcdstore.Shards
	// checked it; at least 1.
	Shards int
	// TTL is the lease TTL of every shard's term and of the registry key;
	// 0 means election.DefaultTTL.
	TTL time.Duration
	// Server configures the coordinator of every shard; its Address, this
	// process's advertised address, is required.
	Server coordinator.Config
	// Logger receives the process's logs; nil means hclog's default.
	Logger hclog.Logger
}

// placeEvery is how often a Process reads the registry and the shards'
// leaders again when it sees no change.
const placeEvery = 250 * time.Millisecond

// settleFor is how long the plan must have given a shard to the same
// coordinator before a live leader's shard moves there: the coordinator
// campaigns for it, and the leader hands it over, only once their own
// plans have said so that long. Processes read the registry and the
// elections at different moments, and a plan made from a view that
// another has not reached yet (a handover half done, a slow etcd) lasts
// less; without the wait, two such views swap shards that need not move.
// A shard without a live leader is campaigned for at once.
const settleFor = time.Second

// plannedFor is what the plan said of a shard, and since when.
type plannedFor struct {
	to    string
	since time.Time
}

// Process is one coordinator of a cluster of several shards. Its methods
// are safe for concurrent use.
type Process struct {
	regroupv1.UnimplementedCoordinatorServer
	regroupv1.UnimplementedAdminServer

	cfg      Config
	log      hclog.Logger
	servers  []*coordinator.Server
	electors []*election.Elector
	live     atomic.Pointer[[]string] // the registry as last read
	changed  chan struct{}            // the registry or an election changed
	// announced: Run has announced the process once (Run's alone).
	announced bool

	mu        sync.Mutex
	runs      []*shardRun  // the shards this process campaigns for or leads
	planned   []plannedFor // what the plan said of each shard, and since when
	logged    []int        // the shards led, as last logged (noteLed)
	started   atomic.Bool  // Run was called
	ran       chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
}

// shardRun is one shard's coordinator.Server.Run.
type shardRun struct {
	cancel   context.CancelCauseFunc
	stopping bool
}

// New makes the coordinators of every shard, following until Run
// campaigns.
func New(cfg Config) (*Process, error) {
	if cfg.Client == nil {
		return nil, errors.New("regroup: cluster: an etcd client is required")
	}
	if cfg.Shards < 1 {
		return nil, fmt.Errorf("regroup: cluster: %d shards: want at least 1", cfg.Shards)
	}
	if cfg.Server.Address == "" {
		return nil, errors.New("regroup: cluster: the coordinator's advertised address is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = etcdstore.DefaultPrefix
	}
	if cfg.TTL == 0 {
		cfg.TTL = election.DefaultTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.Default()
	}
	p := &Process{cfg: cfg, log: cfg.Logger, changed: make(chan struct{}, 1), runs: make([]*shardRun, cfg.Shards), planned: make([]plannedFor, cfg.Shards),
		ran: make(chan struct{}), closing: make(chan struct{})}
	// The shards share the process's CPU and limits.
	shared := coordinator.NewShared(cfg.Server.Overload)
	for i := range cfg.Shards {
		log := cfg.Logger.With("shard", i)
		e, err := election.New(election.Config{Client: cfg.Client, Prefix: cfg.Prefix, TTL: cfg.TTL, Logger: demote(log.Named("election")), Shard: i, Shards: cfg.Shards})
		if err != nil {
			p.closeAll()
			return nil, err
		}
		p.electors = append(p.electors, e)
		scfg := cfg.Server
		scfg.Logger, scfg.TermLogger = log, demote(log)
		scfg.Shared = shared
		s, err := coordinator.NewElected(scfg, e)
		if err != nil {
			p.closeAll()
			return nil, err
		}
		p.servers = append(p.servers, s)
	}
	return p, nil
}

// Run announces the process in the registry and campaigns for the shards
// the plan gives it, handing over the ones it moves, until ctx ends or
// Close is called; it then leaves the registry, hands over every shard it
// leads (waiting at most a TTL for each one's successor to campaign) and
// returns.
func (p *Process) Run(ctx context.Context) error {
	if p.started.Swap(true) {
		return errors.New("regroup: cluster: Run was called already")
	}
	defer close(p.ran)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	go p.watch(ctx)
	// The shards' runs outlive ctx until they are handed over.
	shards, stopShards := context.WithCancelCause(context.Background())
	defer stopShards(errors.New("the coordinator is shutting down"))
	var sess *concurrency.Session
	tick := time.NewTicker(placeEvery)
	defer tick.Stop()
	for ctx.Err() == nil {
		sess = p.announce(ctx, sess)
		p.place(ctx, shards, sess != nil)
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-p.changed:
		}
	}
	if sess != nil {
		rctx, rcancel := context.WithTimeout(context.Background(), p.cfg.TTL)
		_, err := p.cfg.Client.Revoke(rctx, sess.Lease())
		rcancel()
		sess.Orphan()
		if err != nil {
			p.log.Warn("cannot remove this coordinator from the registry; the others see it leave when its lease expires", "error", err)
		}
	}
	p.leave()
	stopShards(errors.New("the coordinator is shutting down"))
	p.waitShards()
	return nil
}

// announce returns this process's registry session: sess while its key
// lives, else a new one (nil if etcd refuses). After the first announcement
// it waits one placement period, so that coordinators started together see
// each other before the first of them campaigns and each campaigns for its
// share only: otherwise each campaigns for every shard without a leader
// and half of them move at once, a burst of elections that a slow etcd
// answers late.
func (p *Process) announce(ctx context.Context, sess *concurrency.Session) *concurrency.Session {
	if sess != nil {
		select {
		case <-sess.Done():
			p.log.Warn("this coordinator's registry key expired (etcd unreachable for a TTL?); announcing it again")
		default:
			return sess
		}
	}
	sess, err := announce(ctx, p.cfg.Client, p.cfg.Prefix, p.cfg.Server.Address, p.cfg.TTL)
	if err != nil && ctx.Err() == nil {
		p.log.Error("cannot announce this coordinator in the registry; it leads no new shard until it can", "error", err)
	}
	if sess != nil && !p.announced {
		p.announced = true
		select {
		case <-ctx.Done():
		case <-time.After(placeEvery):
		}
	}
	return sess
}

// watch signals p.changed whenever the registry or a shard's election
// changes, until ctx ends.
func (p *Process) watch(ctx context.Context) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		regs := p.cfg.Client.Watch(wctx, etcdstore.CoordinatorsPrefix(p.cfg.Prefix), clientv3.WithPrefix())
		elections := p.cfg.Client.Watch(wctx, etcdstore.ShardElectionsPrefix(p.cfg.Prefix), clientv3.WithPrefix())
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case r, ok := <-regs:
				if !ok || r.Err() != nil {
					break loop
				}
			case r, ok := <-elections:
				if !ok || r.Err() != nil {
					break loop
				}
			}
			p.kick()
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(placeEvery):
		}
	}
}

// kick asks Run to place the shards again now.
func (p *Process) kick() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// place campaigns for the shards the plan gives this process and hands
// over the others (shard.Act), from the registry and the shards' leaders
// as read now; announced says whether this process's registry key lives.
func (p *Process) place(ctx context.Context, shards context.Context, announced bool) {
	rctx, cancel := context.WithTimeout(ctx, p.cfg.TTL)
	live, err := liveCoordinators(rctx, p.cfg.Client, p.cfg.Prefix)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			p.log.Debug("cannot read the registry; shards stay where they are", "error", err)
		}
		return
	}
	p.live.Store(&live)
	me := p.cfg.Server.Address
	leaders := make([]string, len(p.electors))
	for i, e := range p.electors {
		leaders[i] = e.Leader()
	}
	plan := shard.Plan(len(leaders), live, leaders)
	fresh := announced && !slices.ContainsFunc(p.electors, func(e *election.Elector) bool { return !e.Fresh() })
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.runs {
		if p.planned[i].to != plan[i] {
			p.planned[i] = plannedFor{to: plan[i], since: now}
		}
		if r != nil && r.stopping {
			continue // until its run returns
		}
		switch shard.Act(shard.View{
			Me: me, Planned: plan[i], Leader: leaders[i], Running: r != nil,
			PlannedCampaigns: slices.Contains(p.electors[i].Coordinators(), plan[i]),
			LeaderLive:       slices.Contains(live, leaders[i]),
			Settled:          now.Sub(p.planned[i].since) >= settleFor,
			Fresh:            fresh,
		}) {
		case shard.Campaign:
			p.start(shards, i)
		case shard.Withdraw:
			p.stop(i, fmt.Errorf("handing shard %d over to %s", i, plan[i]))
		}
	}
	p.noteLed()
}

// start campaigns for shard i, with p.mu held.
func (p *Process) start(shards context.Context, i int) {
	ctx, cancel := context.WithCancelCause(shards)
	r := &shardRun{cancel: cancel}
	p.runs[i] = r
	p.log.Debug("campaigning for a shard", "shard", i)
	go func() {
		_ = p.servers[i].Run(ctx)
		p.mu.Lock()
		if p.runs[i] == r {
			p.runs[i] = nil
		}
		p.mu.Unlock()
		p.kick()
	}()
}

// stop ends the campaign for shard i, or its term, with p.mu held.
func (p *Process) stop(i int, why error) {
	r := p.runs[i]
	r.stopping = true
	p.log.Debug("leaving a shard", "shard", i, "reason", why)
	r.cancel(why)
}

// leave hands over every shard this process leads once another
// coordinator campaigns for it (it has seen this one leave the registry),
// or after a TTL; it stops the other campaigns at once. With no other
// coordinator live, nobody will campaign: it stops them all.
func (p *Process) leave() {
	me := p.cfg.Server.Address
	give := time.Now().Add(p.cfg.TTL)
	for {
		others := slices.DeleteFunc(slices.Clone(p.liveNow()), func(a string) bool { return a == me })
		p.mu.Lock()
		waiting := 0
		for i, r := range p.runs {
			if r == nil || r.stopping {
				continue
			}
			successor := slices.ContainsFunc(p.electors[i].Coordinators(), func(a string) bool { return a != me })
			if p.electors[i].Leader() == me && !successor && len(others) > 0 && time.Now().Before(give) {
				waiting++
				continue
			}
			p.stop(i, fmt.Errorf("leaving the cluster: handing shard %d over", i))
		}
		p.mu.Unlock()
		if waiting == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// liveNow reads the registry, or returns it as last read if etcd does not
// answer.
func (p *Process) liveNow() []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if live, err := liveCoordinators(ctx, p.cfg.Client, p.cfg.Prefix); err == nil {
		return live
	}
	if l := p.live.Load(); l != nil {
		return *l
	}
	return nil
}

// waitShards waits until every shard's run has returned, or for a TTL and
// the resignation's bound: a run stuck on an etcd that does not answer is
// left behind (its term ends with its lease).
func (p *Process) waitShards() {
	give := time.Now().Add(p.cfg.TTL + resignWait)
	for {
		p.mu.Lock()
		running := slices.ContainsFunc(p.runs, func(r *shardRun) bool { return r != nil })
		p.mu.Unlock()
		if !running {
			return
		}
		if time.Now().After(give) {
			p.log.Warn("shards still resigning (etcd does not answer?); leaving their leases to expire")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resignWait bounds how long waitShards waits beyond a TTL: a resignation
// takes at most 5 s (coordinator's resignTimeout).
const resignWait = 6 * time.Second

// Close leaves the cluster as Run does when its context ends (if Run
// runs), then closes every shard's coordinator: waiting requests are
// answered COORDINATOR_NOT_AVAILABLE.
func (p *Process) Close() {
	p.closeOnce.Do(func() {
		close(p.closing)
		if p.started.Load() {
			<-p.ran
		}
		p.closeAll()
	})
}

func (p *Process) closeAll() {
	for _, s := range p.servers {
		s.Close()
	}
	for _, e := range p.electors {
		e.Close()
	}
}

// Leading reports whether this process leads at least one shard.
func (p *Process) Leading() bool {
	return slices.ContainsFunc(p.servers, (*coordinator.Server).Leading)
}

// Led returns the shards this process leads, in order.
func (p *Process) Led() []int {
	var led []int
	for i, ok := range p.ShardsLed() {
		if ok {
			led = append(led, i)
		}
	}
	return led
}

// ShardsLed implements prommetrics.Sharded: whether this process leads
// each shard.
func (p *Process) ShardsLed() []bool {
	led := make([]bool, len(p.servers))
	for i, s := range p.servers {
		led[i] = s.Leading()
	}
	return led
}

// GroupStats returns the state of every group of the shards this process
// leads.
func (p *Process) GroupStats() []coordinator.GroupStat {
	var out []coordinator.GroupStat
	for _, s := range p.servers {
		out = append(out, s.GroupStats()...)
	}
	return out
}

// RevokePast revokes the lease of every shard's election key and of every
// registry key under prefix ("" means etcdstore.DefaultPrefix), so that a
// coordinator restarted after a crash does not wait for its past life's
// leases to expire. As election.Elector.RevokePast, only a coordinator
// that knows no other one uses this etcd may call it (one on its own
// embedded etcd). It returns how many leases it revoked.
func RevokePast(ctx context.Context, cli *clientv3.Client, prefix string, log hclog.Logger) (int, error) {
	if prefix == "" {
		prefix = etcdstore.DefaultPrefix
	}
	leases := map[clientv3.LeaseID]string{}
	for _, pfx := range []string{etcdstore.ShardElectionsPrefix(prefix), etcdstore.CoordinatorsPrefix(prefix)} {
		resp, err := cli.Get(ctx, pfx, clientv3.WithPrefix())
		if err != nil {
			return 0, fmt.Errorf("regroup: reading the keys under %s: %w", pfx, err)
		}
		for _, kv := range resp.Kvs {
			if kv.Lease != 0 {
				leases[clientv3.LeaseID(kv.Lease)] = string(kv.Key)
			}
		}
	}
	for lease, key := range leases {
		if _, err := cli.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return 0, fmt.Errorf("regroup: revoking the lease of %s: %w", key, err)
		}
	}
	if len(leases) > 0 {
		log.Info("revoked the election and registry keys of this coordinator's previous life instead of waiting for their leases", "leases", len(leases))
	}
	return len(leases), nil
}
