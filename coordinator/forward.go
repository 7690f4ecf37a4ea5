package coordinator

import (
	"context"
	"crypto/tls"
	"math"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/regroup-dev/regroup/coordinator/auth"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// forwardedFrom is the metadata key a follower sets on the Admin calls it
// forwards to the leader. A coordinator that receives a forwarded call and
// does not lead refuses it rather than forwarding it again.
const forwardedFrom = "regroup-forwarded-from"

// Forwarded reports whether an incoming call was forwarded by another
// coordinator: the caller's coordinator answers it from what it leads and
// never forwards it again.
func Forwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedFrom)) > 0
}

// forwarder keeps one connection to the leader for forwarded Admin calls,
// over TLS when tlsConfig is set.
type forwarder struct {
	tlsConfig *tls.Config

	mu   sync.Mutex
	addr string
	conn *grpc.ClientConn
}

// admin returns an Admin client for the coordinator at addr, reusing the
// connection while the leader stays the same.
func (f *forwarder) admin(addr string) (regroupv1.AdminClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil && f.addr == addr {
		return regroupv1.NewAdminClient(f.conn), nil
	}
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
	creds := insecure.NewCredentials()
	if f.tlsConfig != nil {
		creds = credentials.NewTLS(f.tlsConfig)
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	if err != nil {
		return nil, err
	}
	f.addr, f.conn = addr, conn
	return regroupv1.NewAdminClient(conn), nil
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}

// forward answers an Admin call on a coordinator that does not lead: it
// passes the call to the leader, or answers NOT_COORDINATOR when no
// leader is known or the call was forwarded already. The call was
// authorized here already; it carries the caller's identity to the leader
// (auth.ForwardContext), which authorizes it again and trusts the identity
// only because this coordinator's own (its client certificate's) has the
// coordinator right there. handled is false when this coordinator leads
// and must answer the call itself.
func forward[Req, Resp any](ctx context.Context, s *Server, req Req, call func(regroupv1.AdminClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) (resp Resp, handled bool, err error) {
	if _, err := s.serving(); err == nil {
		return resp, false, nil
	}
	s.mu.Lock()
	refusal, closed := s.notLeading(), s.closed
	s.mu.Unlock()
	leader := s.leader()
	if leader == "" || leader == s.cfg.Address || closed || Forwarded(ctx) {
		return resp, true, rpcerr.ToStatus(refusal)
	}
	if auth.FromContext(ctx).Name != "" && s.cfg.PeerTLS == nil {
		// An authenticated caller's identity travels to the leader only
		// under this coordinator's certificate: without one, the caller
		// is sent to the leader (NOT_COORDINATOR names it).
		return resp, true, rpcerr.ToStatus(refusal)
	}
	c, err := s.fwd.admin(leader)
	if err != nil {
		return resp, true, rpcerr.ToStatus(refusal)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, forwardedFrom, s.cfg.Address)
	ctx = auth.ForwardContext(ctx, auth.FromContext(ctx))
	resp, err = call(c, ctx, req)
	return resp, true, err
}
