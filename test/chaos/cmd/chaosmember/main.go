// Command chaosmember is a member process for the chaos test: it joins a
// group with the member library and appends what it does to a log file,
// one line an event: "NANOS assigned TOPIC/P TOKEN" at the entry of
// OnAssigned, "NANOS revoked TOPIC/P TOKEN" at the return of OnRevoked,
// "NANOS lost TOPIC/P TOKEN DEADLINE" at the return of OnLost (DEADLINE:
// the instant ownership ended, in nanoseconds), "NANOS work TOPIC/P TOKEN"
// for every owned partition every 50 ms (-work-every), and "NANOS gen G" whenever its
// generation changes. (The test appends "NANOS exit" once it has killed
// the process.) Times are wall-clock nanoseconds: every process of
// the test runs on one machine.
//
// With -groups N the process runs one member in each of N groups, GROUP-0
// to GROUP-(N-1), sharing a connection to each coordinator as members of
// one process do; their partitions are logged as GROUP-I:TOPIC/P, and no
// gen lines are written (the test reads generations from the coordinators).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/regroup-dev/regroup/member"
)

func main() {
	endpoints := flag.String("endpoints", "", "coordinator addresses, comma-separated")
	group := flag.String("group", "chaos", "group")
	topic := flag.String("topic", "orders", "topic")
	instance := flag.String("instance", "", "static instance id")
	logPath := flag.String("log", "", "event log to append to")
	session := flag.Duration("session", 0, "session timeout (0: the library's default)")
	groups := flag.Int("groups", 0, "run a member in each of this many groups, GROUP-0 to GROUP-(N-1) (0: one member, in GROUP)")
	workEvery := flag.Duration("work-every", 50*time.Millisecond, "how often to log a unit of work on every owned partition")
	flag.Parse()
	if *endpoints == "" || *logPath == "" {
		fmt.Fprintln(os.Stderr, "chaosmember: -endpoints and -log are required")
		os.Exit(2)
	}
	f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaosmember:", err)
		os.Exit(1)
	}
	w := &writer{f: f, owned: map[string]int64{}}
	newMember := func(grp, prefix string) *member.Member {
		m, err := member.New(member.Config{
			Endpoints:      strings.Split(*endpoints, ","),
			Group:          grp,
			Topics:         []string{*topic},
			InstanceID:     *instance,
			ClientID:       "chaosmember",
			SessionTimeout: *session,
			Listener: member.ListenerFuncs{
				Assigned: func(_ context.Context, ps []member.Partition) { w.assigned(prefix, ps) },
				Revoked:  func(_ context.Context, ps []member.Partition) { w.released(prefix, "revoked", ps, time.Time{}) },
				Lost: func(ctx context.Context, ps []member.Partition) {
					deadline, _ := ctx.Deadline()
					w.released(prefix, "lost", ps, deadline)
				},
			},
			Logger: hclog.New(&hclog.LoggerOptions{Name: "chaosmember", Level: hclog.LevelFromString(os.Getenv("CHAOS_LOG_LEVEL")), Output: os.Stderr}),
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaosmember:", err)
			os.Exit(2)
		}
		return m
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		for range time.Tick(*workEvery) {
			w.work()
		}
	}()
	if *groups == 0 {
		m := newMember(*group, "")
		go func() {
			gen := int32(-2)
			for c := range m.Changes() {
				if c.Generation != gen {
					gen = c.Generation
					w.line(fmt.Sprintf("gen %d", gen))
				}
			}
		}()
		run(ctx, m)
		return
	}
	var wg sync.WaitGroup
	for i := range *groups {
		grp := fmt.Sprintf("%s-%d", *group, i)
		m := newMember(grp, grp+":")
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx, m)
		}()
	}
	wg.Wait()
}

// run runs m until ctx ends; the process exits if it fails.
func run(ctx context.Context, m *member.Member) {
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "chaosmember:", err)
		os.Exit(1)
	}
}

// writer appends events to the log, each with a single write.
type writer struct {
	mu    sync.Mutex
	f     *os.File
	owned map[string]int64 // "topic/p" -> token
}

func (w *writer) line(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.write(s)
}

func (w *writer) write(s string) {
	if _, err := fmt.Fprintf(w.f, "%d %s\n", time.Now().UnixNano(), s); err != nil {
		fmt.Fprintln(os.Stderr, "chaosmember: writing the log:", err)
		os.Exit(1)
	}
}

// assigned logs ps, their keys prefixed with prefix.
func (w *writer) assigned(prefix string, ps []member.Partition) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		key := fmt.Sprintf("%s%s/%d", prefix, p.Topic, p.Partition)
		w.owned[key] = p.Token
		w.write(fmt.Sprintf("assigned %s %d", key, p.Token))
	}
}

// released logs ps given up (kind revoked or lost), their keys prefixed
// with prefix.
func (w *writer) released(prefix, kind string, ps []member.Partition, deadline time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		key := fmt.Sprintf("%s%s/%d", prefix, p.Topic, p.Partition)
		delete(w.owned, key)
		if kind == "lost" {
			w.write(fmt.Sprintf("lost %s %d %d", key, p.Token, deadline.UnixNano()))
		} else {
			w.write(fmt.Sprintf("%s %s %d", kind, key, p.Token))
		}
	}
}

// work logs one unit of work on every owned partition, in one write.
func (w *writer) work() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.owned) == 0 {
		return
	}
	var b strings.Builder
	now := time.Now().UnixNano()
	for key, tok := range w.owned {
		fmt.Fprintf(&b, "%d work %s %d\n", now, key, tok)
	}
	if _, err := w.f.WriteString(b.String()); err != nil {
		fmt.Fprintln(os.Stderr, "chaosmember: writing the log:", err)
		os.Exit(1)
	}
}
