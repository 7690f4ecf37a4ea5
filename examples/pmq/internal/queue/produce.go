package queue

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Produce appends count messages of size bytes each to partition p of
// topic, in one statement (so they get consecutive ids). Only one producer
// may write a partition: ids must become visible in increasing order, or a
// consumer could move its offset past an id committed later.
func Produce(ctx context.Context, db *sql.DB, topic string, p int32, count, size int) error {
	if count < 1 {
		return nil
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	now := time.Now().UTC()
	var q strings.Builder
	fmt.Fprintf(&q, "INSERT INTO %s (payload, produced_at) VALUES ", Table(topic, p))
	args := make([]any, 0, 2*count)
	for i := 0; i < count; i++ {
		if i > 0 {
			q.WriteString(",")
		}
		q.WriteString("(?,?)")
		args = append(args, payload, now)
	}
	if _, err := db.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("producing to %s: %w", Table(topic, p), err)
	}
	return nil
}
