package queue

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Gaps returns, for each partition of topic, the gap in group's consumption
// around the instant at: from the last batch finished at or before it to
// the first finished after it. A partition with nothing finished on one
// side gets -1.
func Gaps(ctx context.Context, db *sql.DB, group, topic string, at time.Time) ([]time.Duration, error) {
	n, err := Partitions(ctx, db, topic)
	if err != nil {
		return nil, err
	}
	gaps := make([]time.Duration, n)
	for p := int32(0); p < n; p++ {
		var before, after sql.NullTime
		if err := db.QueryRowContext(ctx, `SELECT
			(SELECT MAX(finished_at) FROM results WHERE grp = ? AND topic = ? AND part = ? AND finished_at <= ?),
			(SELECT MIN(finished_at) FROM results WHERE grp = ? AND topic = ? AND part = ? AND finished_at > ?)`,
			group, topic, p, at.UTC(), group, topic, p, at.UTC()).Scan(&before, &after); err != nil {
			return nil, fmt.Errorf("measuring the gap of partition %d: %w", p, err)
		}
		gaps[p] = -1
		if before.Valid && after.Valid {
			gaps[p] = after.Time.Sub(before.Time)
		}
	}
	return gaps, nil
}

// Span returns when the first message of topic was produced and when
// group finished processing the last one.
func Span(ctx context.Context, db *sql.DB, group, topic string) (first, last time.Time, err error) {
	n, err := Partitions(ctx, db, topic)
	if err != nil {
		return first, last, err
	}
	for p := int32(0); p < n; p++ {
		var f sql.NullTime
		if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT MIN(produced_at) FROM %s`, Table(topic, p))).Scan(&f); err != nil {
			return first, last, err
		}
		if f.Valid && (first.IsZero() || f.Time.Before(first)) {
			first = f.Time
		}
	}
	var l sql.NullTime
	if err := db.QueryRowContext(ctx, `SELECT MAX(finished_at) FROM results WHERE grp = ? AND topic = ?`, group, topic).Scan(&l); err != nil {
		return first, last, err
	}
	return first, l.Time, nil
}

// Lag returns how many messages of topic group has not committed yet.
func Lag(ctx context.Context, db *sql.DB, group, topic string) (int64, error) {
	n, err := Partitions(ctx, db, topic)
	if err != nil {
		return 0, err
	}
	var lag int64
	for p := int32(0); p < n; p++ {
		var last, offset sql.NullInt64
		if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT MAX(id) FROM %s`, Table(topic, p))).Scan(&last); err != nil {
			return 0, err
		}
		err := db.QueryRowContext(ctx, `SELECT offset_id FROM offsets WHERE grp = ? AND topic = ? AND part = ?`,
			group, topic, p).Scan(&offset)
		if err != nil && err != sql.ErrNoRows {
			return 0, err
		}
		lag += last.Int64 - offset.Int64
	}
	return lag, nil
}

// Claimed counts the partitions of topic that group's consumers have
// claimed.
func Claimed(ctx context.Context, db *sql.DB, group, topic string) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM offsets WHERE grp = ? AND topic = ? AND owner <> ''`, group, topic).Scan(&n)
	return n, err
}
