package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/cluster"
	"github.com/regroup-dev/regroup/coordinator/election"
	"github.com/regroup-dev/regroup/coordinator/prommetrics"
	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	"github.com/regroup-dev/regroup/member/fsm"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// backendFlags choose where group records live and how coordinators elect
// their leader.
type backendFlags struct {
	store          string
	dataDir        string
	etcdEndpoints  []string
	etcdClientPort int
	etcdPeerPort   int
	advertiseAddr  string
	leaseTTL       time.Duration
	shards         int
	etcdTLS        etcdTLSFlags
}

func (f *backendFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.store, "store", "etcd", "where group records live: etcd (durable; several coordinators elect a leader) or memory (kept in this process only)")
	fl.StringVar(&f.dataDir, "data-dir", "./regroup-data", "data directory of the embedded etcd (used when --etcd-endpoints is empty)")
	fl.StringSliceVar(&f.etcdEndpoints, "etcd-endpoints", nil, "etcd cluster to use, e.g. a:2379,b:2379,c:2379; empty starts an embedded single-node etcd in --data-dir")
	fl.IntVar(&f.etcdClientPort, "etcd-client-port", 7379, "loopback port of the embedded etcd's clients")
	fl.IntVar(&f.etcdPeerPort, "etcd-peer-port", 7380, "loopback port of the embedded etcd's peers")
	fl.StringVar(&f.advertiseAddr, "advertise-addr", "", "address members and other coordinators reach this one at (default: the --listen address)")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", election.DefaultTTL, "etcd lease TTL, whole seconds: a leader that stops renewing it is replaced after at most this long")
	fl.IntVar(&f.shards, "shards", 0, "number of shards the groups are spread over, each led by one coordinator: chosen at the cluster's first start and fixed for its life (0: the cluster's count, 64 for a new cluster; see docs/operations.md, \"Shards\")")
	f.etcdTLS.register(fl)
}

// backend is a running coordinator over its store.
type backend struct {
	srv     service
	run     func(ctx context.Context) // serves until ctx ends or srv closes
	cleanup func()                    // after run returned
}

// service is what serve needs of the coordinators of this process: one
// coordinator.Server, or a cluster.Process of several shards.
type service interface {
	regroupv1.CoordinatorServer
	regroupv1.AdminServer
	prommetrics.Server
	Register(grpc.ServiceRegistrar)
	Close()
}

