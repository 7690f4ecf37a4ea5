package embedetcd_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/regroup-dev/regroup/internal/embedetcd"
)

func TestClusterSurvivesOneMember(t *testing.T) {
	dir := t.TempDir()
	var cfgs []embedetcd.Config
	for i := range 3 {
		cfgs = append(cfgs, embedetcd.Config{Dir: filepath.Join(dir, fmt.Sprint(i)), Name: fmt.Sprint("n", i)})
	}
	start := time.Now()
	nodes, err := embedetcd.StartCluster(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started in %v", time.Since(start))
	defer func() {
		for _, n := range nodes[1:] {
			n.Close()
		}
	}()
	cli, err := clientv3.New(clientv3.Config{Endpoints: embedetcd.Endpoints(nodes), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	nodes[0].Close()
	if _, err := cli.Put(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	t.Logf("total %v", time.Since(start))
}
