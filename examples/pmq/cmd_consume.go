package main

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/examples/pmq/internal/consumer"
	"github.com/regroup-dev/regroup/member"
)

func runConsume(args []string) error {
	fs := newFlags("consume", "Join a Regroup group and consume the partitions it owns: a worker per\n"+
		"partition claims it with its fencing token, pulls batches, processes them\n"+
		"(a row per message in results) and commits the offset in the same\n"+
		"transaction, which the fence refuses once a newer owner has claimed the\n"+
		"partition. SIGINT/SIGTERM revokes (commit, stop) and leaves. SIGUSR1\n"+
		"freezes the process (SIGSTOP to itself) as soon as a worker holds a batch\n"+
		"it pulled: a stop-the-world pause at the worst moment, for demonstrations\n"+
		"(SIGCONT resumes it).")
	dsn := dsnFlag(fs)
	endpoints := endpointsFlag(fs, "127.0.0.1:7070", "")
	group := fs.String("group", "billing", "group to join")
	topic := fs.String("topic", "orders", "topic to consume")
	name := fs.String("name", "consumer", "name in the logs and tables (the process id is appended)")
	instance := fs.String("instance", "", "static instance id: a restart with the same id keeps the partitions")
	batch := fs.Int("batch", 10, "most messages pulled and committed at once")
	work := fs.Duration("work", time.Millisecond, "simulated processing time per message")
	session := fs.Duration("session-timeout", 10*time.Second, "session timeout (the coordinator's --min-session-timeout must allow it)")
	heartbeat := fs.Duration("heartbeat", 0, "heartbeat interval (default: the library's, capped at a third of the session timeout)")
	assignors := fs.String("assignors", "cooperative-sticky", "assignors in preference order: "+strings.Join(assignor.Names(), ", "))
	status := fs.Duration("status-every", 5*time.Second, "print what the consumer owns and has processed this often (0: never)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var as []assignor.Assignor
	for _, n := range strings.Split(*assignors, ",") {
		a, err := assignor.Lookup(n)
		if err != nil {
			return err
		}
		as = append(as, a)
	}
	hb := *heartbeat
	if hb == 0 && *session < 9*time.Second {
		hb = *session / 3
	}
	ctx, stop := signalContext()
	defer stop()
	db, err := openDB(ctx, *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	id := fmt.Sprintf("%s/%d", *name, os.Getpid())
	logger := log.New(os.Stdout, id+" ", log.Ltime|log.Lmicroseconds|log.Lmsgprefix)
	c := consumer.New(consumer.Config{DB: db, Group: *group, Topic: *topic, Name: id, Batch: *batch, Work: *work, Log: logger})
	m, err := member.New(member.Config{
		Endpoints:         strings.Split(*endpoints, ","),
		Group:             *group,
		Topics:            []string{*topic},
		InstanceID:        *instance,
		Assignors:         as,
		SessionTimeout:    *session,
		HeartbeatInterval: hb,
		ClientID:          "pmq",
		Listener:          c,
		Logger:            hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Warn, Output: os.Stderr}),
	})
	if err != nil {
		return err
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			c.FreezeNextBatch(func(partition int32, token int64, messages int) {
				logger.Printf("partition %d: frozen with a batch of %d messages in hand (SIGUSR1), token %d", partition, messages, token)
				_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			})
		}
	}()
	if *status > 0 {
		go func() {
			for range time.Tick(*status) {
				owned := c.Owned()
				slices.Sort(owned)
				logger.Printf("owns %v, processed %d, refused %d", owned, c.Processed(), c.Refused())
			}
		}()
	}
	logger.Printf("joining group %s on %s", *group, *endpoints)
	if err := m.Run(ctx); err != nil {
		return err
	}
	logger.Printf("left: processed %d, refused %d", c.Processed(), c.Refused())
	return nil
}
