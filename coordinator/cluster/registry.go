package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
)

// The registry of live coordinators is a key per process under
// etcdstore.CoordinatorsPrefix, bound to a lease of the process's own
// (not a shard's), whose value is its advertised address. A process that
// dies leaves it when the lease expires; one that leaves gracefully
// revokes the lease first, so that the others plan without it and
// campaign for its shards before it resigns them.

// announce puts this process's key in the registry, on a new session of
// ttl, and returns the session.
func announce(ctx context.Context, cli *clientv3.Client, prefix, addr string, ttl time.Duration) (*concurrency.Session, error) {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(ttl/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("regroup: starting the session of this coordinator's registry key: %w", err)
	}
	key := fmt.Sprintf("%s%x", etcdstore.CoordinatorsPrefix(prefix), sess.Lease())
	if _, err := cli.Put(ctx, key, addr, clientv3.WithLease(sess.Lease())); err != nil {
		sess.Close()
		return nil, fmt.Errorf("regroup: putting this coordinator's registry key %s: %w", key, err)
	}
	return sess, nil
}

// liveCoordinators reads the registry: the advertised addresses of the
// live coordinators, sorted, each once.
func liveCoordinators(ctx context.Context, cli *clientv3.Client, prefix string) ([]string, error) {
	resp, err := cli.Get(ctx, etcdstore.CoordinatorsPrefix(prefix), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("regroup: reading the registry of live coordinators: %w", err)
	}
	addrs := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		addrs = append(addrs, string(kv.Value))
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), nil
}
