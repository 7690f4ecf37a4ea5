package queue

import (
	"context"
	"database/sql"
	"fmt"
)

// schema creates the tables shared by every topic and group.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS topics (
		topic VARCHAR(64) NOT NULL PRIMARY KEY,
		partitions INT NOT NULL
	) ENGINE=InnoDB`,
	// offsets: the next message to consume is the first id above offset_id;
	// token and owner are those of the last claim or commit accepted.
	`CREATE TABLE IF NOT EXISTS offsets (
		grp VARCHAR(64) NOT NULL,
		topic VARCHAR(64) NOT NULL,
		part INT NOT NULL,
		offset_id BIGINT NOT NULL,
		token BIGINT NOT NULL,
		owner VARCHAR(128) NOT NULL,
		updated_at DATETIME(6) NOT NULL,
		PRIMARY KEY (grp, topic, part)
	) ENGINE=InnoDB`,
	// results: one row per message processed, written in the transaction
	// that commits its batch; started_at and finished_at bound the batch.
	`CREATE TABLE IF NOT EXISTS results (
		id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		grp VARCHAR(64) NOT NULL,
		topic VARCHAR(64) NOT NULL,
		part INT NOT NULL,
		msg_id BIGINT NOT NULL,
		consumer VARCHAR(128) NOT NULL,
		token BIGINT NOT NULL,
		started_at DATETIME(6) NOT NULL,
		finished_at DATETIME(6) NOT NULL,
		KEY by_msg (grp, topic, part, msg_id),
		KEY by_time (grp, topic, part, finished_at)
	) ENGINE=InnoDB`,
	// ledger: every claim and commit accepted, in the order they took
	// effect per partition (the offsets row lock serializes them).
	`CREATE TABLE IF NOT EXISTS ledger (
		seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		grp VARCHAR(64) NOT NULL,
		topic VARCHAR(64) NOT NULL,
		part INT NOT NULL,
		kind ENUM('claim','commit') NOT NULL,
		consumer VARCHAR(128) NOT NULL,
		token BIGINT NOT NULL,
		from_id BIGINT NOT NULL,
		to_id BIGINT NOT NULL,
		at DATETIME(6) NOT NULL,
		KEY by_part (grp, topic, part, seq)
	) ENGINE=InnoDB`,
	// refused: every claim or commit the fencing check turned down, written
	// by a transaction of its own after the refused one rolled back.
	`CREATE TABLE IF NOT EXISTS refused (
		seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		grp VARCHAR(64) NOT NULL,
		topic VARCHAR(64) NOT NULL,
		part INT NOT NULL,
		kind ENUM('claim','commit') NOT NULL,
		consumer VARCHAR(128) NOT NULL,
		token BIGINT NOT NULL,
		stored_token BIGINT NOT NULL,
		stored_owner VARCHAR(128) NOT NULL,
		from_id BIGINT NOT NULL,
		to_id BIGINT NOT NULL,
		at DATETIME(6) NOT NULL
	) ENGINE=InnoDB`,
}

// Setup creates the shared tables and the tables of topic's partitions, and
// records the partition count. It is idempotent; a topic's partition count
// can only grow.
func Setup(ctx context.Context, db *sql.DB, topic string, partitions int32) error {
	if err := CheckName("topic", topic); err != nil {
		return err
	}
	if partitions < 1 {
		return fmt.Errorf("--partitions %d: a topic needs at least one partition", partitions)
	}
	for _, s := range schema {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("creating the queue's tables: %w", err)
		}
	}
	for p := int32(0); p < partitions; p++ {
		q := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
			id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
			payload MEDIUMBLOB NOT NULL,
			produced_at DATETIME(6) NOT NULL
		) ENGINE=InnoDB`, Table(topic, p))
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("creating %s: %w", Table(topic, p), err)
		}
	}
	_, err := db.ExecContext(ctx, `INSERT INTO topics (topic, partitions) VALUES (?, ?)
		ON DUPLICATE KEY UPDATE partitions = GREATEST(partitions, VALUES(partitions))`, topic, partitions)
	return err
}

// Partitions returns the partition count of topic, or an error saying to
// run setup.
func Partitions(ctx context.Context, db *sql.DB, topic string) (int32, error) {
	var n int32
	err := db.QueryRowContext(ctx, `SELECT partitions FROM topics WHERE topic = ?`, topic).Scan(&n)
	if err == sql.ErrNoRows {
		return 0, fmt.Errorf("topic %q does not exist in the database: run `pmq setup --topic %s` first", topic, topic)
	}
	if err != nil {
		return 0, fmt.Errorf("reading topic %q: %w (has `pmq setup` run?)", topic, err)
	}
	return n, nil
}
