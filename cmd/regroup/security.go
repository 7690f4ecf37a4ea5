package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/regroup-dev/regroup/coordinator/auth"
	"github.com/regroup-dev/regroup/internal/bearer"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// securityFlags are serve's flags for TLS, authentication, authorization
// and the separate Admin address. docs/security.md explains them.
type securityFlags struct {
	tlsCert, tlsKey   string
	tlsClientCA       string
	tlsPeerCA         string
	tokenFile         string
	policyFile        string
	adminListen       string
	insecurePlaintext bool
}

func (f *securityFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (with intermediates) to serve gRPC over TLS with; reloaded when the file changes")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert; reloaded when the file changes")
	fl.StringVar(&f.tlsClientCA, "tls-client-ca", "", "PEM CA certificates that sign client certificates: clients must present one (mTLS), or a token if --token-file is set; reloaded when the file changes")
	fl.StringVar(&f.tlsPeerCA, "tls-peer-ca", "", "PEM CA certificates that sign the other coordinators' --tls-cert, for forwarding Admin calls to the leader over TLS (default: --tls-client-ca); this coordinator presents its --tls-cert as its client certificate")
	fl.StringVar(&f.tokenFile, "token-file", "", "file of accepted bearer tokens, one \"<name> <sha256 hex of the token>\" per line; reloaded when it changes")
	fl.StringVar(&f.policyFile, "policy-file", "", "file of \"<identity pattern> <rights> group:<pattern> topic:<pattern>\" lines saying who may do what (required with --tls-client-ca or --token-file); reloaded when it changes")
	fl.StringVar(&f.adminListen, "admin-listen", "", "address to serve the Admin service on; when set, --listen serves members only (and Admin calls forwarded by other coordinators)")
	fl.BoolVar(&f.insecurePlaintext, "insecure-plaintext", false, "allow serving without TLS on a non-loopback address, where anyone on the network can read and forge calls")
}

// security is what serve's securityFlags set up.
type security struct {
	flags securityFlags
	auth  *auth.Auth
	// peerTLS secures calls to other coordinators; nil means plaintext.
	peerTLS *tls.Config
	log     hclog.Logger
}

// setup reads the files the flags name.
func (f securityFlags) setup(log hclog.Logger) (*security, error) {
	a, err := auth.New(auth.Config{
		CertFile: f.tlsCert, KeyFile: f.tlsKey, ClientCAFile: f.tlsClientCA,
		TokenFile: f.tokenFile, PolicyFile: f.policyFile, Logger: log.Named("auth"),
	})
	if err != nil {
		return nil, err
	}
	s := &security{flags: f, auth: a, log: log}
	peerCA := f.tlsPeerCA
	if peerCA == "" {
		peerCA = f.tlsClientCA
	}
	if a.TLS() {
		if s.peerTLS, err = a.PeerTLS(peerCA); err != nil {
			return nil, fmt.Errorf("--tls-peer-ca: %w", err)
		}
	} else if f.tlsPeerCA != "" {
		return nil, errors.New("--tls-peer-ca needs --tls-cert and --tls-key: coordinators talk TLS to each other only when they serve it")
	}
	log.Info("security", "mode", a.String())
	return s, nil
}

// checkListener refuses a plaintext listener on an address that is not
// loopback, unless --insecure-plaintext allows it (then it logs a warning).
func (s *security) checkListener(flag string, addr net.Addr) error {
	if err := plaintextRefusal(flag, addr, s.auth.TLS(), s.flags.insecurePlaintext); err != nil {
		return err
	}
	if !s.auth.TLS() && !isLoopback(addr) {
		s.log.Warn("SERVING PLAINTEXT ON A NETWORK ADDRESS (--insecure-plaintext): anyone who can reach it can read every call and act as any member or operator; serve TLS with --tls-cert and --tls-key", "flag", flag, "address", addr.String())
	}
	return nil
}

// plaintextRefusal is the rule: serving without TLS is allowed on a
// loopback address, and elsewhere only when insecure is set.
func plaintextRefusal(flag string, addr net.Addr, tls, insecure bool) error {
	if tls || insecure || isLoopback(addr) {
		return nil
	}
	return fmt.Errorf("%s %s is not a loopback address and there is no TLS: give --tls-cert and --tls-key (docs/security.md), or --insecure-plaintext to serve plaintext anyway, where anyone on the network can read and forge calls", flag, addr)
}

