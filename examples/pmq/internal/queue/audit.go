package queue

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Report is what the database alone says about a group's consumption of a
// topic. Problems lists what breaks the queue's promises.
type Report struct {
	Group, Topic string
	Partitions   int32
	// Produced counts the messages in the partition tables; Processed those
	// with at least one result.
	Produced, Processed int64
	// Duplicates counts result rows beyond the first of their message.
	Duplicates int64
	// Missing: per partition, the messages with no result.
	Missing []string
	// Overlaps: batches of two owners of a partition whose processing
	// intervals overlap.
	Overlaps []string
	// NonOwner: accepted claims and commits that did not come from the
	// partition's current owner (a smaller token than one already claimed,
	// or another owner than the last claim's).
	NonOwner []string
	// Breaks: accepted commits that did not start at the committed offset,
	// and offsets rows that disagree with the ledger.
	Breaks []string
	// Claims and Commits count the accepted ones.
	Claims, Commits int64
	// Refused counts the refused commits per consumer; RefusedClaims the
	// refused claims; RolledBack the messages whose processing was rolled
	// back with a refused commit (processed again by the next owner: the
	// at-least-once window).
	Refused       map[string]int64
	RefusedClaims int64
	RolledBack    int64
}

// Problems lists every violation found; none means the run kept every
// promise.
func (r *Report) Problems() []string {
	var ps []string
	if r.Processed != r.Produced {
		ps = append(ps, fmt.Sprintf("%d of %d messages were never processed", r.Produced-r.Processed, r.Produced))
	}
	for _, s := range r.Missing {
		ps = append(ps, "missing: "+s)
	}
	if r.Duplicates > 0 {
		ps = append(ps, fmt.Sprintf("%d results duplicate a committed message", r.Duplicates))
	}
	for _, s := range r.Overlaps {
		ps = append(ps, "overlap: "+s)
	}
	for _, s := range r.NonOwner {
		ps = append(ps, "non-owner: "+s)
	}
	for _, s := range r.Breaks {
		ps = append(ps, "offset: "+s)
	}
	return ps
}

// String formats the report for people.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "group %s, topic %s, %d partitions\n", r.Group, r.Topic, r.Partitions)
	fmt.Fprintf(&b, "produced %d, processed %d, duplicate results %d\n", r.Produced, r.Processed, r.Duplicates)
	fmt.Fprintf(&b, "accepted: %d claims, %d commits; refused: %d claims, %d commits (%d messages rolled back and processed again)\n",
		r.Claims, r.Commits, r.RefusedClaims, r.refusedCommits(), r.RolledBack)
	var names []string
	for c := range r.Refused {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		fmt.Fprintf(&b, "  refused commits from %s: %d\n", c, r.Refused[c])
	}
	ps := r.Problems()
	if len(ps) == 0 {
		b.WriteString("OK: every message processed, no overlapping owners, every accepted commit from the current owner\n")
	}
	for _, p := range ps {
		fmt.Fprintf(&b, "PROBLEM %s\n", p)
	}
	return b.String()
}

func (r *Report) refusedCommits() int64 {
	var n int64
	for _, c := range r.Refused {
		n += c
	}
	return n
}

// Audit checks, from the database alone, group's consumption of topic.
func Audit(ctx context.Context, db *sql.DB, group, topic string) (*Report, error) {
	n, err := Partitions(ctx, db, topic)
	if err != nil {
		return nil, err
	}
	r := &Report{Group: group, Topic: topic, Partitions: n, Refused: map[string]int64{}}
	for p := int32(0); p < n; p++ {
		if err := r.auditMessages(ctx, db, p); err != nil {
			return nil, err
		}
		if err := r.auditOverlaps(ctx, db, p); err != nil {
			return nil, err
		}
		if err := r.auditLedger(ctx, db, p); err != nil {
			return nil, err
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT consumer, kind, COUNT(*), COALESCE(SUM(to_id - from_id), 0) FROM refused
		WHERE grp = ? AND topic = ? GROUP BY consumer, kind`, group, topic)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var c, kind string
		var count, span int64
		if err := rows.Scan(&c, &kind, &count, &span); err != nil {
			return nil, err
		}
		if kind == "claim" {
			r.RefusedClaims += count
			continue
		}
		r.Refused[c] += count
		r.RolledBack += span
	}
	return r, rows.Err()
}

func (r *Report) auditMessages(ctx context.Context, db *sql.DB, p int32) error {
	var produced, missing int64
	var first sql.NullInt64
	if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM %s`, Table(r.Topic, p))).Scan(&produced); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*), MIN(q.id) FROM %s q WHERE NOT EXISTS
		(SELECT 1 FROM results r WHERE r.grp = ? AND r.topic = ? AND r.part = ? AND r.msg_id = q.id)`, Table(r.Topic, p)),
		r.Group, r.Topic, p).Scan(&missing, &first); err != nil {
		return err
	}
	var rowsN, distinct int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT msg_id) FROM results WHERE grp = ? AND topic = ? AND part = ?`,
		r.Group, r.Topic, p).Scan(&rowsN, &distinct); err != nil {
		return err
	}
	r.Produced += produced
	r.Processed += produced - missing
	r.Duplicates += rowsN - distinct
	if missing > 0 {
		r.Missing = append(r.Missing, fmt.Sprintf("partition %d: %d messages never processed, the first is id %d", p, missing, first.Int64))
	}
	return nil
}

