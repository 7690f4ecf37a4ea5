package member

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// transport sends the member's requests to the coordinator it believes
// leads: it follows NOT_COORDINATOR to the leader the error names, and
// moves to the next endpoint when one cannot be reached.
type transport struct {
	log      hclog.Logger
	dialOpts []grpc.DialOption

	mu        sync.Mutex
	endpoints []string
	current   string
	conns     map[string]*grpc.ClientConn
	closed    bool
}

func newTransport(endpoints []string, opts []grpc.DialOption, log hclog.Logger) *transport {
	return &transport{log: log, dialOpts: opts, endpoints: endpoints, current: endpoints[0], conns: map[string]*grpc.ClientConn{}}
}

// client returns a Coordinator client for the current endpoint.
func (t *transport) client() (regroupv1.CoordinatorClient, string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, "", errors.New("regroup: member: stopped")
	}
	addr := t.current
	conn := t.conns[addr]
	if conn == nil {
		c, err := grpc.NewClient(addr, t.dialOpts...)
		if err != nil {
			return nil, addr, fmt.Errorf("regroup: member: coordinator address %q: %w", addr, err)
		}
		t.conns[addr], conn = c, c
	}
	return regroupv1.NewCoordinatorClient(conn), addr, nil
}

// moveFrom leaves addr for the leader it named, or for the next endpoint.
func (t *transport) moveFrom(addr, leader string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current != addr {
		return // another request moved already
	}
	next := leader
	if next == "" || next == addr {
		i := 0
		for j, e := range t.endpoints {
			if e == addr {
				i = j + 1
			}
		}
		next = t.endpoints[i%len(t.endpoints)]
	}
	if next != addr {
		t.log.Info("switching coordinator", "from", addr, "to", next)
	}
	t.current = next
}

// call sends one request and returns the answer, with protocol errors as
// *regroup.Error.
func (t *transport) call(ctx context.Context, req proto.Message) (proto.Message, error) {
	c, addr, err := t.client()
	if err != nil {
		return nil, err
	}
	var resp proto.Message
	switch r := req.(type) {
	case *regroupv1.JoinGroupRequest:
		resp, err = c.JoinGroup(ctx, r)
	case *regroupv1.SyncGroupRequest:
		resp, err = c.SyncGroup(ctx, r)
	case *regroupv1.HeartbeatRequest:
		resp, err = c.Heartbeat(ctx, r)
	case *regroupv1.LeaveGroupRequest:
		resp, err = c.LeaveGroup(ctx, r)
	default:
		return nil, fmt.Errorf("regroup: member: cannot send %T", req)
	}
	if err == nil {
		return resp, nil
	}
	perr := rpcerr.FromStatus(err)
	var e *regroup.Error
	switch {
	case errors.As(perr, &e) && e.Code == regroup.CodeNotCoordinator:
		t.moveFrom(addr, e.Metadata[regroup.MetaLeader])
	case errors.As(perr, &e) && e.Code == regroup.CodeCoordinatorNotAvailable:
		t.moveFrom(addr, "")
	case e == nil && status.Code(err) != codes.DeadlineExceeded:
		t.moveFrom(addr, "")
	}
	return nil, perr
}

func (t *transport) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, c := range t.conns {
		_ = c.Close()
	}
}
