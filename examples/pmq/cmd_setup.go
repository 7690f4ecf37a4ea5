package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func runSetup(args []string) error {
	fs := newFlags("setup", "Create the queue's tables in the database: a table per partition of the\n"+
		"topic, offsets, results, ledger and refused. With --endpoints, also create\n"+
		"the topic in Regroup's registry. Running it again changes nothing.")
	dsn := dsnFlag(fs)
	topic := fs.String("topic", "orders", "topic to create")
	partitions := fs.Int("partitions", 8, "the topic's partition count")
	endpoints := endpointsFlag(fs, "", " (empty: skip the registry)")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := openDB(ctx, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := queue.Setup(ctx, db, *topic, int32(*partitions)); err != nil {
		return err
	}
	fmt.Printf("tables ready for topic %s (%d partitions)\n", *topic, *partitions)
	if *endpoints == "" {
		return nil
	}
	if err := putTopic(ctx, strings.Split(*endpoints, ","), *topic, int32(*partitions)); err != nil {
		return err
	}
	fmt.Printf("topic %s registered in Regroup\n", *topic)
	return nil
}

// putTopic creates topic in Regroup's registry through the first endpoint
// that answers. A coordinator that answers UNAVAILABLE (NOT_COORDINATOR,
// COORDINATOR_NOT_AVAILABLE: one starting, or an election or a handover
// under way) is asked again, with the others, until ctx ends.
func putTopic(ctx context.Context, endpoints []string, topic string, partitions int32) error {
	var last error
	for wait, said := 100*time.Millisecond, false; ; wait = min(2*wait, time.Second) {
		for _, e := range endpoints {
			conn, err := grpc.NewClient(e, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				last = err
				continue
			}
			_, err = regroupv1.NewAdminClient(conn).PutTopic(ctx, &regroupv1.PutTopicRequest{
				Topic: &regroupv1.Topic{Name: topic, Partitions: partitions}})
			conn.Close()
			if err == nil {
				return nil
			}
			last = err
		}
		if status.Code(last) != codes.Unavailable {
			break
		}
		if !said {
			fmt.Fprintf(os.Stderr, "waiting for a coordinator to take the topic (%v)\n", last)
			said = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("registering topic %s in Regroup at %v: %v (is `regroup serve` running?)", topic, endpoints, last)
		case <-time.After(wait):
		}
	}
	return fmt.Errorf("registering topic %s in Regroup at %v: %v (is `regroup serve` running?)", topic, endpoints, last)
}
