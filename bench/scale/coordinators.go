package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup/internal/embedetcd"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// coordinators are the coordinator processes of one run: one `regroup
// serve --store memory`, or with --coordinators K several `regroup serve
// --shards S` sharing an etcd that runs in this process (so that no
// coordinator's CPU share pays for it).
type coordinators struct {
	c     runConfig
	procs []*coordProc
	etcd  *embedetcd.Node
	// exited is closed when any coordinator exits unless it was killed.
	exited chan struct{}
	closed bool
}

// coordProc is one coordinator process.
type coordProc struct {
	addr, maddr string
	cmd         *exec.Cmd
	exited      chan struct{}
	killed      bool
	quota       *cpuQuota
	log         *os.File
}

// sharded reports whether the run has several coordinators over shards.
func (c runConfig) sharded() bool { return c.coordinators > 1 || c.shards > 1 }

// onEtcd reports whether the coordinators keep their groups in etcd: with
// shards, or with --shards 1 (one election, as a cluster made by an older
// version).
func (c runConfig) onEtcd() bool { return c.coordinators > 1 || c.shards > 0 }

// startCoordinators starts the run's coordinators and waits until they
// answer.
func startCoordinators(c runConfig, progress func(string, ...any)) (*coordinators, error) {
	cs := &coordinators{c: c, exited: make(chan struct{})}
	if c.onEtcd() {
		node, err := embedetcd.Start(embedetcd.Config{Dir: filepath.Join(c.logDir, "etcd")})
		if err != nil {
			return nil, fmt.Errorf("starting etcd: %w", err)
		}
		cs.etcd = node
		progress("etcd in this process at %s; %d coordinators over %d shards", node.Endpoint(), max(c.coordinators, 1), c.shards)
	}
	for range max(c.coordinators, 1) {
		if err := cs.add(progress); err != nil {
			cs.stop()
			return nil, err
		}
	}
	return cs, nil
}

// add starts one more coordinator.
func (cs *coordinators) add(progress func(string, ...any)) error {
	c := cs.c
	port, err := freePort()
	if err != nil {
		return err
	}
	mport, err := freePort()
	if err != nil {
		return err
	}
	i := len(cs.procs)
	p := &coordProc{addr: fmt.Sprintf("127.0.0.1:%d", port), maddr: fmt.Sprintf("127.0.0.1:%d", mport), exited: make(chan struct{})}
	args := []string{"serve", "--listen", p.addr, "--metrics-addr", p.maddr, "--initial-rebalance-delay", c.delay.String(), "--log-level", "warn"}
	if cs.etcd != nil {
		args = append(args, "--etcd-endpoints", cs.etcd.Endpoint(), "--shards", fmt.Sprint(max(c.shards, 1)))
	} else {
		args = append(args, "--store", "memory")
	}
	args = append(args, c.serveArgs...)
	name := "coordinator.log"
	if c.sharded() {
		name = fmt.Sprintf("coordinator-%d.log", i)
	}
	if p.log, err = os.Create(filepath.Join(c.logDir, name)); err != nil {
		return err
	}
	p.cmd = pinned(c.coordinatorCPUs, 0, c.regroup, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting a coordinator %s: %w", c.regroup, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
		if !p.killed && !cs.closed {
			select {
			case <-cs.exited:
			default:
				close(cs.exited)
			}
		}
	}()
	cs.procs = append(cs.procs, p)
	if c.coordinatorQuota > 0 {
		if p.quota, err = limitCPU(p.cmd.Process.Pid, c.coordinatorQuota); err != nil {
			return err
		}
		progress("coordinator %d may use %.2f CPUs (cgroup %s)", i, c.coordinatorQuota, p.quota.dir)
	}
	return nil
}

// live returns the coordinators not killed.
func (cs *coordinators) live() []*coordProc {
	var out []*coordProc
	for _, p := range cs.procs {
		if !p.killed {
			out = append(out, p)
		}
	}
	return out
}

// addrs returns the live coordinators' addresses.
func (cs *coordinators) addrs() []string {
	var out []string
	for _, p := range cs.live() {
		out = append(out, p.addr)
	}
	return out
}

