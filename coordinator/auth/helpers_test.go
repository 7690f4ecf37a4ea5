package auth_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/auth"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store/memstore"
	"github.com/regroup-dev/regroup/internal/bearer"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/testcerts"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func quiet() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard})
}

// seen records the identity each call's handler context carries.
type seen struct {
	mu  sync.Mutex
	ids []auth.Identity
}

func (s *seen) last() auth.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) == 0 {
		return auth.Identity{}
	}
	return s.ids[len(s.ids)-1]
}

// started is a coordinator secured by an auth.Auth on a loopback port.
type started struct {
	addr string
	srv  *coordinator.Server
	seen *seen
}

// startSecured starts a single coordinator (memory store) whose gRPC server
// uses a's options for l; the calls' identities, as the handlers see them,
// are recorded.
func startSecured(t testing.TB, a *auth.Auth, l auth.Listener) *started {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := group.DefaultConfig()
	cfg.MinSessionTimeout = 500 * time.Millisecond
	cfg.InitialRebalanceDelay = 0
	srv, err := coordinator.New(context.Background(), coordinator.Config{Group: cfg, Logger: quiet()}, memstore.New())
	if err != nil {
		t.Fatal(err)
	}
	s := &started{addr: lis.Addr().String(), srv: srv, seen: &seen{}}
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		s.seen.mu.Lock()
		s.seen.ids = append(s.seen.ids, auth.FromContext(ctx))
		s.seen.mu.Unlock()
		return h(ctx, req)
	}
	gs := grpc.NewServer(append(a.ServerOptions(l), grpc.ChainUnaryInterceptor(record))...)
	srv.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(func() {
		srv.Close()
		gs.Stop()
	})
	return s
}

func newAuth(t testing.TB, cfg auth.Config) *auth.Auth {
	t.Helper()
	cfg.Logger = quiet()
	a, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writeFile writes content to name in dir through a rename, as an operator's
// tool would, and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	return path
}

func tokenLine(name, token string) string {
	h := sha256.Sum256([]byte(token))
	return name + " " + hex.EncodeToString(h[:]) + "\n"
}

// clientTLS is a client's TLS configuration trusting ca, presenting pair
// if it is set.
func clientTLS(t testing.TB, ca *testcerts.CA, pair *testcerts.Pair) *tls.Config {
	t.Helper()
	var cert, key string
	if pair != nil {
		cert, key = pair.CertFile, pair.KeyFile
	}
	cfg, err := auth.ClientTLS(ca.CertFile, cert, key, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type clients struct {
	coord regroupv1.CoordinatorClient
	admin regroupv1.AdminClient
}

// connect dials addr with tlsCfg (nil: plaintext) and token ("" : none).
func connect(t testing.TB, addr string, tlsCfg *tls.Config, token string) clients {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if tlsCfg != nil {
		opts[0] = grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg))
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer.New(token, tlsCfg == nil)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return clients{coord: regroupv1.NewCoordinatorClient(conn), admin: regroupv1.NewAdminClient(conn)}
}

// callCtx bounds one call of a test.
func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// find calls FindCoordinator on group: the cheapest call that needs the
// consume right on a group.
func find(t testing.TB, c clients, group string) error {
	_, err := c.coord.FindCoordinator(callCtx(t), &regroupv1.FindCoordinatorRequest{GroupId: group})
	return rpcerr.FromStatus(err)
}

// wantCode fails t unless err carries code.
func wantCode(t testing.TB, what string, err error, code regroup.Code) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("%s: %v, want success", what, err)
		}
		return
	}
	if got := regroup.CodeOf(rpcerr.FromStatus(err)); got != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}
