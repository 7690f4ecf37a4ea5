package consumer_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/consumer"
	"github.com/regroup-dev/regroup/examples/pmq/internal/dbtest"
	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
	"github.com/regroup-dev/regroup/member"
)

// commits counts the commits accepted from consumer.
func commits(t *testing.T, db *sql.DB, name string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ledger WHERE kind = 'commit' AND consumer = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// quiet checks that consumer commits nothing more once its callback
// returned.
func quiet(t *testing.T, db *sql.DB, name, callback string) {
	t.Helper()
	n := commits(t, db, name)
	time.Sleep(300 * time.Millisecond)
	if m := commits(t, db, name); m != n {
		t.Fatalf("%s committed %d more batches after %s returned", name, m-n, callback)
	}
}

func waitProcessed(t *testing.T, c *consumer.Consumer, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.Processed() < n {
		if time.Now().After(deadline) {
			t.Fatalf("processed %d messages in 30 s, want %d", c.Processed(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCallbacksStopWorkers: OnRevoked and OnLost return only once the
// partition's worker has stopped, so nothing is processed on the old
// owner's behalf after them, and the next owner continues from the
// committed offset.
func TestCallbacksStopWorkers(t *testing.T) {
	_, db := dbtest.Open(t, "cb", 1)
	ctx := context.Background()
	produce := func(n int) {
		if err := queue.Produce(ctx, db, "cb", 0, n, 100); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(name string) *consumer.Consumer {
		return consumer.New(consumer.Config{DB: db, Group: "g", Topic: "cb", Name: name, Batch: 5,
			Work: 2 * time.Millisecond, Poll: 5 * time.Millisecond})
	}
	part := func(token int64) []member.Partition {
		return []member.Partition{{Topic: "cb", Partition: 0, Token: token}}
	}

	a, b, c := mk("a"), mk("b"), mk("c")
	produce(50)
	a.OnAssigned(ctx, part(1))
	waitProcessed(t, a, 50)
	produce(1000) // a backlog: the workers are busy when the callbacks come
	waitProcessed(t, a, 100)
	revokeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	a.OnRevoked(revokeCtx, part(1))
	cancel()
	quiet(t, db, "a", "OnRevoked")

	b.OnAssigned(ctx, part(2))
	waitProcessed(t, b, 50)
	lostCtx, cancel := context.WithDeadline(ctx, time.Now())
	b.OnLost(lostCtx, part(2))
	cancel()
	quiet(t, db, "b", "OnLost")

	c.OnAssigned(ctx, part(3))
	waitProcessed(t, c, 1)
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := queue.Audit(ctx, db, "g", "cb")
		if err != nil {
			t.Fatal(err)
		}
		if r.Processed == r.Produced {
			if ps := r.Problems(); len(ps) > 0 {
				t.Fatalf("audit:\n%s", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c did not finish the partition in 60 s:\n%s", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.OnRevoked(ctx, part(3))
}

// TestFreezeNextBatch: the armed hook runs once, in the worker that pulled
// the next batch, before that batch is processed or committed.
func TestFreezeNextBatch(t *testing.T) {
	_, db := dbtest.Open(t, "fz", 1)
	ctx := context.Background()
	if err := queue.Produce(ctx, db, "fz", 0, 20, 100); err != nil {
		t.Fatal(err)
	}
	c := consumer.New(consumer.Config{DB: db, Group: "g", Topic: "fz", Name: "a", Batch: 5, Poll: 5 * time.Millisecond})
	type call struct {
		partition int32
		token     int64
		messages  int
	}
	calls := make(chan call, 2)
	release := make(chan struct{})
	c.FreezeNextBatch(func(partition int32, token int64, messages int) {
		calls <- call{partition, token, messages}
		<-release
	})
	c.OnAssigned(ctx, []member.Partition{{Topic: "fz", Partition: 0, Token: 7}})
	select {
	case got := <-calls:
		if got != (call{0, 7, 5}) {
			t.Errorf("freeze called with %+v, want partition 0, token 7, a batch of 5", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("freeze was not called within 30 s of the assignment")
	}
	if n := commits(t, db, "a"); n != 0 {
		t.Errorf("%d batches committed while the worker was frozen with its first one, want 0", n)
	}
	close(release)
	waitProcessed(t, c, 20)
	if len(calls) != 0 {
		t.Errorf("freeze called again after its first batch: %+v", <-calls)
	}
	c.OnRevoked(ctx, []member.Partition{{Topic: "fz", Partition: 0, Token: 7}})
}
