package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/dbtest"
	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
	"github.com/regroup-dev/regroup/internal/embedetcd"
)

const (
	proofGroup      = "proof"
	proofTopic      = "orders"
	proofPartitions = 8
	sessionTimeout  = 3 * time.Second
)

// TestProof runs the queue with real processes (MariaDB, two `regroup serve`
// on an etcd, two producers, consumers) through every membership change the
// issue lists, then checks from the database alone that every message was
// processed, that no two owners of a partition processed at once, and that
// every accepted commit came from the partition's current owner, while the
// paused consumer's late commits were attempted and refused.
func TestProof(t *testing.T) {
	if testing.Short() {
		t.Skip("the proof runs about a minute of real processes; skipped with -short")
	}
	srv := dbtest.Start(t)
	h := &harness{t: t, dir: t.TempDir(), dsn: srv.DSN("pmq")}
	t.Cleanup(h.cleanup)
	h.pmq = h.build(".", ".", "pmq")
	h.rg = h.build("../..", "./cmd/regroup", "regroup")
	db, err := queue.Open(h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h.db = db

	etcd, err := embedetcd.Start(embedetcd.Config{Dir: filepath.Join(h.dir, "etcd")})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	addrs := []string{freeAddr(t), freeAddr(t)}
	coords := make([]*proc, 2)
	for i, a := range addrs {
		coords[i] = h.start("regroup"+string(rune('1'+i)), h.rg, "serve", "--etcd-endpoints", etcd.Endpoint(),
			"--listen", a, "--lease-ttl", "2s", "--min-session-timeout", "1s", "--initial-rebalance-delay", "500ms",
			"--metrics-addr", "")
	}
	h.waitFor("a coordinator leads", 30*time.Second, func() bool { return leader(addrs) >= 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	setup := h.start("setup", h.pmq, "setup", "--dsn", h.dsn, "--topic", proofTopic,
		"--partitions", "8", "--endpoints", strings.Join(addrs, ","))
	select {
	case <-setup.exited:
	case <-ctx.Done():
	}
	if setup.err != nil || ctx.Err() != nil {
		t.Fatalf("pmq setup failed (%v); see %s", setup.err, setup.log)
	}
	producers := []*proc{
		h.start("producer1", h.pmq, "produce", "--dsn", h.dsn, "--topic", proofTopic, "--partitions", "0-3", "--rate", "200", "--batch", "5"),
		h.start("producer2", h.pmq, "produce", "--dsn", h.dsn, "--topic", proofTopic, "--partitions", "4-7", "--rate", "200", "--batch", "5"),
	}

	// A group of two.
	c1 := h.consumer("c1", addrs)
	c2 := h.consumer("c2", addrs)
	h.waitFor("c1 and c2 own the 8 partitions", 30*time.Second, func() bool {
		return len(h.owners()) == proofPartitions && h.ownedBy(c1) > 0 && h.ownedBy(c2) > 0
	})
	h.progressed("the group consumes", 20)

	// Add consumers: c3, and c4 a static member.
	c3 := h.consumer("c3", addrs, "--work", "10ms") // a slow handler: a batch in hand takes a while
	c4 := h.consumer("c4", addrs, "--instance", "c4")
	h.waitFor("c3 and c4 own partitions", 30*time.Second, func() bool { return h.ownedBy(c3) > 0 && h.ownedBy(c4) > 0 })

	// Remove c1 gracefully: SIGTERM ends Run's context, which revokes
	// (commits, stops the workers) and leaves.
	c1.stop(t)
	h.waitFor("c1's partitions have new owners", 30*time.Second, func() bool { return h.ownedBy(c1) == 0 })

	// Kill c2: its partitions move once its session has expired.
	c2.signal(t, syscall.SIGKILL)
	<-c2.exited
	h.waitFor("c2's partitions have new owners", 30*time.Second, func() bool { return h.ownedBy(c2) == 0 })
	c5 := h.consumer("c5", addrs)
	h.waitFor("c5 owns partitions", 30*time.Second, func() bool { return h.ownedBy(c5) > 0 })

	// Freeze c3 with a batch in hand (SIGUSR1: it stops itself with
	// SIGSTOP once a worker holds a pulled batch) past its session
	// timeout, until the others have claimed its partitions; woken, it
	// still tries to commit that batch, and the fence refuses it.
	h.waitFor("c3 owns partitions", 30*time.Second, func() bool { return h.ownedBy(c3) > 0 })
	c3.signal(t, syscall.SIGUSR1)
	h.waitFor("c3 freezes with a batch in hand", 30*time.Second, func() bool {
		b, _ := os.ReadFile(c3.log)
		return strings.Contains(string(b), "frozen with a batch")
	})
	stopped := time.Now()
	h.waitFor("c3's partitions have new owners while it is frozen", 30*time.Second, func() bool { return h.ownedBy(c3) == 0 })
	c3.signal(t, syscall.SIGCONT)
	t.Logf("c3 was frozen for %s (session timeout %s)", time.Since(stopped).Round(10*time.Millisecond), sessionTimeout)
	h.waitFor("the fence refuses the commit of c3's batch", 30*time.Second, func() bool {
		return h.count(`SELECT COUNT(*) FROM refused WHERE grp = ? AND kind = 'commit' AND consumer = ?`, proofGroup, c3.id()) > 0
	})

	// Restart the static member c4: its partitions come back to the new
	// process (same instance id) without a rebalance.
	h.waitFor("c3 owns partitions again", 30*time.Second, func() bool { return h.ownedBy(c3) > 0 })
	before := h.partitionsOf(c4)
	c4.stop(t)
	c4 = h.consumer("c4", addrs, "--instance", "c4")
	h.waitFor("the restarted c4 owns partitions", 30*time.Second, func() bool { return h.ownedBy(c4) > 0 })
	t.Logf("c4 owned partitions %v before its restart, %v after", before, h.partitionsOf(c4))

	// Fail the leading coordinator over.
	l := leader(addrs)
	if l < 0 {
		t.Fatal("no coordinator leads")
	}
	coords[l].signal(t, syscall.SIGKILL)
	<-coords[l].exited
	h.waitFor("the other coordinator leads", 30*time.Second, func() bool { return leader(addrs) == 1-l })
	h.progressed("the group consumes after the failover", 20)

	// Stop producing, let the consumers drain, stop them.
	for _, p := range producers {
		p.stop(t)
	}
	h.waitFor("every partition is consumed to its end", 90*time.Second, h.drained)
	for _, c := range []*proc{c3, c4, c5} {
		c.stop(t)
	}

	// The audit, from the database alone.
	r, err := queue.Audit(context.Background(), db, proofGroup, proofTopic)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("audit:\n%s", r)
	if ps := r.Problems(); len(ps) > 0 {
		t.Fatalf("the audit found %d problems", len(ps))
	}
	if r.Produced < 1000 {
		t.Fatalf("only %d messages produced", r.Produced)
	}
	if r.Refused[c3.id()] == 0 {
		t.Fatalf("no refused commit from the paused consumer %s in the audit", c3.id())
	}
}
