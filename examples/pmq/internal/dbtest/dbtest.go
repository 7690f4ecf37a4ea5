// Package dbtest starts a private MariaDB for a test, skipping the test
// when MariaDB is not installed (failing instead when CI=true).
package dbtest

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/mariadb"
	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
)

// Start starts a MariaDB server in a temporary directory, stopped when the
// test ends, with a database "pmq".
func Start(tb testing.TB) *mariadb.Server {
	tb.Helper()
	s, err := mariadb.Start(tb.TempDir(), 0, "pmq")
	if errors.Is(err, mariadb.ErrNotInstalled) && os.Getenv("CI") != "true" {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Open starts a server (see Start) and returns the queue's connection to
// its database "pmq", with topic set up with partitions partitions.
func Open(tb testing.TB, topic string, partitions int32) (*mariadb.Server, *sql.DB) {
	tb.Helper()
	s := Start(tb)
	db, err := queue.Open(s.DSN("pmq"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := queue.Setup(ctx, db, topic, partitions); err != nil {
		tb.Fatal(err)
	}
	return s, db
}
