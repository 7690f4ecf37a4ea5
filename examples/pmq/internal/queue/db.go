// Package queue is a tiny PMQ-style partitioned queue on MariaDB: a table
// per partition whose auto-increment id is the message's position, an
// offsets table per (group, topic, partition) holding the committed offset
// and the fencing token of the owner that wrote it, and the tables the audit
// reads (results, the log of accepted claims and commits, and the refused
// ones).
package queue

import (
	"database/sql"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// IdleTransactionTimeout is the MariaDB idle_transaction_timeout, in
// seconds, set on every connection Open makes: a consumer stopped in the
// middle of a transaction (SIGSTOP, a VM freeze) has it rolled back and its
// row locks released after this long, so that the partition's next owner is
// not blocked behind a zombie.
const IdleTransactionTimeout = 2

// Open opens the database named by dsn (go-sql-driver/mysql syntax,
// e.g. "root@tcp(127.0.0.1:3306)/pmq") with the settings the queue relies
// on: parsed microsecond timestamps in UTC, found (not changed) rows counted
// by UPDATE, IdleTransactionTimeout, and lock waits bounded to 10 s.
func Open(dsn string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("bad --dsn %q: %v (expected user@tcp(host:port)/database)", dsn, err)
	}
	if cfg.DBName == "" {
		return nil, fmt.Errorf("--dsn %q names no database: end it with /pmq", dsn)
	}
	cfg.ParseTime = true
	cfg.ClientFoundRows = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["idle_transaction_timeout"] = fmt.Sprint(IdleTransactionTimeout)
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.Params["innodb_lock_wait_timeout"] = "10"
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxIdleConns(16)
	return db, nil
}

var namePattern = regexp.MustCompile(`^[a-z0-9_]{1,40}$`)

// CheckName checks that a topic or group name is usable in a table name.
func CheckName(what, name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%s %q: use 1 to 40 lower-case letters, digits or underscores", what, name)
	}
	return nil
}

// Table is the name of the table holding partition p of topic.
func Table(topic string, p int32) string {
	return fmt.Sprintf("q_%s_%d", strings.ToLower(topic), p)
}