// startBackend starts the store chosen by f and a coordinator over it,
// advertised at addr. With etcd the coordinator follows until it is
// elected; an unreachable etcd is retried with backoff.
func startBackend(ctx context.Context, f backendFlags, cfg coordinator.Config, listen net.Addr, log hclog.Logger) (*backend, error) {
	cfg.Address = f.advertiseAddr
	if cfg.Address == "" {
		cfg.Address = listen.String()
		if ip := listen.(*net.TCPAddr).IP; ip.IsUnspecified() {
			log.Warn("advertising a wildcard address; other coordinators cannot redirect members to it: set --advertise-addr", "address", cfg.Address)
		}
	}
	switch f.store {
	case "memory":
		if len(f.etcdEndpoints) > 0 {
			return nil, fmt.Errorf("--etcd-endpoints needs --store etcd")
		}
		if f.shards > 1 {
			return nil, fmt.Errorf("--shards %d needs --store etcd: a coordinator with --store memory serves every group alone", f.shards)
		}
		srv, err := coordinator.New(ctx, cfg, memstore.New())
		if err != nil {
			return nil, err
		}
		return &backend{srv: srv, run: func(ctx context.Context) {}, cleanup: func() {}}, nil
	case "etcd":
	default:
		return nil, fmt.Errorf("--store %q: want etcd or memory", f.store)
	}
	etcdTLS, err := f.etcdTLS.config(len(f.etcdEndpoints) > 0)
	if err != nil {
		return nil, err
	}
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	endpoints := f.etcdEndpoints
	quiet := new(atomic.Bool)
	etcdLog := etcdLogger(log.Named("etcd"), quiet)
	if len(endpoints) == 0 {
		if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("--data-dir: %w", err)
		}
		node, err := embedetcd.Start(embedetcd.Config{Dir: f.dataDir, ClientPort: f.etcdClientPort, PeerPort: f.etcdPeerPort, Logger: etcdLog})
		if err != nil {
			return nil, fmt.Errorf("%w (is another `regroup serve` using %s or these ports? choose --data-dir, --etcd-client-port and --etcd-peer-port, or use an external cluster with --etcd-endpoints)", err, f.dataDir)
		}
		cleanups = append(cleanups, func() {
			quiet.Store(true)
			node.Close()
		})
		endpoints = []string{node.Endpoint()}
		log.Info("embedded etcd started", "data_dir", f.dataDir, "endpoint", node.Endpoint())
	}
	cli, err := etcdstore.NewTLSClient(endpoints, etcdTLS, etcdLog)
	if err != nil {
		cleanup()
		return nil, err
	}
	cleanups = append(cleanups, func() { cli.Close() })
	if len(f.etcdEndpoints) > 0 {
		go checkEtcd(ctx, cli, log)
	}
	shards, err := clusterShards(ctx, cli, f.shards, log)
	if err != nil {
		cleanup()
		return nil, err
	}
	logFailoverBudget(log, f.leaseTTL, cfg.Group.MinSessionTimeout)
	// The embedded etcd's data directory is this process's alone: an
	// election key in it is this coordinator's previous life (a crash,
	// kill -9), and waiting for its lease would leave the groups without a
	// coordinator for a lease TTL.
	revokePast := func(revoke func(context.Context) (int, error)) {
		if len(f.etcdEndpoints) > 0 {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := revoke(rctx)
		cancel()
		if err != nil {
			log.Warn("could not revoke the previous life's election keys; waiting for their leases to expire", "error", err)
		}
	}
	if shards > 1 {
		p, err := cluster.New(cluster.Config{Client: cli, Shards: shards, TTL: f.leaseTTL, Server: cfg, Logger: log})
		if err != nil {
			cleanup()
			return nil, err
		}
		revokePast(func(ctx context.Context) (int, error) { return cluster.RevokePast(ctx, cli, "", log) })
		log.Info("groups are spread over shards; this coordinator leads its share of them", "shards", shards)
		return &backend{srv: p, run: func(ctx context.Context) { _ = p.Run(ctx) }, cleanup: cleanup}, nil
	}
	el, err := election.New(election.Config{Client: cli, TTL: f.leaseTTL, Logger: log.Named("election")})
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("--lease-ttl: %w", err)
	}
	cleanups = append(cleanups, el.Close)
	revokePast(el.RevokePast)
	srv, err := coordinator.NewElected(cfg, el)
	if err != nil {
		cleanup()
		return nil, err
	}
	return &backend{srv: srv, run: func(ctx context.Context) { _ = srv.Run(ctx) }, cleanup: cleanup}, nil
}

// clusterShards returns the cluster's number of shards (etcdstore.Shards),
// retrying while etcd does not answer, until ctx ends.
func clusterShards(ctx context.Context, cli *clientv3.Client, want int, log hclog.Logger) (int, error) {
	retry := time.Second
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := etcdstore.Shards(rctx, cli, "", want)
		cancel()
		if err == nil || errors.Is(err, etcdstore.ErrShardCount) || ctx.Err() != nil {
			return n, err
		}
		log.Error("cannot read the cluster's number of shards from etcd; retrying", "error", err, "retry_in", retry)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(retry):
		}
		retry = min(2*retry, 5*time.Second)
	}
}

// logFailoverBudget says which members ride through a failover of this
// coordinator (fsm.Config.RidesFailover, for a failover of the lease TTL
// plus fsm.FailoverOverhead), when sessions it accepts are shorter.
func logFailoverBudget(log hclog.Logger, ttl, minSession time.Duration) {
	failover := ttl + fsm.FailoverOverhead
	need := fsm.SessionToRide(failover)
	if minSession < need {
		log.Info("members keep their leases through a coordinator failover only with a session timeout above this (with the default 3 s heartbeat); shorter sessions are safe but lose their partitions for a moment in a failover",
			"session_timeout", need.Round(100*time.Millisecond), "lease_ttl", ttl, "failover", failover)
	}
}

// checkEtcd logs whether etcd answers, so that an unreachable cluster is
// reported at start in plain words; the coordinator retries on its own.
func checkEtcd(ctx context.Context, cli *clientv3.Client, log hclog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, ep := range cli.Endpoints() {
		if _, err := cli.Status(ctx, ep); err != nil {
			log.Error("etcd endpoint does not answer; the coordinator serves no group until etcd is reachable, and keeps retrying", "endpoint", ep, "error", err)
			continue
		}
		log.Info("etcd endpoint answers", "endpoint", ep)
	}
}
