package main

import (
	"context"
	"fmt"
	"time"

	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
)

func runAudit(args []string) error {
	fs := newFlags("audit", "Check, from the database alone, a group's consumption of a topic: every\n"+
		"message processed, no two owners of a partition processing at once, every\n"+
		"accepted commit from the partition's current owner; count refused\n"+
		"(zombie) commits and duplicates. Exits 1 if a promise was broken.")
	dsn := dsnFlag(fs)
	group := fs.String("group", "billing", "group to audit")
	topic := fs.String("topic", "orders", "topic to audit")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db, err := openDB(ctx, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := queue.Audit(ctx, db, *group, *topic)
	if err != nil {
		return err
	}
	fmt.Print(r)
	if ps := r.Problems(); len(ps) > 0 {
		return fmt.Errorf("%d problems found", len(ps))
	}
	return nil
}
