package auth

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Metadata keys of a forwarded Admin call: the identity that the
// forwarding coordinator authenticated, and how.
const (
	forwardedIdentityKey = "regroup-forwarded-identity-bin"
	forwardedMethodKey   = "regroup-forwarded-method"
)

// ForwardContext returns ctx with id attached to its outgoing metadata, for
// a coordinator that forwards a call it authorized to another one. The
// receiver takes id as the caller only if the forwarding coordinator's own
// identity has the coordinator right in its policy. The anonymous identity
// is not attached.
func ForwardContext(ctx context.Context, id Identity) context.Context {
	if id.Method == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, forwardedIdentityKey, id.Name, forwardedMethodKey, id.Method)
}

// CertificateName is the identity of a verified client certificate: its
// first URI SAN (e.g. spiffe://example.org/billing), else its first DNS
// SAN, else its subject's common name.
func CertificateName(c *x509.Certificate) string {
	switch {
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}

// access is what a method needs: a right on the request's group, on its
// topic, or on anything.
type access struct {
	right Right
	group bool             // on the request's group id
	topic func(any) string // on this topic of the request
}

// methods is the one table of what each RPC needs. A method not in it is
// refused once authentication is on, except the health service (open to
// every caller, for load balancers and probes) and server reflection
// (describe on anything).
var methods = map[string]access{
	regroupv1.Coordinator_JoinGroup_FullMethodName:       {right: Consume, group: true},
	regroupv1.Coordinator_SyncGroup_FullMethodName:       {right: Consume, group: true},
	regroupv1.Coordinator_Heartbeat_FullMethodName:       {right: Consume, group: true},
	regroupv1.Coordinator_LeaveGroup_FullMethodName:      {right: Consume, group: true},
	regroupv1.Coordinator_Reconcile_FullMethodName:       {right: Consume, group: true},
	regroupv1.Coordinator_FindCoordinator_FullMethodName: {right: Consume, group: true},
	regroupv1.Admin_DescribeGroup_FullMethodName:         {right: Describe, group: true},
	regroupv1.Admin_WatchGroup_FullMethodName:            {right: Describe, group: true},
	regroupv1.Admin_ListGroups_FullMethodName:            {right: Describe}, // filtered by unary
	regroupv1.Admin_ListTopics_FullMethodName:            {right: Describe},
	regroupv1.Admin_DescribeCluster_FullMethodName:       {right: Describe},
	regroupv1.Admin_RemoveMembers_FullMethodName:         {right: Admin, group: true},
	regroupv1.Admin_DeleteGroup_FullMethodName:           {right: Admin, group: true},
	regroupv1.Admin_PutTopic_FullMethodName: {right: Admin, topic: func(r any) string {
		return r.(*regroupv1.PutTopicRequest).GetTopic().GetName()
	}},
	regroupv1.Admin_DeleteTopic_FullMethodName: {right: Admin, topic: func(r any) string {
		return r.(*regroupv1.DeleteTopicRequest).GetName()
	}},
}

// service returns the service part of a full method name.
func service(method string) string {
	svc, _, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	return svc
}

func accessOf(method string) (access, bool) {
	if a, ok := methods[method]; ok {
		return a, true
	}
	switch service(method) {
	case reflectionv1.ServerReflection_ServiceDesc.ServiceName, reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName:
		return access{right: Describe}, true
	}
	return access{}, false
}

func (a *Auth) unary(l Listener) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, p, err := a.admit(ctx, l, info.FullMethod, req)
		if err != nil {
			return nil, err
		}
		resp, err := handler(ctx, req)
		if lg, ok := resp.(*regroupv1.ListGroupsResponse); ok && p != nil {
			kept := lg.Groups[:0]
			for _, g := range lg.Groups {
				if MayDescribe(ctx, g.GetGroupId()) {
					kept = append(kept, g)
				}
			}
			lg.Groups = kept
		}
		return resp, err
	}
}

