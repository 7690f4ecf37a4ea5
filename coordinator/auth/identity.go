// Package auth authenticates the clients of a coordinator and authorizes
// their calls. This file holds the identity a call carries, which the
// coordinator binds members to: a member's later calls must come from the
// identity that joined it.
package auth

import "context"

// Identity is who made a call. The zero Identity is an anonymous caller:
// authentication is off, and every anonymous caller is the same one.
type Identity struct {
	// Name is the authenticated name: the client certificate's subject
	// (or its first DNS or URI SAN), or the token's name.
	Name string
	// Method is how it was authenticated: "mtls", "token", or "" when
	// authentication is off.
	Method string
}

type identityKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity ctx carries, or the anonymous one.
func FromContext(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey{}).(Identity)
	return id
}

type policyKey struct{}

// withPolicy returns ctx carrying the policy its call was authorized by.
func withPolicy(ctx context.Context, p *Policy) context.Context {
	return context.WithValue(ctx, policyKey{}, p)
}

// MayDescribe reports whether the caller of ctx may describe group: its
// policy gives it the describe right on the group, or the call was
// authorized by no policy (authentication is off). ListGroups lists only
// such groups, and what counts groups for a caller counts only those.
func MayDescribe(ctx context.Context, group string) bool {
	p, _ := ctx.Value(policyKey{}).(*Policy)
	return p == nil || p.AllowsGroup(FromContext(ctx).Name, Describe, group)
}
