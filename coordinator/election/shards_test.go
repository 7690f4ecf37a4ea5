package election_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/coordinator/election"
	"github.com/regroup-dev/regroup/coordinator/shard"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
)

// TestShardsElectAndFenceApart elects a leader for each of two shards at
// once: each term writes and loads only its shard's groups, and the end of
// one shard's term fences that shard's writes, not the other's.
func TestShardsElectAndFenceApart(t *testing.T) {
	eps := embedetcd.Endpoints(startEtcd(t, 1))
	cli, err := etcdstore.NewClient(eps, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	if _, err := election.New(election.Config{Client: cli, TTL: testTTL, Shard: 2, Shards: 2}); err == nil {
		t.Error("an Elector for shard 2 of 2 was made")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	terms := make([]interface {
		Store() store.Store
		Resign(context.Context) error
	}, 2)
	for i := range terms {
		e, err := election.New(election.Config{Client: cli, TTL: testTTL, Shard: i, Shards: 2, Logger: testLogger(t, fmt.Sprint("shard", i))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		term, err := e.Campaign(ctx, fmt.Sprint("c", i))
		if err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
		terms[i] = term
	}
	// One group of each shard, each written by its shard's term.
	ids := map[int]string{}
	for i := 0; len(ids) < 2; i++ {
		id := fmt.Sprint("g", i)
		if _, ok := ids[shard.Of(id, 2)]; !ok {
			ids[shard.Of(id, 2)] = id
		}
	}
	for i, term := range terms {
		if err := term.Store().PutGroup(ctx, &storev1.GroupRecord{GroupId: ids[i], Generation: 1}); err != nil {
			t.Fatalf("shard %d's leader writes its group: %v", i, err)
		}
	}
	for i, term := range terms {
		snap, err := term.Store().Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Groups) != 1 || snap.Groups[0].GetGroupId() != ids[i] {
			t.Errorf("shard %d loaded %v, want only %s", i, snap.Groups, ids[i])
		}
	}
	if err := terms[0].Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := terms[0].Store().PutGroup(ctx, &storev1.GroupRecord{GroupId: ids[0], Generation: 2}); !errors.Is(err, store.ErrFenced) {
		t.Errorf("shard 0's write after its term ended: got %v, want store.ErrFenced", err)
	}
	if err := terms[1].Store().PutGroup(ctx, &storev1.GroupRecord{GroupId: ids[1], Generation: 2}); err != nil {
		t.Errorf("shard 1's write after shard 0's term ended: %v", err)
	}
	if err := terms[1].Resign(ctx); err != nil {
		t.Fatal(err)
	}
}
