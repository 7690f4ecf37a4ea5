package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
)

// certificates serves the coordinator's certificate and, with mTLS, the
// client CA pool, both read again when their files change: every new
// handshake sees the files' current content, with no restart.
type certificates struct {
	cert     *reloader[*tls.Certificate]
	clientCA *reloader[*x509.CertPool] // nil: no client certificates asked for
	// clientAuth is what is asked of clients when clientCA is set:
	// RequireAndVerifyClientCert, or VerifyClientCertIfGiven when tokens
	// are accepted too.
	clientAuth tls.ClientAuthType
}

// newCertificates reads the certificate, key and client CA files. Files are
// checked for changes at every handshake (a stat each; handshakes are
// rare, as gRPC keeps its connections).
func newCertificates(certFile, keyFile, clientCAFile string, clientAuth tls.ClientAuthType, log hclog.Logger) (*certificates, error) {
	cert, err := newReloader("TLS certificate", []string{certFile, keyFile}, 0, log, func() (*tls.Certificate, error) {
		return loadKeyPair(certFile, keyFile)
	})
	if err != nil {
		return nil, err
	}
	c := &certificates{cert: cert, clientAuth: clientAuth}
	if clientCAFile != "" {
		c.clientCA, err = newReloader("TLS client CA", []string{clientCAFile}, 0, log, func() (*x509.CertPool, error) {
			return LoadCertPool(clientCAFile)
		})
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// serverConfig returns the server's TLS configuration: each handshake
// takes the current certificate and client CA.
func (c *certificates) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cfg := &tls.Config{
				MinVersion:   tls.VersionTLS12,
				NextProtos:   []string{"h2"},
				Certificates: []tls.Certificate{*c.cert.get()},
			}
			if c.clientCA != nil {
				cfg.ClientCAs = c.clientCA.get()
				cfg.ClientAuth = c.clientAuth
			}
			return cfg, nil
		},
	}
}

// loadKeyPair reads a certificate (with its chain) and its key.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("regroup: TLS certificate %s and key %s: %w (want PEM files; the key must match the certificate)", certFile, keyFile, err)
	}
	return &cert, nil
}

// LoadCertPool reads a PEM file of CA certificates into a pool, with an
// error that names the file when it holds none.
func LoadCertPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("regroup: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("regroup: CA file %s holds no PEM certificate (want one or more \"-----BEGIN CERTIFICATE-----\" blocks)", file)
	}
	return pool, nil
}

// ClientTLS returns the TLS configuration of a client: it trusts the
// server certificates signed by the CAs in caFile ("" means the system's
// roots), checks serverName instead of the dialed host when it is set,
// and presents the certificate in certFile and keyFile when they are set
// (both or neither).
func ClientTLS(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pool, err := LoadCertPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("regroup: a client certificate needs both its certificate and its key file")
	}
	if certFile != "" {
		cert, err := loadKeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg, nil
}