func (a *Auth) stream(l Listener) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &admitStream{ServerStream: ss, a: a, l: l, method: info.FullMethod})
	}
}

// admitStream admits a stream at its first message, which names the group
// it is about.
type admitStream struct {
	grpc.ServerStream
	a      *Auth
	l      Listener
	method string
	ctx    context.Context // set once admitted
}

func (s *admitStream) Context() context.Context {
	if s.ctx != nil {
		return s.ctx
	}
	return s.ServerStream.Context()
}

func (s *admitStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil || s.ctx != nil {
		return err
	}
	ctx, _, err := s.a.admit(s.ServerStream.Context(), s.l, s.method, m)
	if err != nil {
		return err
	}
	s.ctx = ctx
	return nil
}

func (s *admitStream) SendMsg(m any) error {
	if s.ctx == nil {
		return rpcerr.ToStatus(regroup.Errorf(regroup.CodeNotAuthorized, "internal error: %s answered before reading its request, which authorizes it", s.method))
	}
	return s.ServerStream.SendMsg(m)
}

// admit authenticates and authorizes a call to method with req. It returns
// the context the handler runs in, carrying the caller's identity, and
// the policy it was authorized by (nil when authentication is off).
func (a *Auth) admit(ctx context.Context, l Listener, method string, req any) (context.Context, *Policy, error) {
	if service(method) == healthpb.Health_ServiceDesc.ServiceName {
		return ctx, nil, nil
	}
	admin := service(method) == regroupv1.Admin_ServiceDesc.ServiceName
	if a.policy == nil {
		if l.CoordinatorOnly && admin {
			return nil, nil, adminElsewhere()
		}
		return ctx, nil, nil
	}
	p := a.policy.get()
	id, err := a.authenticate(ctx)
	if err != nil {
		return nil, nil, err
	}
	id, forwarded, err := a.forwarded(ctx, p, id)
	if err != nil {
		return nil, nil, err
	}
	if l.CoordinatorOnly && admin && !forwarded {
		return nil, nil, adminElsewhere()
	}
	if err := authorize(p, id, method, req); err != nil {
		return nil, nil, err
	}
	return withPolicy(NewContext(ctx, id), p), p, nil
}

func adminElsewhere() error {
	return rpcerr.ToStatus(regroup.Errorf(regroup.CodeNotAuthorized,
		"this address serves members only; the Admin service is on this coordinator's admin address (its --admin-listen): call that one"))
}