func isLoopback(addr net.Addr) bool {
	t, ok := addr.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// serverOptions returns the options of the gRPC server of --listen.
func (s *security) serverOptions() []grpc.ServerOption {
	return s.auth.ServerOptions(auth.Listener{CoordinatorOnly: s.flags.adminListen != ""})
}

// serveAdmin serves the Admin service, health and reflection on
// --admin-listen, with opts, and reports the server's end on errc. It
// returns the server, or nil when --admin-listen is not set.
func (s *security) serveAdmin(srv regroupv1.AdminServer, hs *health.Server, opts []grpc.ServerOption, errc chan<- error) (*grpc.Server, error) {
	if s.flags.adminListen == "" {
		return nil, nil
	}
	lis, err := net.Listen("tcp", s.flags.adminListen)
	if err != nil {
		return nil, fmt.Errorf("listening on --admin-listen %s: %w (choose another address)", s.flags.adminListen, err)
	}
	if err := s.checkListener("--admin-listen", lis.Addr()); err != nil {
		lis.Close()
		return nil, err
	}
	gs := grpc.NewServer(append(s.auth.ServerOptions(auth.Listener{}), opts...)...)
	regroupv1.RegisterAdminServer(gs, srv)
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	go func() { errc <- gs.Serve(lis) }()
	s.log.Info("serving Admin", "address", lis.Addr().String())
	return gs, nil
}

// etcdTLSFlags secure the connection to an external etcd cluster.
type etcdTLSFlags struct {
	cert, key, ca string
}

func (f *etcdTLSFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.ca, "etcd-ca", "", "PEM CA certificates that sign the external etcd's certificates: connect to --etcd-endpoints over TLS")
	fl.StringVar(&f.cert, "etcd-cert", "", "PEM client certificate for the external etcd (with --etcd-key), when etcd requires client certificates")
	fl.StringVar(&f.key, "etcd-key", "", "PEM private key of --etcd-cert")
}

// config returns the TLS configuration for etcd, or nil when no flag is
// set. external says whether --etcd-endpoints is set.
func (f etcdTLSFlags) config(external bool) (*tls.Config, error) {
	if f == (etcdTLSFlags{}) {
		return nil, nil
	}
	if !external {
		return nil, errors.New("--etcd-ca, --etcd-cert and --etcd-key apply to an external etcd: give --etcd-endpoints too (the embedded etcd listens on loopback only)")
	}
	cfg, err := auth.ClientTLS(f.ca, f.cert, f.key, "")
	if err != nil {
		return nil, fmt.Errorf("--etcd-ca, --etcd-cert, --etcd-key: %w", err)
	}
	return cfg, nil
}

// clientSecurity are the flags of the commands that call a coordinator:
// TLS, a client certificate and a token.
type clientSecurity struct {
	ca, cert, key, serverName string
	token                     string
}

func (s *clientSecurity) register(fl *pflag.FlagSet) {
	fl.StringVar(&s.ca, "tls-ca", "", "PEM CA certificates that sign the coordinator's certificate: connect over TLS (any --tls-* flag does; without --tls-ca the system's roots verify it)")
	fl.StringVar(&s.cert, "tls-cert", "", "PEM client certificate to present (mTLS), with --tls-key; its name is your identity in the coordinator's policy")
	fl.StringVar(&s.key, "tls-key", "", "PEM private key of --tls-cert")
	fl.StringVar(&s.serverName, "tls-server-name", "", "name to verify the coordinator's certificate against, instead of the --endpoint host")
	fl.StringVar(&s.token, "token", "", "bearer token to authenticate with (prefer the environment variable: a flag shows in the process list); sent over TLS, or over plaintext to a loopback --endpoint only")
}

// dialOptions returns the credentials to reach endpoint with.
func (s *clientSecurity) dialOptions(endpoint string) ([]grpc.DialOption, error) {
	creds := insecure.NewCredentials()
	useTLS := s.ca != "" || s.cert != "" || s.key != "" || s.serverName != ""
	if useTLS {
		cfg, err := auth.ClientTLS(s.ca, s.cert, s.key, s.serverName)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca, --tls-cert, --tls-key: %w", err)
		}
		creds = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if s.token != "" {
		loopback := loopbackEndpoint(endpoint)
		if !useTLS && !loopback {
			return nil, fmt.Errorf("--token over plaintext to %s, which is not a loopback address, would show the token to anyone on the path: connect with TLS (--tls-ca)", endpoint)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(bearer.New(s.token, !useTLS)))
	}
	return opts, nil
}

// loopbackEndpoint reports whether host:port names this host's loopback.
func loopbackEndpoint(endpoint string) bool {
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
