package election

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errHeld is what a lease call returns while the test hook holds
// keep-alives back, as if etcd were unreachable.
var errHeld = errors.New("regroup: election: lease calls held back by a test")

// keeper is the clientv3.Lease a term's concurrency.Session runs on. It
// grants the lease and keeps it alive itself, one KeepAliveOnce at a time,
// and records when each successful call was sent: etcd renews the lease for
// its TTL when it receives the call, which is after the send, so the lease
// cannot expire before send time + TTL. The session's own keep-alive
// stream reports only when answers arrive, which bounds nothing.
//
// The lease is held until validUntil: the send time of the last successful
// grant or keep-alive, plus the TTL, minus a margin for the difference
// between this machine's clock rate and etcd's. Once validUntil passes with
// no renewal, the keep-alive channel closes and the session ends.
type keeper struct {
	clientv3.Lease // the client's; Revoke, TimeToLive, Leases and Close pass through

	margin time.Duration
	hold   *atomic.Bool // test hook: while true, no keep-alive is sent
	log    hclog.Logger

	mu         sync.Mutex
	ttl        time.Duration // as granted
	validUntil time.Time
}

// extend records a successful grant or keep-alive sent at sent.
func (k *keeper) extend(sent time.Time, ttlSeconds int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ttl = time.Duration(ttlSeconds) * time.Second
	if until := sent.Add(k.ttl - k.margin); until.After(k.validUntil) {
		k.validUntil = until
	}
}

// deadline returns until when the lease is certainly held.
func (k *keeper) deadline() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.validUntil
}

// granted returns the lease's TTL as granted.
func (k *keeper) granted() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ttl
}

// Grant grants the lease and starts its validity at the send time.
func (k *keeper) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	if k.hold.Load() {
		return nil, errHeld
	}
	sent := time.Now()
	resp, err := k.Lease.Grant(ctx, ttl)
	if err != nil {
		return nil, err
	}
	k.extend(sent, resp.TTL)
	return resp, nil
}

// Revoke revokes the lease, unless the test hook cuts this coordinator off.
func (k *keeper) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	if k.hold.Load() {
		return nil, errHeld
	}
	return k.Lease.Revoke(ctx, id)
}

// KeepAlive keeps lease id alive until ctx ends or the lease may have
// expired; the returned channel closes then.
func (k *keeper) KeepAlive(ctx context.Context, id clientv3.LeaseID) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	ch := make(chan *clientv3.LeaseKeepAliveResponse, 1)
	go k.run(ctx, id, ch)
	return ch, nil
}

// retryInterval is the wait after a failed keep-alive.
const retryInterval = 100 * time.Millisecond

func (k *keeper) run(ctx context.Context, id clientv3.LeaseID, ch chan<- *clientv3.LeaseKeepAliveResponse) {
	defer close(ch)
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := time.Now().Add(k.granted() / 3)
	for {
		until := k.deadline()
		now := time.Now()
		if !now.Before(until) {
			k.log.Warn("lease may have expired: no keep-alive succeeded in time", "lease", int64(id), "valid_until", until)
			return
		}
		if now.Before(next) {
			timer.Reset(min(next.Sub(now), until.Sub(now)))
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			continue
		}
		if k.hold.Load() {
			next = now.Add(retryInterval)
			continue
		}
		sent := now
		kctx, cancel := context.WithDeadline(ctx, until)
		resp, err := k.Lease.KeepAliveOnce(kctx, id)
		cancel()
		switch {
		case err == nil:
			k.extend(sent, resp.TTL)
			next = sent.Add(k.granted() / 3)
			select {
			case ch <- resp:
			default:
			}
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			k.log.Warn("lease expired in etcd", "lease", int64(id))
			return
		case ctx.Err() != nil:
			return
		default:
			k.log.Warn("lease keep-alive failed; retrying", "lease", int64(id), "error", err,
				"time_left", time.Until(until).Round(time.Millisecond))
			next = time.Now().Add(retryInterval)
		}
	}
}
