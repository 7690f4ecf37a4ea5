package rpcerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/internal/rpcerr"
)

func TestRoundTrip(t *testing.T) {
	in := regroup.Errorf(regroup.CodeNotCoordinator, "this node is a follower").With(regroup.MetaLeader, "10.0.0.7:9070")
	st := rpcerr.ToStatus(fmt.Errorf("wrapped: %w", in))
	if got := status.Code(st); got != codes.Unavailable {
		t.Fatalf("gRPC code %v, want Unavailable", got)
	}
	out := rpcerr.FromStatus(st)
	var e *regroup.Error
	if !errors.As(out, &e) {
		t.Fatalf("FromStatus returned %T %v, want *regroup.Error", out, out)
	}
	if !errors.Is(out, regroup.ErrNotCoordinator) || e.Message != "this node is a follower" || e.Metadata[regroup.MetaLeader] != "10.0.0.7:9070" {
		t.Fatalf("round trip lost information: %#v", e)
	}
}

func TestOtherErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{errors.New("boom"), codes.Internal},
		{status.Error(codes.PermissionDenied, "no"), codes.PermissionDenied},
	} {
		if got := status.Code(rpcerr.ToStatus(tc.err)); got != tc.code {
			t.Errorf("ToStatus(%v): %v, want %v", tc.err, got, tc.code)
		}
	}
	plain := status.Error(codes.Unavailable, "connection refused")
	if got := rpcerr.FromStatus(plain); got != plain {
		t.Errorf("FromStatus changed a status without ErrorInfo: %v", got)
	}
	if rpcerr.ToStatus(nil) != nil || rpcerr.FromStatus(nil) != nil {
		t.Error("nil must stay nil")
	}
}
