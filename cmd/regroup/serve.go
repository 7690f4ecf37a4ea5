package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/node"
)

type serveFlags struct {
	listen          string
	backend         backendFlags
	logLevel        string
	logJSON         bool
	maxMessageBytes int
	metricsAddr     string
	group           group.Config
	limits          limitFlags
	security        securityFlags
	overloadDelay   time.Duration
	overloadTransit time.Duration
	pprofAddr       string
	pprofRemote     bool
}

func serveCmd() *cobra.Command {
	f := serveFlags{group: group.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a coordinator",
		Long: `Run a coordinator: it serves the Coordinator and Admin gRPC services until it
receives SIGTERM or SIGINT, then answers every waiting request (so members
move on at once) and stops.

By default the groups live in an embedded single-node etcd in ./regroup-data,
so a restarted coordinator finds them. With --etcd-endpoints, any number of
coordinators share an external etcd cluster: one leads, the others redirect
members to it and take over when it fails.

Every flag can also be set through the environment variable shown with it.`,
		Example: `  # One durable coordinator on the default address, 127.0.0.1:7070, its
  # groups in an embedded etcd in ./regroup-data:
  regroup serve

  # Three coordinators sharing an etcd cluster (one leads), over TLS (a
  # network address needs it; docs/security.md):
  regroup serve --listen 10.0.0.1:7070 --etcd-endpoints a:2379,b:2379,c:2379 \
    --tls-cert node.pem --tls-key node-key.pem

  # Nothing kept: groups live in this process only.
  regroup serve --store memory

  # All interfaces, plaintext (anyone on the network can call it), JSON
  # logs, at most 500 members per group:
  REGROUP_LOG_JSON=true regroup serve --listen 0.0.0.0:7070 \
    --insecure-plaintext --max-group-size 500`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), f, cmd.ErrOrStderr()) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:7070", "address to serve gRPC on")
	f.backend.register(fl)
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: trace, debug, info, warn or error")
	fl.BoolVar(&f.logJSON, "log-json", false, "log JSON lines instead of text")
	fl.IntVar(&f.maxMessageBytes, "max-message-bytes", 64<<20, "largest gRPC message accepted or sent (a leader's assignment for a big group is large)")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:7071", "address to serve Prometheus metrics on, at /metrics (empty disables)")
	fl.DurationVar(&f.group.MinSessionTimeout, "min-session-timeout", f.group.MinSessionTimeout, "smallest session timeout a member may ask for")
	fl.DurationVar(&f.group.MaxSessionTimeout, "max-session-timeout", f.group.MaxSessionTimeout, "largest session timeout a member may ask for")
	fl.DurationVar(&f.group.MaxRebalanceTimeout, "max-rebalance-timeout", f.group.MaxRebalanceTimeout, "largest rebalance timeout a member may ask for")
	fl.DurationVar(&f.group.InitialRebalanceDelay, "initial-rebalance-delay", f.group.InitialRebalanceDelay, "how long an empty group's first rebalance waits for more members (0 disables)")
	fl.IntVar(&f.group.MaxSize, "max-group-size", f.group.MaxSize, "most members a group may have (0: no limit)")
	fl.DurationVar(&f.group.NewMemberJoinTimeout, "new-member-join-timeout", f.group.NewMemberJoinTimeout, "how long a new member's first join may wait at the barrier")
	fl.DurationVar(&f.group.EmptyRetention, "empty-group-retention", f.group.EmptyRetention, "how long an Empty group is kept before it is deleted")
	fl.IntVar(&f.group.MaxMetadataBytes, "max-metadata-bytes", f.group.MaxMetadataBytes, "largest subscription metadata (and assignment user data) accepted, in bytes")
	fl.DurationVar(&f.group.AssignmentInterval, "assignment-interval", f.group.AssignmentInterval, "shortest time between two target assignments of a next-generation group (a storm of joins is assigned once per interval)")
	fl.DurationVar(&f.group.MemberHeartbeat, "member-heartbeat", f.group.MemberHeartbeat, "how long next-generation members hold their calls (at most a third of their session)")
	fl.DurationVar(&f.overloadDelay, "overload-delay", 200*time.Millisecond, "queueing delay past which the coordinator sheds new members and Admin reads (COORDINATOR_OVERLOADED), when every call of a second waited longer (0 disables)")
	fl.DurationVar(&f.overloadTransit, "overload-transit", 500*time.Millisecond, "transit past which the coordinator sheds new members and Admin reads, when most of the calls of a second (at least 16) report a longer one: its round trip less the coordinator's hold, the queues of a coordinator short of CPU (must exceed the network's round trip; 0 disables)")
	fl.StringVar(&f.pprofAddr, "pprof-addr", "", "address to serve net/http/pprof on, at /debug/pprof/ (empty disables; loopback only unless --pprof-allow-remote)")
	fl.BoolVar(&f.pprofRemote, "pprof-allow-remote", false, "allow --pprof-addr on a non-loopback address")
	f.security.register(fl)
	f.limits.register(fl, &f.group)
	bindEnv(cmd)
	return cmd
}

