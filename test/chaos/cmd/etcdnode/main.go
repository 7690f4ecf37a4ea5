// Command etcdnode runs one member of an etcd cluster on loopback, for the
// chaos test: the test starts three as separate processes so that it can
// kill, stop and restart each one.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func main() {
	name := flag.String("name", "", "member name")
	dir := flag.String("dir", "", "data directory")
	client := flag.Int("client-port", 0, "loopback client port")
	peer := flag.Int("peer-port", 0, "loopback peer port")
	cluster := flag.String("initial-cluster", "", "name=http://127.0.0.1:PORT,... for every member")
	flag.Parse()
	if *name == "" || *dir == "" || *client == 0 || *peer == 0 || *cluster == "" {
		fmt.Fprintln(os.Stderr, "etcdnode: -name, -dir, -client-port, -peer-port and -initial-cluster are required")
		os.Exit(2)
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = *name, *dir
	cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", *client)}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", *peer)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster, cfg.InitialClusterToken = *cluster, "chaos"
	cfg.MaxRequestBytes = 32 << 20
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdnode:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-e.Server.ReadyNotify():
		fmt.Println("ready")
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcdnode:", err)
		os.Exit(1)
	}
	select {
	case <-sig:
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcdnode:", err)
		os.Exit(1)
	}
	e.Close()
}
