package queue_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/dbtest"
	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
)

// consumeBatch pulls up to n messages after offset as o and commits them,
// returning the new offset and the commit's error.
func consumeBatch(t *testing.T, o *queue.Owner, offset int64, n int) (int64, error) {
	t.Helper()
	ctx := context.Background()
	msgs, err := o.Pull(ctx, offset, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) == 0 {
		t.Fatalf("%s: nothing to pull after %d", o.Consumer, offset)
	}
	b := queue.Batch{From: offset, Started: time.Now(), Finished: time.Now()}
	for _, m := range msgs {
		b.IDs = append(b.IDs, m.ID)
	}
	if err := o.Commit(ctx, b); err != nil {
		return offset, err
	}
	return b.To(), nil
}

func claim(t *testing.T, o *queue.Owner) int64 {
	t.Helper()
	offset, err := o.Claim(context.Background())
	if err != nil {
		t.Fatalf("%s claims with token %d: %v", o.Consumer, o.Token, err)
	}
	return offset
}

func refusals(t *testing.T, db *sql.DB, consumer, kind string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM refused WHERE consumer = ? AND kind = ?`, consumer, kind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFencing: once a newer owner has claimed a partition, the older one's
// commit is refused, rolled back and recorded; a smaller token cannot claim
// back; the same token held by another process (a static restart) fences
// the first; a retried commit that already succeeded is not a refusal.
func TestFencing(t *testing.T) {
	_, db := dbtest.Open(t, "f", 1)
	ctx := context.Background()
	if err := queue.Produce(ctx, db, "f", 0, 40, 1024); err != nil {
		t.Fatal(err)
	}
	owner := func(name string, token int64) *queue.Owner {
		return &queue.Owner{DB: db, Group: "g", Topic: "f", Partition: 0, Consumer: name, Token: token}
	}
	old, cur := owner("old", 1), owner("new", 2)

	oldOffset := claim(t, old)
	oldOffset, err := consumeBatch(t, old, oldOffset, 10)
	if err != nil {
		t.Fatalf("the owner's commit: %v", err)
	}
	curOffset := claim(t, cur)
	if curOffset != oldOffset {
		t.Fatalf("the new owner starts at %d, want the committed offset %d", curOffset, oldOffset)
	}
	if _, err := consumeBatch(t, old, oldOffset, 10); !queue.IsFenced(err) {
		t.Fatalf("the old owner's commit after the new claim: got %v, want a refusal", err)
	}
	if n := refusals(t, db, "old", "commit"); n != 1 {
		t.Fatalf("%d refused commits recorded for the old owner, want 1", n)
	}
	if _, err := old.Claim(ctx); !queue.IsFenced(err) {
		t.Fatalf("a claim with a smaller token: got %v, want a refusal", err)
	}
	if curOffset, err = consumeBatch(t, cur, curOffset, 10); err != nil {
		t.Fatalf("the new owner's commit: %v", err)
	}

	restarted := owner("new-restarted", 2)
	offset := claim(t, restarted)
	if _, err := consumeBatch(t, cur, curOffset, 10); !queue.IsFenced(err) {
		t.Fatalf("a commit after another process claimed with the same token: got %v, want a refusal", err)
	}
	msgs, err := restarted.Pull(ctx, offset, 10)
	if err != nil {
		t.Fatal(err)
	}
	b := queue.Batch{From: offset, Started: time.Now(), Finished: time.Now()}
	for _, m := range msgs {
		b.IDs = append(b.IDs, m.ID)
	}
	for i := 0; i < 2; i++ { // the second attempt finds the first one's commit
		if err := restarted.Commit(ctx, b); err != nil {
			t.Fatalf("commit attempt %d: %v", i+1, err)
		}
	}
	if n := refusals(t, db, "new-restarted", "commit"); n != 0 {
		t.Fatalf("a retried commit that had succeeded was recorded as refused %d times", n)
	}

	r, err := queue.Audit(ctx, db, "g", "f")
	if err != nil {
		t.Fatal(err)
	}
	if r.Processed != 30 || r.Duplicates != 0 || len(r.Overlaps) != 0 || len(r.NonOwner) != 0 || len(r.Breaks) != 0 {
		t.Fatalf("audit after fenced commits:\n%s", r)
	}
	if r.Refused["old"] != 1 || r.Refused["new"] != 1 || r.RefusedClaims != 1 {
		t.Fatalf("audit counts refusals %v and %d refused claims, want old 1, new 1 and 1:\n%s", r.Refused, r.RefusedClaims, r)
	}
}

// TestStalledTransactionReleased: a transaction left open holding the
// offsets row (a consumer stopped mid-commit) is rolled back after
// IdleTransactionTimeout, so the next owner's claim goes through.
func TestStalledTransactionReleased(t *testing.T) {
	_, db := dbtest.Open(t, "s", 1)
	ctx := context.Background()
	zombie := &queue.Owner{DB: db, Group: "g", Topic: "s", Partition: 0, Consumer: "zombie", Token: 1}
	claim(t, zombie)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`UPDATE offsets SET updated_at = NOW(6) WHERE grp = 'g' AND topic = 's' AND part = 0`); err != nil {
		t.Fatal(err)
	}
	next := &queue.Owner{DB: db, Group: "g", Topic: "s", Partition: 0, Consumer: "next", Token: 2}
	claim(t, next) // waits for the server to roll the idle transaction back
	if err := tx.Commit(); err == nil {
		t.Fatal("the stalled transaction committed after the server should have rolled it back")
	}
}
