package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Owner is one consumer's hold on one partition, with the fencing token the
// member library gave it. Its Claim and Commit succeed only while no owner
// with a larger token (or another owner with the same one) has claimed the
// partition since.
type Owner struct {
	DB        *sql.DB
	Group     string
	Topic     string
	Partition int32
	// Consumer names the process (or the in-process consumer) in the
	// tables, e.g. "c1/4242".
	Consumer string
	// Token is the partition's fencing token from the member library.
	Token int64
}

// FencedError says that a claim or commit was refused because the
// partition's stored owner is another one; the refusal has been recorded in
// the refused table.
type FencedError struct {
	Kind        string // "claim" or "commit"
	Token       int64
	StoredToken int64
	StoredOwner string
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("%s with token %d refused: the partition belongs to %s with token %d",
		e.Kind, e.Token, e.StoredOwner, e.StoredToken)
}

// Message is a message pulled from a partition.
type Message struct {
	ID         int64
	Payload    []byte
	ProducedAt time.Time
}

// Batch is a contiguous range of processed messages to commit: the offset
// moves from From (the offset the batch was pulled after) to the last id.
type Batch struct {
	From     int64
	IDs      []int64
	Started  time.Time
	Finished time.Time
}

// To is the offset after the batch: its last id.
func (b Batch) To() int64 { return b.IDs[len(b.IDs)-1] }

// Claim makes o the partition's stored owner if its token is at least the
// stored one, and returns the committed offset to consume after. A claim
// made with a smaller token is refused (and recorded) with a *FencedError.
func (o *Owner) Claim(ctx context.Context) (int64, error) {
	now := time.Now().UTC()
	tx, err := o.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT IGNORE INTO offsets (grp, topic, part, offset_id, token, owner, updated_at)
		VALUES (?, ?, ?, 0, 0, '', ?)`, o.Group, o.Topic, o.Partition, now); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `UPDATE offsets SET token = ?, owner = ?, updated_at = ?
		WHERE grp = ? AND topic = ? AND part = ? AND token <= ?`,
		o.Token, o.Consumer, now, o.Group, o.Topic, o.Partition, o.Token)
	if err != nil {
		return 0, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, err
	} else if n == 0 {
		tx.Rollback()
		return 0, o.refuse(ctx, "claim", 0, 0)
	}
	var offset int64
	if err := tx.QueryRowContext(ctx, `SELECT offset_id FROM offsets WHERE grp = ? AND topic = ? AND part = ?`,
		o.Group, o.Topic, o.Partition).Scan(&offset); err != nil {
		return 0, err
	}
	if err := o.log(ctx, tx, "claim", offset, offset, now); err != nil {
		return 0, err
	}
	return offset, tx.Commit()
}

// Pull returns up to max messages with ids above after, in id order.
func (o *Owner) Pull(ctx context.Context, after int64, max int) ([]Message, error) {
	rows, err := o.DB.QueryContext(ctx, fmt.Sprintf(
		`SELECT id, payload, produced_at FROM %s WHERE id > ? ORDER BY id LIMIT ?`, Table(o.Topic, o.Partition)),
		after, max)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ms []Message
	for rows.Next() {
		var m Message
		if err := rows.Scan(&m.ID, &m.Payload, &m.ProducedAt); err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, rows.Err()
}

// Commit records the batch's results and moves the offset, in one
// transaction, only if o is still the partition's stored owner and the
// offset is still where the batch started. Otherwise it rolls back, records
// the refusal and returns a *FencedError. A commit retried after an
// ambiguous failure (the first attempt did commit) returns nil.
func (o *Owner) Commit(ctx context.Context, b Batch) error {
	if len(b.IDs) == 0 {
		return nil
	}
	now := time.Now().UTC()
	tx, err := o.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE offsets SET offset_id = ?, token = ?, owner = ?, updated_at = ?
		WHERE grp = ? AND topic = ? AND part = ? AND token <= ? AND owner = ? AND offset_id = ?`,
		b.To(), o.Token, o.Consumer, now, o.Group, o.Topic, o.Partition, o.Token, o.Consumer, b.From)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		tx.Rollback()
		return o.refuse(ctx, "commit", b.From, b.To())
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO results (grp, topic, part, msg_id, consumer, token, started_at, finished_at) VALUES `)
	args := make([]any, 0, 8*len(b.IDs))
	for i, id := range b.IDs {
		if i > 0 {
			q.WriteString(",")
		}
		q.WriteString("(?,?,?,?,?,?,?,?)")
		args = append(args, o.Group, o.Topic, o.Partition, id, o.Consumer, o.Token, b.Started.UTC(), b.Finished.UTC())
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return err
	}
	if err := o.log(ctx, tx, "commit", b.From, b.To(), now); err != nil {
		return err
	}
	return tx.Commit()
}

func (o *Owner) log(ctx context.Context, tx *sql.Tx, kind string, from, to int64, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO ledger (grp, topic, part, kind, consumer, token, from_id, to_id, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, o.Group, o.Topic, o.Partition, kind, o.Consumer, o.Token, from, to, at)
	return err
}

// refuse reads the stored owner after a refused claim or commit. If the
// stored row shows this very commit (an earlier attempt succeeded), it
// returns nil; otherwise it records the refusal and returns a *FencedError.
func (o *Owner) refuse(ctx context.Context, kind string, from, to int64) error {
	var token, offset int64
	var owner string
	err := o.DB.QueryRowContext(ctx, `SELECT token, owner, offset_id FROM offsets WHERE grp = ? AND topic = ? AND part = ?`,
		o.Group, o.Topic, o.Partition).Scan(&token, &owner, &offset)
	if err != nil {
		return fmt.Errorf("%s refused, then reading the stored owner: %w", kind, err)
	}
	if kind == "commit" && token == o.Token && owner == o.Consumer && offset == to {
		return nil
	}
	if _, err := o.DB.ExecContext(ctx, `INSERT INTO refused (grp, topic, part, kind, consumer, token, stored_token, stored_owner, from_id, to_id, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, o.Group, o.Topic, o.Partition, kind, o.Consumer, o.Token,
		token, owner, from, to, time.Now().UTC()); err != nil {
		return fmt.Errorf("%s refused, then recording the refusal: %w", kind, err)
	}
	return &FencedError{Kind: kind, Token: o.Token, StoredToken: token, StoredOwner: owner}
}

// IsFenced reports whether err is a refusal by the fencing check.
func IsFenced(err error) bool {
	var f *FencedError
	return errors.As(err, &f)
}
