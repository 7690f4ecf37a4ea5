package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/examples/pmq/internal/consumer"
	"github.com/regroup-dev/regroup/member"
)

// inproc is a consumer running in this process, for the benchmarks.
type inproc struct {
	cancel context.CancelFunc
	done   chan error
}

// inprocConfig is what the benchmark's consumers share.
type inprocConfig struct {
	db        *sql.DB
	endpoints []string
	group     string
	topic     string
	assignor  string
	batch     int
	work      time.Duration
	poll      time.Duration
}

// startInproc starts a consumer named name as a member of the group.
func startInproc(cfg inprocConfig, name string) (*inproc, error) {
	a, err := assignor.Lookup(cfg.assignor)
	if err != nil {
		return nil, err
	}
	c := consumer.New(consumer.Config{DB: cfg.db, Group: cfg.group, Topic: cfg.topic, Name: name, Batch: cfg.batch, Work: cfg.work, Poll: cfg.poll})
	m, err := member.New(member.Config{
		Endpoints: cfg.endpoints,
		Group:     cfg.group,
		Topics:    []string{cfg.topic},
		Assignors: []assignor.Assignor{a},
		ClientID:  "pmq-bench",
		Listener:  c,
		Logger:    hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Error}),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &inproc{cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- m.Run(ctx) }()
	return p, nil
}

// stop leaves the group (revoking first) and waits for Run to return.
func (p *inproc) stop() error {
	p.cancel()
	select {
	case err := <-p.done:
		return err
	case <-time.After(60 * time.Second):
		return fmt.Errorf("a consumer did not stop within 60 s")
	}
}
