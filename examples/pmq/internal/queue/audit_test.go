package queue_test

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/dbtest"
	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
)

// commitAt commits the next n messages after offset as o, with the given
// processing interval.
func commitAt(t *testing.T, o *queue.Owner, offset int64, n int, start, end time.Time) int64 {
	t.Helper()
	msgs, err := o.Pull(context.Background(), offset, n)
	if err != nil {
		t.Fatal(err)
	}
	b := queue.Batch{From: offset, Started: start, Finished: end}
	for _, m := range msgs {
		b.IDs = append(b.IDs, m.ID)
	}
	if err := o.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return b.To()
}

func audit(t *testing.T, db *sql.DB, topic string) *queue.Report {
	t.Helper()
	r, err := queue.Audit(context.Background(), db, "g", topic)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantProblem checks that the report lists a problem containing want, and
// only problems of that kind.
func wantProblem(t *testing.T, r *queue.Report, want string) {
	t.Helper()
	ps := r.Problems()
	if len(ps) == 0 {
		t.Fatalf("the audit found nothing, want %q:\n%s", want, r)
	}
	for _, p := range ps {
		if !strings.Contains(p, want) {
			t.Fatalf("the audit reports %q, want only %q problems:\n%s", p, want, r)
		}
	}
}

// TestAuditCatches feeds the audit a database with each kind of broken
// promise, and checks that it reports it.
func TestAuditCatches(t *testing.T) {
	_, db := dbtest.Open(t, "first", 1)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	topic := func(name string) (a, b *queue.Owner) {
		t.Helper()
		if err := queue.Setup(ctx, db, name, 1); err != nil {
			t.Fatal(err)
		}
		if err := queue.Produce(ctx, db, name, 0, 20, 100); err != nil {
			t.Fatal(err)
		}
		mk := func(c string, token int64) *queue.Owner {
			return &queue.Owner{DB: db, Group: "g", Topic: name, Partition: 0, Consumer: c, Token: token}
		}
		return mk("a", 1), mk("b", 2)
	}

	t.Run("clean", func(t *testing.T) {
		a, b := topic("clean")
		off := commitAt(t, a, claim(t, a), 10, ms(0), ms(10))
		if claim(t, b) != off {
			t.Fatal("b does not start at a's offset")
		}
		commitAt(t, b, off, 10, ms(20), ms(30))
		if ps := audit(t, db, "clean").Problems(); len(ps) != 0 {
			t.Fatalf("a clean run has problems: %v", ps)
		}
	})
	t.Run("missing", func(t *testing.T) {
		a, _ := topic("missing")
		commitAt(t, a, claim(t, a), 10, ms(0), ms(10))
		wantProblem(t, audit(t, db, "missing"), "never processed")
	})
	t.Run("overlap", func(t *testing.T) {
		a, b := topic("overlap")
		commitAt(t, a, claim(t, a), 10, ms(0), ms(100))
		commitAt(t, b, claim(t, b), 10, ms(50), ms(150))
		wantProblem(t, audit(t, db, "overlap"), "overlap")
	})
	t.Run("non-owner commit", func(t *testing.T) {
		a, b := topic("nonowner")
		off := commitAt(t, a, claim(t, a), 10, ms(0), ms(10))
		claim(t, b)
		// What PMQ's unfenced commit does: a writes after b has claimed.
		msgs, err := a.Pull(ctx, off, 10)
		if err != nil {
			t.Fatal(err)
		}
		to := msgs[len(msgs)-1].ID
		for _, q := range []string{
			`UPDATE offsets SET offset_id = ` + itoa(to) + `, token = 1, owner = 'a' WHERE grp = 'g' AND topic = 'nonowner'`,
			`INSERT INTO ledger (grp, topic, part, kind, consumer, token, from_id, to_id, at) VALUES ('g', 'nonowner', 0, 'commit', 'a', 1, ` + itoa(off) + `, ` + itoa(to) + `, NOW(6))`,
			`INSERT INTO results (grp, topic, part, msg_id, consumer, token, started_at, finished_at)
				SELECT 'g', 'nonowner', 0, id, 'a', 1, NOW(6), NOW(6) FROM q_nonowner_0 WHERE id > ` + itoa(off),
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		wantProblem(t, audit(t, db, "nonowner"), "non-owner")
	})
	t.Run("duplicate", func(t *testing.T) {
		a, _ := topic("duplicate")
		off := commitAt(t, a, claim(t, a), 20, ms(0), ms(10))
		if _, err := db.Exec(`INSERT INTO results (grp, topic, part, msg_id, consumer, token, started_at, finished_at)
			VALUES ('g', 'duplicate', 0, ?, 'a', 1, ?, ?)`, off, ms(20), ms(30)); err != nil {
			t.Fatal(err)
		}
		wantProblem(t, audit(t, db, "duplicate"), "duplicate")
	})
	t.Run("offset gap", func(t *testing.T) {
		a, _ := topic("gap")
		off := claim(t, a)
		if _, err := db.Exec(`UPDATE offsets SET offset_id = offset_id + 5 WHERE grp = 'g' AND topic = 'gap'`); err != nil {
			t.Fatal(err)
		}
		commitAt(t, a, off+5, 15, ms(0), ms(10))
		r := audit(t, db, "gap")
		if len(r.Breaks) == 0 || len(r.Missing) == 0 {
			t.Fatalf("a commit that skipped 5 messages is not reported:\n%s", r)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
