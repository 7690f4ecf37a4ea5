package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup/internal/cutproxy"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// binaries builds the programs the test runs, once per test binary.
var binaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "regroup-chaos-bin-")
	if err != nil {
		return "", err
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/regroup", "./test/chaos/cmd/chaosmember", "./test/chaos/cmd/etcdnode")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the chaos test's programs: %v\n%s", err, out)
	}
	return dir, nil
})

// freePorts returns n free loopback ports for child processes to bind
// later. They come from between 10000 and the start of the kernel's
// ephemeral range (so never a default port), because the kernel hands
// ports of that range to every listener on port 0 and every outgoing
// connection: a port it picked for this check was once taken by such a
// socket before etcd bound it ("bind: address already in use"). Only
// another test choosing the same random port could take one of these.
// Where the ephemeral range starts too low, the kernel picks.
func freePorts(t *testing.T, n int) []int {
	var ports []int
	var lis []net.Listener
	defer func() {
		for _, l := range lis {
			l.Close()
		}
	}()
	const low = 10000
	high := ephemeralStart()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 10000 {
			t.Fatalf("found %d of %d free ports", len(ports), n)
		}
		addr := "127.0.0.1:0"
		if high-low > 1000 {
			addr = fmt.Sprintf("127.0.0.1:%d", low+rand.IntN(high-low))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken: try another
		}
		lis = append(lis, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// ephemeralStart returns the first port of the kernel's ephemeral range
// (Linux's default, 32768, if it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo <= 0 {
		return 32768
	}
	return lo
}

// proc is one child process. An exit the test did not cause fails the test
// at once, with the end of the process's output.
type proc struct {
	t    *testing.T
	name string
	args []string
	out  string // output file

	mu       sync.Mutex
	cmd      *exec.Cmd
	expected bool // the test killed or stopped it
	done     chan struct{}
}

func (p *proc) start() {
	p.t.Helper()
	dir, err := binaries()
	if err != nil {
		p.t.Fatal(err)
	}
	f, err := os.OpenFile(p.out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, p.args[0]), p.args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.expected, p.done = cmd, false, done
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		expected := p.expected
		p.mu.Unlock()
		close(done)
		if !expected {
			p.t.Errorf("%s exited on its own (%v); its output ends with:\n%s", p.name, err, tail(p.out))
		}
	}()
}

// signal sends sig; the process may exit from it without failing the test.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expected = true
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// cont resumes a stopped process, which must not exit from then on.
func (p *proc) cont() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expected = false
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
}

// kill kills the process and waits for it.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	p.wait()
}