// auditOverlaps sweeps the partition's batches in start order: a batch that
// starts before a batch of another owner has finished overlaps it.
func (r *Report) auditOverlaps(ctx context.Context, db *sql.DB, p int32) error {
	rows, err := db.QueryContext(ctx, `SELECT consumer, token, started_at, finished_at FROM results
		WHERE grp = ? AND topic = ? AND part = ? GROUP BY consumer, token, started_at, finished_at
		ORDER BY started_at, finished_at`, r.Group, r.Topic, p)
	if err != nil {
		return err
	}
	defer rows.Close()
	var end time.Time
	var endOwner string
	for rows.Next() {
		var c string
		var token int64
		var start, finish time.Time
		if err := rows.Scan(&c, &token, &start, &finish); err != nil {
			return err
		}
		owner := fmt.Sprintf("%s (token %d)", c, token)
		if endOwner != "" && owner != endOwner && start.Before(end) {
			r.Overlaps = append(r.Overlaps, fmt.Sprintf("partition %d: %s started a batch at %s, before %s finished one at %s",
				p, owner, start.Format(stamp), endOwner, end.Format(stamp)))
		}
		if finish.After(end) {
			end, endOwner = finish, owner
		}
	}
	return rows.Err()
}

const stamp = "15:04:05.000000"

// auditLedger replays the partition's accepted claims and commits in the
// order they took effect: a claim must not carry a smaller token than an
// earlier one, a commit must come from the last claim's owner and token and
// start at the committed offset, and the offsets row must show the end.
func (r *Report) auditLedger(ctx context.Context, db *sql.DB, p int32) error {
	rows, err := db.QueryContext(ctx, `SELECT seq, kind, consumer, token, from_id, to_id FROM ledger
		WHERE grp = ? AND topic = ? AND part = ? ORDER BY seq`, r.Group, r.Topic, p)
	if err != nil {
		return err
	}
	defer rows.Close()
	var token, offset int64
	var owner string
	for rows.Next() {
		var seq, t, from, to int64
		var kind, c string
		if err := rows.Scan(&seq, &kind, &c, &t, &from, &to); err != nil {
			return err
		}
		switch kind {
		case "claim":
			r.Claims++
			if t < token {
				r.NonOwner = append(r.NonOwner, fmt.Sprintf("partition %d: ledger %d: %s claimed with token %d after %s had claimed with token %d",
					p, seq, c, t, owner, token))
			}
			if from != offset {
				r.Breaks = append(r.Breaks, fmt.Sprintf("partition %d: ledger %d: %s claimed at offset %d, the committed offset was %d", p, seq, c, from, offset))
			}
			token, owner = t, c
		case "commit":
			r.Commits++
			if t != token || c != owner {
				r.NonOwner = append(r.NonOwner, fmt.Sprintf("partition %d: ledger %d: %s committed with token %d while %s owned it with token %d",
					p, seq, c, t, owner, token))
			}
			if from != offset {
				r.Breaks = append(r.Breaks, fmt.Sprintf("partition %d: ledger %d: %s committed from offset %d, the committed offset was %d", p, seq, c, from, offset))
			}
			token, owner, offset = t, c, to
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var sToken, sOffset int64
	var sOwner string
	err = db.QueryRowContext(ctx, `SELECT token, owner, offset_id FROM offsets WHERE grp = ? AND topic = ? AND part = ?`,
		r.Group, r.Topic, p).Scan(&sToken, &sOwner, &sOffset)
	if err == sql.ErrNoRows {
		return nil
	}
	if err != nil {
		return err
	}
	if sToken != token || sOwner != owner || sOffset != offset {
		r.Breaks = append(r.Breaks, fmt.Sprintf("partition %d: the offsets row says %s token %d offset %d, the ledger %s token %d offset %d",
			p, sOwner, sToken, sOffset, owner, token, offset))
	}
	return nil
}