// authenticate returns the caller's identity: a bearer token's name when
// the call carries one (a wrong token is refused even with a certificate),
// else the verified client certificate's name.
func (a *Auth) authenticate(ctx context.Context) (Identity, error) {
	p, _ := peer.FromContext(ctx)
	var info credentials.TLSInfo
	isTLS := false
	if p != nil {
		info, isTLS = p.AuthInfo.(credentials.TLSInfo)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if vals := md.Get("authorization"); len(vals) > 0 {
		return a.token(vals, isTLS || (p != nil && loopback(p.LocalAddr)))
	}
	if isTLS && len(info.State.VerifiedChains) > 0 && len(info.State.PeerCertificates) > 0 {
		if name := CertificateName(info.State.PeerCertificates[0]); name != "" {
			return Identity{Name: name, Method: "mtls"}, nil
		}
		return Identity{}, unauthenticated("the client certificate names no one (no URI or DNS SAN, no common name); issue one with a name the policy can grant rights to")
	}
	switch {
	case a.certs != nil && a.certs.clientCA != nil && a.tokens != nil:
		return Identity{}, unauthenticated("this coordinator requires authentication: present a client certificate signed by its client CA, or a token (metadata \"authorization: Bearer <token>\")")
	case a.tokens != nil:
		return Identity{}, unauthenticated("this coordinator requires a token: send metadata \"authorization: Bearer <token>\" (member.Config.Token, regroup --token)")
	}
	return Identity{}, unauthenticated("this coordinator requires a client certificate signed by its client CA (member.Config.TLS, regroup --tls-cert and --tls-key)")
}

// token authenticates a call by its authorization metadata.
func (a *Auth) token(vals []string, secure bool) (Identity, error) {
	if a.tokens == nil {
		return Identity{}, unauthenticated("this coordinator accepts no tokens (it has no --token-file): authenticate with a client certificate")
	}
	if !secure {
		return Identity{}, unauthenticated("tokens are refused over plaintext on a non-loopback address, where anyone on the path could read them: connect with TLS")
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if len(vals) != 1 || !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return Identity{}, unauthenticated("malformed authorization metadata: want one value \"Bearer <token>\"")
	}
	name, ok := a.tokens.get().lookup(tok)
	if !ok {
		return Identity{}, unauthenticated("the token is not in the coordinator's token file: check the token, or have an operator add its SHA-256 hash")
	}
	return Identity{Name: name, Method: "token"}, nil
}

// forwarded returns the identity a call was forwarded for, when a
// coordinator forwarded it, and whether it was forwarded. Only a caller
// with the coordinator right may forward.
func (a *Auth) forwarded(ctx context.Context, p *Policy, caller Identity) (Identity, bool, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	names := md.Get(forwardedIdentityKey)
	if len(names) == 0 {
		return caller, false, nil
	}
	if !p.Grants(caller.Name, Coordinator) {
		return Identity{}, false, notAuthorized(fmt.Sprintf("%q forwarded a call for another identity but is not a coordinator: an operator can grant the coordinators' identities the right with a policy line such as %q",
			caller.Name, caller.Name+" coordinator"))
	}
	methods := md.Get(forwardedMethodKey)
	if len(names) != 1 || names[0] == "" || len(methods) != 1 {
		return Identity{}, false, unauthenticated("malformed forwarded identity")
	}
	return Identity{Name: names[0], Method: methods[0]}, true, nil
}

// authorize checks that p allows id to call method with req.
func authorize(p *Policy, id Identity, method string, req any) error {
	acc, ok := accessOf(method)
	if !ok {
		return notAuthorized(fmt.Sprintf("no policy covers %s, so it is refused to every caller", method))
	}
	switch {
	case acc.group:
		g := req.(interface{ GetGroupId() string }).GetGroupId()
		if !p.AllowsGroup(id.Name, acc.right, g) {
			return notAuthorized(fmt.Sprintf("%q may not %s group %q: an operator can grant it with a policy line such as %q",
				id.Name, acc.right, g, fmt.Sprintf("%s %s group:%s", id.Name, acc.right, g)))
		}
	case acc.topic != nil:
		t := acc.topic(req)
		if !p.AllowsTopic(id.Name, acc.right, t) {
			return notAuthorized(fmt.Sprintf("%q may not %s topic %q: an operator can grant it with a policy line such as %q",
				id.Name, acc.right, t, fmt.Sprintf("%s %s topic:%s", id.Name, acc.right, t)))
		}
	default:
		if !p.Grants(id.Name, acc.right) {
			return notAuthorized(fmt.Sprintf("%q has no %s right on any group, which %s needs: an operator can grant it with a policy line such as %q",
				id.Name, acc.right, method, fmt.Sprintf("%s %s group:*", id.Name, acc.right)))
		}
	}
	return nil
}

func unauthenticated(msg string) error {
	return rpcerr.ToStatus(&regroup.Error{Code: regroup.CodeUnauthenticated, Message: msg})
}

func notAuthorized(msg string) error {
	return rpcerr.ToStatus(&regroup.Error{Code: regroup.CodeNotAuthorized, Message: msg})
}

// loopback reports whether a connection's local address is a loopback one:
// the client is on this host.
func loopback(addr net.Addr) bool {
	if t, ok := addr.(*net.TCPAddr); ok {
		return t.IP.IsLoopback()
	}
	return false
}