// stop asks the process to stop (SIGTERM) and waits for it.
func (p *proc) stop() {
	p.signal(syscall.SIGTERM)
	p.signal(syscall.SIGCONT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

func (p *proc) wait() {
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not exit within 30s of SIGKILL", p.name)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// keptDir returns a directory for the test's data and logs, removed when
// the test passes and kept, with a note, when it fails or CHAOS_KEEP is set.
func keptDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "regroup-"+t.Name()+"-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after the processes stopped.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CHAOS_KEEP") != "" {
			t.Logf("data and logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

// cluster is three etcd processes, three coordinators and the members.
// Each coordinator reaches etcd, and is reached by the members, through
// proxies of its own (net), so that a test can make its network silent;
// the test itself reaches the coordinators directly.
type cluster struct {
	t       *testing.T
	dir     string
	etcd    []*proc
	etcdEPs []string // etcd nodes' client addresses, by index
	coords  []*proc
	addrs   []string            // coordinators' addresses, by index
	net     [][]*cutproxy.Proxy // by coordinator: its front (the address it advertises), then one per etcd node
	members map[string]*proc
	admin   regroupv1.AdminClient
}

// newCluster starts the etcd cluster and three coordinators, each started
// with serve's extra arguments.
func newCluster(t *testing.T, serve ...string) *cluster {
	c := &cluster{t: t, dir: keptDir(t), members: map[string]*proc{}}
	ports := freePorts(t, 9)
	var initial, endpoints []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("e%d=http://127.0.0.1:%d", i, ports[3+i]))
		endpoints = append(endpoints, fmt.Sprintf("127.0.0.1:%d", ports[i]))
	}
	c.etcdEPs = endpoints
	for i := range 3 {
		p := &proc{t: t, name: fmt.Sprintf("etcd e%d", i), out: filepath.Join(c.dir, fmt.Sprintf("etcd%d.log", i)), args: []string{"etcdnode",
			"-name", fmt.Sprintf("e%d", i), "-dir", filepath.Join(c.dir, fmt.Sprintf("etcd%d", i)),
			"-client-port", fmt.Sprint(ports[i]), "-peer-port", fmt.Sprint(ports[3+i]), "-initial-cluster", strings.Join(initial, ","),
		}}
		p.start()
		c.etcd = append(c.etcd, p)
	}
	for i := range 3 {
		c.addCoordinator(ports[6+i], serve...)
	}
	t.Cleanup(func() {
		for _, p := range c.members {
			p.stop()
		}
		for _, p := range c.coords {
			p.stop()
		}
		for _, p := range c.etcd {
			p.stop()
		}
	})
	conn, err := grpc.NewClient("passthrough:///chaos", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var last error
			for _, a := range c.addrs {
				var d net.Dialer
				conn, err := d.DialContext(ctx, "tcp", a)
				if err == nil {
					return conn, nil
				}
				last = err
			}
			return nil, last
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c.admin = regroupv1.NewAdminClient(conn)
	return c
}

// addCoordinator starts another coordinator on loopback port port, with
// proxies of its own, started with serve's extra arguments.
func (c *cluster) addCoordinator(port int, serve ...string) {
	i := len(c.coords)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	front := cutproxy.Start(c.t, func() string { return addr })
	proxies := []*cutproxy.Proxy{front}
	var viaProxies []string
	for _, e := range c.etcdEPs {
		p := cutproxy.Start(c.t, func() string { return e })
		proxies = append(proxies, p)
		viaProxies = append(viaProxies, p.Addr())
	}
	p := &proc{t: c.t, name: fmt.Sprintf("coordinator c%d", i), out: filepath.Join(c.dir, fmt.Sprintf("coord%d.log", i)), args: append([]string{"regroup", "serve",
		"--listen", addr, "--advertise-addr", front.Addr(), "--etcd-endpoints", strings.Join(viaProxies, ","),
		"--metrics-addr", "", "--initial-rebalance-delay", "1s",
	}, serve...)}
	p.start()
	c.coords = append(c.coords, p)
	c.addrs = append(c.addrs, addr)
	c.net = append(c.net, proxies)
}

// etcdLeader returns the index of the etcd node that leads the etcd
// cluster, as the nodes themselves say, or -1.
func (c *cluster) etcdLeader() int {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.etcdEPs, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return -1
	}
	defer cli.Close()
	for i, ep := range c.etcdEPs {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := cli.Status(ctx, ep)
		cancel()
		if err == nil && st.Leader != 0 && st.Leader == st.Header.GetMemberId() {
			return i
		}
	}
	return -1
}

// leader returns the index of the leading coordinator, as the coordinators
// themselves say, or -1.
func (c *cluster) leader() int {
	for i, a := range c.addrs {
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		d, err := regroupv1.NewAdminClient(conn).DescribeCluster(ctx, &regroupv1.DescribeClusterRequest{})
		cancel()
		conn.Close()
		if err == nil && d.GetRole() == regroupv1.CoordinatorRole_COORDINATOR_ROLE_LEADER {
			return i
		}
	}
	return -1
}

// silence blackholes coordinator i's network (silent true) or restores it.
func (c *cluster) silence(i int, silent bool) {
	for _, p := range c.net[i] {
		if silent {
			p.Blackhole()
		} else {
			p.Restore()
		}
	}
}

// fronts returns the addresses members reach the coordinators at the
// given indexes at.
func (c *cluster) fronts(coords ...int) []string {
	var out []string
	for _, i := range coords {
		out = append(out, c.net[i][0].Addr())
	}
	return out
}

// startMember starts (or restarts) member name, static when instance, given
// the coordinator addresses endpoints; it learns the others.
func (c *cluster) startMember(name string, static bool, endpoints []string) {
	args := []string{"chaosmember", "-endpoints", strings.Join(endpoints, ","), "-log", filepath.Join(c.dir, name+".events"), "-session", session.String()}
	if static {
		args = append(args, "-instance", name)
	}
	p := &proc{t: c.t, name: "member " + name, out: filepath.Join(c.dir, name+".log"), args: args}
	p.start()
	c.members[name] = p
}

// killMember kills a member's process and marks its death in its log.
func (c *cluster) killMember(name string) {
	c.members[name].kill()
	path := filepath.Join(c.dir, name+".events")
	b, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	// The process may have died mid-write: drop its torn last line.
	if err := os.Truncate(path, int64(bytes.LastIndexByte(b, '\n')+1)); err != nil {
		c.t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%d exit\n", time.Now().UnixNano()); err != nil {
		c.t.Fatal(err)
	}
}

// events reads every member's log.
func (c *cluster) events() []Event {
	files, err := filepath.Glob(filepath.Join(c.dir, "*.events"))
	if err != nil {
		c.t.Fatal(err)
	}
	var all []Event
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			c.t.Fatal(err)
		}
		es, err := ReadLog(strings.TrimSuffix(filepath.Base(f), ".events"), bytes.NewReader(b))
		if err != nil {
			c.t.Fatal(err)
		}
		all = append(all, es...)
	}
	return all
}
