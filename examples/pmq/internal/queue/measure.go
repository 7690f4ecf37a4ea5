package queue

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// MaxGaps returns, for each partition of topic, the longest time group's
// consumption stood still between from and to: the largest gap between
// consecutive batches finished in that window (the first gap starting at
// the last batch finished before from). A partition with no batch finished
// in the window gets its whole length.
func MaxGaps(ctx context.Context, db *sql.DB, group, topic string, from, to time.Time) ([]time.Duration, error) {
	n, err := Partitions(ctx, db, topic)
	if err != nil {
		return nil, err
	}
	gaps := make([]time.Duration, n)
	for p := int32(0); p < n; p++ {
		var prev sql.NullTime
		if err := db.QueryRowContext(ctx, `SELECT MAX(finished_at) FROM results
			WHERE grp = ? AND topic = ? AND part = ? AND finished_at < ?`, group, topic, p, from.UTC()).Scan(&prev); err != nil {
			return nil, fmt.Errorf("measuring the gaps of partition %d: %w", p, err)
		}
		last := from
		if prev.Valid {
			last = prev.Time
		}
		rows, err := db.QueryContext(ctx, `SELECT DISTINCT finished_at FROM results
			WHERE grp = ? AND topic = ? AND part = ? AND finished_at >= ? AND finished_at <= ? ORDER BY finished_at`,
			group, topic, p, from.UTC(), to.UTC())
		if err != nil {
			return nil, fmt.Errorf("measuring the gaps of partition %d: %w", p, err)
		}
		for rows.Next() {
			var at time.Time
			if err := rows.Scan(&at); err != nil {
				rows.Close()
				return nil, err
			}
			gaps[p] = max(gaps[p], at.Sub(last))
			last = at
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		gaps[p] = max(gaps[p], to.Sub(last))
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

// ClaimedBetween returns the partitions of topic that one of group's
// consumers claimed between from and to: those whose consumption stopped
// and restarted (with a new owner, or the same one after an eager revoke).
func ClaimedBetween(ctx context.Context, db *sql.DB, group, topic string, from, to time.Time) (map[int32]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT part FROM ledger
		WHERE grp = ? AND topic = ? AND kind = 'claim' AND at >= ? AND at <= ?`, group, topic, from.UTC(), to.UTC())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ps := map[int32]bool{}
	for rows.Next() {
		var p int32
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		ps[p] = true
	}
	return ps, rows.Err()
}
