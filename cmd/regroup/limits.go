package main

import (
	"fmt"
	"net"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/internal/embedetcd"
)

// limitFlags are the limits no client can break: what a group may hold
// (group.Config's limits) and what a connection may use. docs/security.md
// lists each with its default and why.
type limitFlags struct {
	maxConnections       int
	maxConcurrentStreams uint32
	keepaliveMinTime     time.Duration
	keepaliveTime        time.Duration
	keepaliveTimeout     time.Duration
	maxConnectionIdle    time.Duration
	metricsMaxGroups     int
}

func (f *limitFlags) register(fl *pflag.FlagSet, g *group.Config) {
	fl.Int32Var(&g.MaxTopicPartitions, "max-topic-partitions", g.MaxTopicPartitions, "most partitions a topic may have (assignments are sized by it)")
	fl.IntVar(&g.MaxGroups, "max-groups", g.MaxGroups, "most groups this coordinator serves; a join that would create one more is refused (0: no limit)")
	fl.IntVar(&g.MaxMembers, "max-members", g.MaxMembers, "most members of all groups together; a new member past it is refused as overloaded and retries later, so that load beyond what the coordinator serves waits (0: no limit; see docs/operations.md, sizing)")
	fl.IntVar(&g.MaxPendingMembers, "max-pending-members", g.MaxPendingMembers, "most member ids a group may have minted (MEMBER_ID_REQUIRED) and not yet seen used")
	fl.DurationVar(&g.PendingMemberTimeout, "pending-member-timeout", g.PendingMemberTimeout, "how long a minted member id stays valid, and the longest a join barrier waits for such ids once every member has rejoined")
	fl.IntVar(&g.MaxGroupMetadataBytes, "max-group-metadata-bytes", g.MaxGroupMetadataBytes, "most bytes of protocols, assignments and ids a group's members may hold together; at most half of --max-message-bytes (and of etcd's request limit)")
	fl.IntVar(&f.maxConnections, "max-connections", 4096, "most client connections open at once; more wait to be accepted (0: no limit)")
	fl.Uint32Var(&f.maxConcurrentStreams, "max-concurrent-streams", 1024, "most calls in flight on one connection")
	fl.DurationVar(&f.keepaliveMinTime, "keepalive-min-time", 10*time.Second, "shortest interval between a client's keepalive pings; a client that pings more often is disconnected")
	fl.DurationVar(&f.keepaliveTime, "keepalive-time", 30*time.Second, "how long a connection may stay silent before the coordinator pings it")
	fl.DurationVar(&f.keepaliveTimeout, "keepalive-timeout", 10*time.Second, "how long the coordinator waits for a ping's answer before it closes the connection")
	fl.DurationVar(&f.maxConnectionIdle, "max-connection-idle", 10*time.Minute, "how long a connection without calls is kept open")
	fl.IntVar(&f.metricsMaxGroups, "metrics-max-groups", 1000, "most groups with per-group metric series of their own; the others are summed under group=\"_other\"")
}

// check relates the group metadata budget to the limits of what carries
// and stores a group: a leader's JoinGroup answer and DescribeGroup's carry
// every member's metadata in one gRPC message, and a group's record is one
// etcd request. Half of each is left for ids, history and bookkeeping.
func (f *limitFlags) check(g group.Config, maxMessageBytes int, embedded bool) error {
	if 2*g.MaxGroupMetadataBytes > maxMessageBytes {
		return fmt.Errorf("--max-group-metadata-bytes %d is more than half of --max-message-bytes %d: a group's JoinGroup answer could exceed the message limit; lower it or raise --max-message-bytes",
			g.MaxGroupMetadataBytes, maxMessageBytes)
	}
	if embedded && 2*g.MaxGroupMetadataBytes > embedetcd.DefaultMaxRequestBytes {
		return fmt.Errorf("--max-group-metadata-bytes %d is more than half of the embedded etcd's request limit %d: a group's record could not be stored; lower it",
			g.MaxGroupMetadataBytes, embedetcd.DefaultMaxRequestBytes)
	}
	if f.keepaliveTime <= 0 || f.keepaliveTimeout <= 0 || f.keepaliveMinTime <= 0 || f.maxConnectionIdle <= 0 {
		return fmt.Errorf("--keepalive-min-time, --keepalive-time, --keepalive-timeout and --max-connection-idle must be positive")
	}
	if f.maxConcurrentStreams == 0 {
		return fmt.Errorf("--max-concurrent-streams must be positive")
	}
	return nil
}

// listener caps the connections lis accepts at once. netutil.LimitListener
// (golang.org/x/net, already a dependency through gRPC) makes the
// connections above the cap wait in the kernel's backlog instead of being
// refused, and frees a slot when a connection closes: what a server that
// must not run out of file descriptors needs, without our own semaphore.
func (f *limitFlags) listener(lis net.Listener) net.Listener {
	if f.maxConnections <= 0 {
		return lis
	}
	return netutil.LimitListener(lis, f.maxConnections)
}

// serverOptions are the per-connection limits, keepalive enforcement and
// the API's input checks (coordinator.UTF8Checks), for every gRPC server
// of the API.
func (f *limitFlags) serverOptions() []grpc.ServerOption {
	return append(coordinator.UTF8Checks(),
		grpc.MaxConcurrentStreams(f.maxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: f.keepaliveMinTime,
			// Members idle between held heartbeats may ping too.
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: f.maxConnectionIdle,
			Time:              f.keepaliveTime,
			Timeout:           f.keepaliveTimeout,
		}),
	)
}
