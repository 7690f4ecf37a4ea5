package chaos

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestSingleNodeKillRestart kills (SIGKILL) a lone `regroup serve` on its
// embedded etcd and starts it again on the same data directory: it must
// not wait for its own past life's election lease, and the members must
// keep their leases and partitions through the restart.
func TestSingleNodeKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	dir := keptDir(t)
	ports := freePorts(t, 3)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	coord := &proc{t: t, name: "coordinator", out: filepath.Join(dir, "coord.log"), args: []string{"regroup", "serve",
		"--listen", addr, "--data-dir", filepath.Join(dir, "data"), "--metrics-addr", "", "--initial-rebalance-delay", "1s",
		"--etcd-client-port", fmt.Sprint(ports[1]), "--etcd-peer-port", fmt.Sprint(ports[2]),
	}}
	coord.start()
	c := &cluster{t: t, dir: dir, addrs: []string{addr}, members: map[string]*proc{}}
	t.Cleanup(func() {
		for _, p := range c.members {
			p.stop()
		}
		coord.stop()
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", a)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c.admin = regroupv1.NewAdminClient(conn)
	leading := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		d, err := c.admin.DescribeCluster(ctx, &regroupv1.DescribeClusterRequest{})
		if err != nil || d.GetRole() != regroupv1.CoordinatorRole_COORDINATOR_ROLE_LEADER {
			return fmt.Errorf("not leading (%v)", err)
		}
		return nil
	}
	waitfor.Until(t, "the coordinator leads", leading)
	waitfor.Until(t, "the topic is created", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: partitions}})
		return err
	})
	c.startMember("m1", true, c.addrs)
	c.startMember("m2", false, c.addrs)
	c.settle(t, 2)

	from := time.Now()
	coord.kill()
	coord.start()
	waitfor.Until(t, "the restarted coordinator leads", leading)
	took := time.Since(from)
	c.settle(t, 2)
	time.Sleep(2 * time.Second)
	r := Check(c.events())
	for _, v := range r.Violations {
		t.Error(v)
	}
	w := r.Window(from, time.Now())
	t.Logf("kill -9 and restart: leading again after %v; lost %d, moved %d, generation changes %d, longest without work %v",
		took.Round(time.Millisecond), w.Lost, w.Moved, w.Generations, w.LongestIdle.Round(time.Millisecond))
	if took > leaseTTL {
		t.Errorf("the restarted coordinator led only after %v: it waited for its past life's lease (%v)", took, leaseTTL)
	}
	c.expectFree(t, "kill -9 and restart", w)
	if !strings.Contains(tail(coord.out), "of this coordinator's previous life instead of waiting") {
		t.Error("the restarted coordinator did not say it revoked its previous life's election key")
	}
}
