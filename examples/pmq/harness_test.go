package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// harness runs the proof's processes and reads the database.
type harness struct {
	t     *testing.T
	dir   string
	pmq   string // the pmq binary
	rg    string // the regroup binary
	dsn   string
	db    *sql.DB
	procs []*proc
}

// proc is one process started by the harness; its output goes to a file.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

// build compiles pkg of the module in dir into the harness's directory.
func (h *harness) build(dir, pkg, out string) string {
	h.t.Helper()
	path := filepath.Join(h.dir, out)
	cmd := exec.Command("go", "build", "-o", path, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return path
}

// start starts bin with args as a process named name.
func (h *harness) start(name, bin string, args ...string) *proc {
	h.t.Helper()
	p := &proc{name: name, log: filepath.Join(h.dir, name+".log"), exited: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		h.t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	h.procs = append(h.procs, p)
	h.t.Logf("%s started (pid %d): %s %s", name, p.cmd.Process.Pid, filepath.Base(bin), strings.Join(args, " "))
	return p
}

// consumer starts a pmq consumer named name with the proof's settings.
func (h *harness) consumer(name string, endpoints []string, extra ...string) *proc {
	args := append([]string{"consume", "--dsn", h.dsn, "--endpoints", strings.Join(endpoints, ","),
		"--group", proofGroup, "--topic", proofTopic, "--name", name,
		"--session-timeout", sessionTimeout.String(), "--heartbeat", (sessionTimeout / 3).String(),
		"--batch", "10", "--work", "1ms", "--status-every", "1s"}, extra...)
	return h.start(name, h.pmq, args...)
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// stop sends SIGTERM and waits for the process to exit cleanly.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30 s of SIGTERM", p.name)
	}
	if p.err != nil {
		t.Fatalf("%s exited with %v after SIGTERM; see %s", p.name, p.err, p.log)
	}
}

// cleanup kills what is still running and, if the test failed, shows the
// end of every log and keeps the logs in a directory it names.
func (h *harness) cleanup() {
	if h.t.Failed() {
		keep, err := os.MkdirTemp("", "pmq-proof-logs-")
		if err == nil {
			for _, p := range h.procs {
				if b, err := os.ReadFile(p.log); err == nil {
					_ = os.WriteFile(filepath.Join(keep, filepath.Base(p.log)), b, 0o644)
				}
			}
			h.t.Logf("the processes' logs are kept in %s", keep)
		}
	}
	for _, p := range h.procs {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if h.t.Failed() {
			h.t.Logf("--- last lines of %s:\n%s", p.log, tail(p.log, 25))
		}
	}
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond until it holds, failing the test after limit.
func (h *harness) waitFor(what string, limit time.Duration, cond func() bool) {
	h.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			h.t.Fatalf("timed out after %s waiting until %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Logf("%s (after %s)", what, time.Since(start).Round(10*time.Millisecond))
}

// owners returns the stored owner (consumer name, without the pid) of
// every partition that has one.
func (h *harness) owners() map[int32]string {
	h.t.Helper()
	rows, err := h.db.Query(`SELECT part, owner FROM offsets WHERE grp = ? AND topic = ?`, proofGroup, proofTopic)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	m := map[int32]string{}
	for rows.Next() {
		var p int32
		var o string
		if err := rows.Scan(&p, &o); err != nil {
			h.t.Fatal(err)
		}
		m[p] = o
	}
	return m
}

// partitionsOf returns, sorted, the partitions whose stored owner is the
// process p.
func (h *harness) partitionsOf(p *proc) []int32 {
	var ps []int32
	for part, o := range h.owners() {
		if o == p.id() {
			ps = append(ps, part)
		}
	}
	slices.Sort(ps)
	return ps
}

// ownedBy counts the partitions whose stored owner is the process p.
func (h *harness) ownedBy(p *proc) int { return len(h.partitionsOf(p)) }

// count runs a COUNT query.
func (h *harness) count(q string, args ...any) int64 {
	h.t.Helper()
	var n int64
	if err := h.db.QueryRow(q, args...).Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// commits counts the accepted commits so far.
func (h *harness) commits() int64 {
	return h.count(`SELECT COUNT(*) FROM ledger WHERE grp = ? AND kind = 'commit'`, proofGroup)
}

// progressed waits until more than n more commits are accepted.
func (h *harness) progressed(what string, n int64) {
	h.t.Helper()
	base := h.commits()
	h.waitFor(what, 30*time.Second, func() bool { return h.commits() > base+n })
}

// drained reports whether every partition's offset has reached its last
// message.
func (h *harness) drained() bool {
	h.t.Helper()
	owners := h.owners()
	for p := int32(0); p < proofPartitions; p++ {
		if _, ok := owners[p]; !ok {
			return false
		}
		var last, offset sql.NullInt64
		if err := h.db.QueryRow(fmt.Sprintf(`SELECT MAX(id) FROM q_%s_%d`, proofTopic, p)).Scan(&last); err != nil {
			h.t.Fatal(err)
		}
		if err := h.db.QueryRow(`SELECT offset_id FROM offsets WHERE grp = ? AND topic = ? AND part = ?`,
			proofGroup, proofTopic, p).Scan(&offset); err != nil {
			h.t.Fatal(err)
		}
		if last.Int64 != offset.Int64 {
			return false
		}
	}
	return true
}

// leader returns the index in addrs of the coordinator that leads, or -1.
func leader(addrs []string) int {
	for i, a := range addrs {
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := regroupv1.NewAdminClient(conn).DescribeCluster(ctx, &regroupv1.DescribeClusterRequest{})
		cancel()
		conn.Close()
		if err == nil && r.GetRole() == regroupv1.CoordinatorRole_COORDINATOR_ROLE_LEADER {
			return i
		}
	}
	return -1
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// id is the process's consumer name in the tables.
func (p *proc) id() string { return fmt.Sprintf("%s/%d", p.name, p.cmd.Process.Pid) }
