// Command consumer joins a Regroup group with the member library and prints
// its assignment whenever it changes. Run a coordinator first
// (go run ./cmd/regroup serve), create a topic, then start a few of these:
//
//	go run ./cmd/regroup topics put orders --partitions 12   # or the Admin API
//	go run ./examples/consumer -group billing -topics orders
//	go run ./examples/consumer -group billing -topics orders -instance c2
//
// Stop one with Ctrl-C and watch the others take its partitions. Against a
// coordinator with TLS (docs/security.md), add -tls-ca, and -tls-cert and
// -tls-key for mTLS, or a token in $REGROUP_TOKEN.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/member"
)

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:7070", "coordinator addresses, comma-separated")
	groupID := flag.String("group", "demo", "group to join")
	topics := flag.String("topics", "orders", "topics to consume, comma-separated")
	instance := flag.String("instance", "", "static instance id (restarts keep their partitions)")
	assignors := flag.String("assignors", "cooperative-sticky", "assignors in preference order: "+strings.Join(assignor.Names(), ", "))
	session := flag.Duration("session-timeout", 0, "session timeout (0: the member library's default, which rides through a coordinator failover)")
	caFile := flag.String("tls-ca", "", "PEM CA certificates of the coordinator's certificate: connect over TLS")
	certFile := flag.String("tls-cert", "", "PEM client certificate (mTLS), with -tls-key; its name is the member's identity")
	keyFile := flag.String("tls-key", "", "PEM private key of -tls-cert")
	flag.Parse()

	var as []assignor.Assignor
	for _, name := range strings.Split(*assignors, ",") {
		a, err := assignor.Lookup(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "consumer:", err)
			os.Exit(2)
		}
		as = append(as, a)
	}
	show := func(what string) func(context.Context, []member.Partition) {
		return func(_ context.Context, ps []member.Partition) {
			fmt.Printf("%s %-8s %s\n", time.Now().Format("15:04:05.000"), what, format(ps))
		}
	}
	tlsConfig, err := loadTLS(*caFile, *certFile, *keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(2)
	}
	m, err := member.New(member.Config{
		TLS:            tlsConfig,
		Token:          os.Getenv("REGROUP_TOKEN"),
		Endpoints:      strings.Split(*endpoints, ","),
		Group:          *groupID,
		Topics:         strings.Split(*topics, ","),
		InstanceID:     *instance,
		Assignors:      as,
		SessionTimeout: *session,
		Listener:       member.ListenerFuncs{Assigned: show("assigned"), Revoked: show("revoked"), Lost: show("lost")},
		Logger:         hclog.New(&hclog.LoggerOptions{Name: "consumer", Level: hclog.Warn}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		for c := range m.Changes() {
			fmt.Printf("%s %-8s generation %d, %s, owns %s\n", c.Time.Format("15:04:05.000"), "state", c.Generation, c.State, format(c.Assignment))
		}
	}()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

// loadTLS returns the TLS settings the flags ask for, or nil for
// plaintext.
func loadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("-tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-ca %s: no PEM certificate in it", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("-tls-cert and -tls-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert, -tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// format prints partitions compactly, as ranges: orders:0-3,7.
func format(ps []member.Partition) string {
	if len(ps) == 0 {
		return "nothing"
	}
	var b strings.Builder
	topic := ""
	for i := 0; i < len(ps); i++ {
		p := ps[i]
		if p.Topic != topic {
			if topic != "" {
				b.WriteString(" ")
			}
			topic = p.Topic
			b.WriteString(topic + ":")
		} else {
			b.WriteString(",")
		}
		j := i
		for j+1 < len(ps) && ps[j+1].Topic == p.Topic && ps[j+1].Partition == ps[j].Partition+1 {
			j++
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", p.Partition, ps[j].Partition)
		} else {
			fmt.Fprintf(&b, "%d", p.Partition)
		}
		i = j
	}
	return b.String()
}
