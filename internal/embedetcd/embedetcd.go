// Package embedetcd runs etcd servers inside this process: the single node
// that `regroup serve` starts by default, and the clusters that tests run
// on. Every server listens on 127.0.0.1 only. Clients reach it through
// go.etcd.io/etcd/client/v3 like any external cluster, so the code path is
// the production one.
package embedetcd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// DefaultMaxRequestBytes is the largest etcd request an embedded server
// accepts: 32 MiB, room for the record of a group of 2,000 members over
// 1,000,000 partitions. etcd's own default is 1.5 MiB.
const DefaultMaxRequestBytes = 32 << 20

// DefaultReadyTimeout bounds how long Start waits for a server to be ready.
const DefaultReadyTimeout = 60 * time.Second

// Config configures one embedded etcd server. The zero value of each field
// has the meaning given in its comment.
type Config struct {
	// Dir is the data directory, created if missing; required. A server
	// started again on the same directory finds its data.
	Dir string
	// Name is the member's name in its cluster; "" means "regroup".
	Name string
	// ClientPort and PeerPort are the loopback ports served for clients
	// and for the other members; 0 picks a free port.
	ClientPort, PeerPort int
	// MaxRequestBytes is the largest request accepted; 0 means
	// DefaultMaxRequestBytes.
	MaxRequestBytes uint
	// Logger receives etcd's own logs; nil discards them.
	Logger *zap.Logger
	// ReadyTimeout bounds the wait for the server to serve; 0 means
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration
}

// Node is a running embedded etcd server. Close stops it.
type Node struct {
	closeOnce sync.Once
	etcd      *embed.Etcd
	name      string
	endpoint  string
}

// Start starts a single-node cluster (or restarts it from cfg.Dir) and
// returns once it serves clients.
func Start(cfg Config) (*Node, error) {
	nodes, err := start([]Config{cfg})
	if err != nil {
		return nil, err
	}
	return nodes[0], nil
}

// StartCluster starts a cluster of one member per Config (each with its
// own Dir and Name) and returns once every member serves clients.
func StartCluster(cfgs []Config) ([]*Node, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("embedetcd: a cluster needs at least one member")
	}
	return start(cfgs)
}

// Endpoint is the URL clients use to reach the node, e.g.
// "http://127.0.0.1:7379".
func (n *Node) Endpoint() string { return n.endpoint }

// Name is the node's member name.
func (n *Node) Name() string { return n.name }

// Close stops the node; it may be called more than once. Its data stays
// in its directory.
func (n *Node) Close() {
	n.closeOnce.Do(n.etcd.Close)
}

// Endpoints returns the client endpoints of nodes.
func Endpoints(nodes []*Node) []string {
	eps := make([]string, len(nodes))
	for i, n := range nodes {
		eps[i] = n.Endpoint()
	}
	return eps
}

func start(cfgs []Config) ([]*Node, error) {
	ecfgs := make([]*embed.Config, len(cfgs))
	var initial []string
	var held []net.Listener // free ports stay taken until all are chosen
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for i, c := range cfgs {
		if c.Dir == "" {
			return nil, errors.New("embedetcd: a data directory is required")
		}
		if c.Name == "" {
			c.Name = "regroup"
		}
		if c.MaxRequestBytes == 0 {
			c.MaxRequestBytes = DefaultMaxRequestBytes
		}
		clientPort, err := portOrFree(c.ClientPort, &held)
		if err != nil {
			return nil, err
		}
		peerPort, err := portOrFree(c.PeerPort, &held)
		if err != nil {
			return nil, err
		}
		ec := embed.NewConfig()
		ec.Name = c.Name
		ec.Dir = c.Dir
		ec.MaxRequestBytes = c.MaxRequestBytes
		// Keep 5 minutes of history: group records are rewritten on every
		// rebalance and etcd keeps every old version until it compacts.
		ec.AutoCompactionMode = embed.CompactorModePeriodic
		ec.AutoCompactionRetention = "5m"
		cu := loopbackURL(clientPort)
		pu := loopbackURL(peerPort)
		ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
		ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
		lg := c.Logger
		if lg == nil {
			lg = zap.NewNop()
		}
		ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
		ecfgs[i] = ec
		initial = append(initial, c.Name+"="+pu.String())
	}
	for _, ec := range ecfgs {
		ec.InitialCluster = strings.Join(initial, ",")
		ec.InitialClusterToken = "regroup"
	}
	for _, l := range held {
		l.Close()
	}
	held = nil
	nodes := make([]*Node, 0, len(cfgs))
	fail := func(err error) ([]*Node, error) {
		for _, n := range nodes {
			n.Close()
		}
		return nil, err
	}
	for _, ec := range ecfgs {
		e, err := embed.StartEtcd(ec)
		if err != nil {
			return fail(fmt.Errorf("embedetcd: starting etcd member %q in %s (client %s, peer %s): %w",
				ec.Name, ec.Dir, ec.ListenClientUrls[0].Host, ec.ListenPeerUrls[0].Host, err))
		}
		nodes = append(nodes, &Node{etcd: e, name: ec.Name, endpoint: ec.AdvertiseClientUrls[0].String()})
	}
	for i, n := range nodes {
		timeout := cfgs[i].ReadyTimeout
		if timeout == 0 {
			timeout = DefaultReadyTimeout
		}
		select {
		case <-n.etcd.Server.ReadyNotify():
		case err := <-n.etcd.Err():
			return fail(fmt.Errorf("embedetcd: etcd member %q failed: %w", n.name, err))
		case <-time.After(timeout):
			return fail(fmt.Errorf("embedetcd: etcd member %q not ready after %v (are the other members running?)", n.name, timeout))
		}
	}
	return nodes, nil
}

func loopbackURL(port int) url.URL {
	return url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(port))}
}

// portOrFree returns port, or a free loopback port if port is 0, whose
// listener it adds to held: the caller closes it once every port is
// chosen, so that no two are the same.
func portOrFree(port int, held *[]net.Listener) (int, error) {
	if port != 0 {
		return port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("embedetcd: finding a free port: %w", err)
	}
	*held = append(*held, l)
	return l.Addr().(*net.TCPAddr).Port, nil
}
