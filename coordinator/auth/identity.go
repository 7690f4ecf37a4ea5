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
