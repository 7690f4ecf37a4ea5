package auth

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// policyCheckInterval is how often the token and policy files are checked
// for changes: a change applies within this long.
const policyCheckInterval = time.Second

// Config says how a coordinator secures its gRPC listeners. The zero value
// is a plaintext listener where every call is allowed and anonymous: the
// loopback development default.
type Config struct {
	// CertFile and KeyFile are the server's certificate (with any
	// intermediates) and key, in PEM. Both or neither; without them the
	// listener is plaintext. They are read again when they change.
	CertFile, KeyFile string
	// ClientCAFile holds the CAs that sign client certificates, in PEM.
	// When set, clients must present a certificate it verifies (mTLS), or,
	// if TokenFile is set too, a token instead. Needs CertFile.
	ClientCAFile string
	// TokenFile lists the accepted bearer tokens by hash (see tokens).
	TokenFile string
	// PolicyFile says which identities may do what (see Policy). It is
	// required when ClientCAFile or TokenFile is set (authentication is
	// on, and nothing is allowed that the policy does not allow), and
	// refused otherwise.
	PolicyFile string
	// Logger receives reloads and refused files; nil means hclog's
	// default logger.
	Logger hclog.Logger
}

// Auth secures a coordinator's gRPC listeners: TLS, authentication and
// authorization. Its methods are safe for concurrent use.
type Auth struct {
	cfg    Config
	log    hclog.Logger
	certs  *certificates      // nil: plaintext
	tokens *reloader[tokens]  // nil: no tokens accepted
	policy *reloader[*Policy] // nil: authentication is off
}

// New checks cfg and reads its files. An error names the file or flag at
// fault and says what to do.
func New(cfg Config) (*Auth, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.Default()
	}
	a := &Auth{cfg: cfg, log: cfg.Logger}
	authn := cfg.ClientCAFile != "" || cfg.TokenFile != ""
	switch {
	case (cfg.CertFile == "") != (cfg.KeyFile == ""):
		return nil, errors.New("regroup: TLS needs both a certificate and a key file (--tls-cert and --tls-key)")
	case cfg.ClientCAFile != "" && cfg.CertFile == "":
		return nil, errors.New("regroup: a client CA (--tls-client-ca) needs TLS: give --tls-cert and --tls-key too")
	case authn && cfg.PolicyFile == "":
		return nil, errors.New("regroup: authentication is on (--tls-client-ca or --token-file) but there is no policy, so every call would be refused: give --policy-file")
	case !authn && cfg.PolicyFile != "":
		return nil, errors.New("regroup: a policy (--policy-file) needs authenticated callers: give --tls-client-ca, --token-file or both")
	}
	if cfg.CertFile != "" {
		clientAuth := tls.RequireAndVerifyClientCert
		if cfg.TokenFile != "" {
			clientAuth = tls.VerifyClientCertIfGiven
		}
		var err error
		if a.certs, err = newCertificates(cfg.CertFile, cfg.KeyFile, cfg.ClientCAFile, clientAuth, a.log); err != nil {
			return nil, err
		}
	}
	if cfg.TokenFile != "" {
		var err error
		if a.tokens, err = newReloader("token file", []string{cfg.TokenFile}, policyCheckInterval, a.log, func() (tokens, error) {
			return loadTokens(cfg.TokenFile)
		}); err != nil {
			return nil, err
		}
	}
	if cfg.PolicyFile != "" {
		var err error
		if a.policy, err = newReloader("policy file", []string{cfg.PolicyFile}, policyCheckInterval, a.log, func() (*Policy, error) {
			return LoadPolicy(cfg.PolicyFile)
		}); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// TLS reports whether the listeners serve TLS.
func (a *Auth) TLS() bool { return a.certs != nil }

// Enabled reports whether callers are authenticated and authorized. When
// not, every call is allowed and its identity is the anonymous one.
func (a *Auth) Enabled() bool { return a.policy != nil }

// Listener describes one gRPC listener of a coordinator.
type Listener struct {
	// CoordinatorOnly: the listener serves the Coordinator service to
	// clients, and the Admin service only to calls forwarded by another
	// coordinator (Admin has an address of its own).
	CoordinatorOnly bool
}

// ServerOptions returns the options of a grpc.Server for a listener: its
// transport credentials and the interceptors that authenticate and
// authorize each call. They chain with other interceptors.
func (a *Auth) ServerOptions(l Listener) []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.unary(l)),
		grpc.ChainStreamInterceptor(a.stream(l)),
	}
	if a.certs != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(a.certs.serverConfig())))
	}
	return opts
}

// PeerTLS returns the TLS configuration for calls to other coordinators
// (forwarded Admin calls): it trusts the server certificates that the CAs
// in caFile sign ("" means the system's roots), and presents this coordinator's own certificate, as
// reloaded, as its client certificate (so it needs the clientAuth extended
// key usage too). It needs CertFile.
func (a *Auth) PeerTLS(caFile string) (*tls.Config, error) {
	if a.certs == nil {
		return nil, errors.New("regroup: TLS to other coordinators needs this coordinator's own certificate: give --tls-cert and --tls-key")
	}
	cfg, err := ClientTLS(caFile, "", "", "")
	if err != nil {
		return nil, err
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return a.certs.cert.get(), nil
	}
	return cfg, nil
}

// String describes the mode for the logs: "tls=mtls+token policy=FILE".
func (a *Auth) String() string {
	transport := "plaintext"
	if a.certs != nil {
		transport = "tls"
		if a.certs.clientCA != nil {
			transport = "mtls"
		}
	}
	if !a.Enabled() {
		return fmt.Sprintf("transport=%s authentication=off", transport)
	}
	return fmt.Sprintf("transport=%s tokens=%t policy=%s", transport, a.tokens != nil, a.cfg.PolicyFile)
}