func newLogger(level string, json bool, w io.Writer) (hclog.Logger, error) {
	lvl := hclog.LevelFromString(level)
	if lvl == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: "regroup", Level: lvl, JSONFormat: json, Output: w}), nil
}

func serve(ctx context.Context, f serveFlags, logTo io.Writer) error {
	log, err := newLogger(f.logLevel, f.logJSON, logTo)
	if err != nil {
		return err
	}
	if err := f.group.Validate(); err != nil {
		return err
	}
	if err := f.limits.check(f.group, f.maxMessageBytes, f.backend.store == "etcd" && len(f.backend.etcdEndpoints) == 0); err != nil {
		return err
	}
	sec, err := f.security.setup(log)
	if err != nil {
		return err
	}
	if f.overloadDelay < 0 {
		return fmt.Errorf("--overload-delay %v: want 0 (no shedding) or a positive delay", f.overloadDelay)
	}
	if f.overloadTransit < 0 {
		return fmt.Errorf("--overload-transit %v: want 0 (no shedding) or a positive transit, above the network's round trip", f.overloadTransit)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reportConnections(log, f.limits.maxConnections)
	if f.pprofAddr != "" {
		_, stopProfiles, err := pprofServer(f.pprofAddr, f.pprofRemote, log)
		if err != nil {
			return err
		}
		defer stopProfiles()
	}

	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (is another coordinator running? choose another address with --listen)", f.listen, err)
	}
	lis = f.limits.listener(lis)
	if err := sec.checkListener("--listen", lis.Addr()); err != nil {
		lis.Close()
		return err
	}
	obs, err := startObservability(f.metricsAddr, log)
	if err != nil {
		lis.Close()
		return err
	}
	defer obs.stop()
	be, err := startBackend(ctx, f.backend, coordinator.Config{Group: f.group, Logger: log, Metrics: obs.coordinatorMetrics(), PeerTLS: sec.peerTLS, Overload: node.Overload{Delay: f.overloadDelay, Transit: f.overloadTransit}}, lis.Addr(), log)
	if err != nil {
		lis.Close()
		return err
	}
	defer be.cleanup()
	srv := be.srv
	opts := append(f.limits.serverOptions(), grpc.MaxRecvMsgSize(f.maxMessageBytes), grpc.MaxSendMsgSize(f.maxMessageBytes))
	gs := grpc.NewServer(append(sec.serverOptions(), opts...)...)
	srv.Register(gs)
	if err := obs.attach(gs, srv, f.limits.metricsMaxGroups); err != nil {
		return err
	}
	errc := make(chan error, 2)
	ags, err := sec.serveAdmin(srv, obs.health, opts, errc)
	if err != nil {
		return err
	}
	go func() { errc <- gs.Serve(lis) }()
	ran := make(chan struct{})
	go func() { defer close(ran); be.run(ctx) }()
	log.Info("serving", "address", lis.Addr().String(), "store", f.backend.store)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	srv.Close()
	<-ran // resigned leadership, if it led
	done := make(chan struct{})
	go func() {
		if ags != nil {
			ags.GracefulStop()
		}
		gs.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		if ags != nil {
			ags.Stop()
		}
		gs.Stop()
	}
	log.Info("stopped")
	return nil
}