// addr returns an address that answers for the whole cluster (Admin calls
// are forwarded to each shard's leader).
func (cs *coordinators) addr() string { return cs.live()[0].addr }

// cpu returns the CPU time every coordinator used so far, killed ones
// included up to their death.
func (cs *coordinators) cpu() time.Duration {
	var d time.Duration
	for _, p := range cs.procs {
		if t, err := cpuTime(p.cmd.Process.Pid); err == nil {
			d += t
		}
	}
	return d
}

// cpus returns each live coordinator's CPU time so far.
func (cs *coordinators) cpus() []time.Duration {
	var out []time.Duration
	for _, p := range cs.live() {
		t, _ := cpuTime(p.cmd.Process.Pid)
		out = append(out, t)
	}
	return out
}

// rss returns the live coordinators' resident memory, summed.
func (cs *coordinators) rss() (int64, error) {
	var sum int64
	for _, p := range cs.live() {
		r, err := rss(p.cmd.Process.Pid)
		if err != nil {
			return 0, err
		}
		sum += r
	}
	return sum, nil
}

// counts returns the live coordinators' answers so far, summed, and each
// one's.
func (cs *coordinators) counts(ctx context.Context) (map[string]float64, []map[string]float64, error) {
	sum := map[string]float64{}
	var each []map[string]float64
	for _, p := range cs.live() {
		counts, err := requestCounts(ctx, p.maddr)
		if err != nil {
			return nil, nil, err
		}
		for k, v := range counts {
			sum[k] += v
		}
		each = append(each, counts)
	}
	return sum, each, nil
}

// throttled returns how long the quotas held the coordinators back.
func (cs *coordinators) throttled() float64 {
	var s float64
	for _, p := range cs.procs {
		if p.quota != nil {
			t, _ := p.quota.throttled()
			s += t
		}
	}
	return s
}

// kill SIGKILLs the coordinator at index i of the live ones and waits for
// it to exit.
func (cs *coordinators) kill(i int) {
	p := cs.live()[i]
	p.killed = true
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop stops every coordinator (SIGTERM, then SIGKILL after a grace), then
// etcd.
func (cs *coordinators) stop() {
	cs.closed = true
	for _, p := range cs.procs {
		stopProcess(p.cmd, p.exited, 10*time.Second)
		if p.quota != nil {
			p.quota.remove()
		}
		p.log.Close()
	}
	if cs.etcd != nil {
		cs.etcd.Close()
	}
}

// placed waits until every live coordinator leads its share of the shards
// (shards/k, or one more) as the first one sees it, and returns how long
// that took from since.
func (cs *coordinators) placed(ctx context.Context, since time.Time, limit time.Duration) (time.Duration, error) {
	live := cs.live()
	err := waitFor(ctx, limit, fmt.Sprintf("%d coordinators to lead their share of %d shards", len(live), cs.c.shards), func() bool {
		d, err := describeCluster(ctx, live[0].addr)
		if err != nil || len(d.GetShards()) != cs.c.shards {
			return false
		}
		led := map[string]int{}
		for _, s := range d.GetShards() {
			led[s.GetLeaderAddress()]++
		}
		k := len(live)
		for _, p := range live {
			if n := led[p.addr]; n < cs.c.shards/k || n > (cs.c.shards+k-1)/k {
				return false
			}
		}
		return true
	})
	return time.Since(since), err
}

// describeCluster asks the coordinator at addr.
func describeCluster(ctx context.Context, addr string) (*regroupv1.DescribeClusterResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return regroupv1.NewAdminClient(conn).DescribeCluster(ctx, &regroupv1.DescribeClusterRequest{})
}

// logs names the coordinators' log files, for error messages.
func (cs *coordinators) logs() string {
	var names []string
	for _, p := range cs.procs {
		names = append(names, p.log.Name())
	}
	return strings.Join(names, ", ")
}

// errCoordinatorExited says a coordinator exited on its own.
var errCoordinatorExited = errors.New("a coordinator exited on its own")
