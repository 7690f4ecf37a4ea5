// Package bearer sends a bearer token with every gRPC call, as the
// coordinator's token authentication expects: metadata
// "authorization: Bearer <token>".
package bearer

import (
	"context"

	"google.golang.org/grpc/credentials"
)

// Token is the per-call credentials of a token. It is safe for concurrent
// use.
type Token struct {
	token     string
	plaintext bool
}

// New returns the credentials of token. Unless plaintext is true, gRPC
// refuses to send them over a connection without TLS; set it only for a
// coordinator on this host (loopback), the one place the coordinator
// accepts tokens over plaintext.
func New(token string, plaintext bool) *Token {
	return &Token{token: token, plaintext: plaintext}
}

var _ credentials.PerRPCCredentials = (*Token)(nil)

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t *Token) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + t.token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (t *Token) RequireTransportSecurity() bool { return !t.plaintext }
