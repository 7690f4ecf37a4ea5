package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/regroup-dev/regroup/coordinator/shard"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/coordinator/store/etcdstore"
	"github.com/regroup-dev/regroup/coordinator/store/storetest"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// node is one embedded etcd server shared by the tests of this package;
// each test keeps its keys under a prefix of its own.
var node *embedetcd.Node

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "etcdstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	node, err = embedetcd.Start(embedetcd.Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	node.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

func client(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := etcdstore.NewClient([]string{endpoint}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

var prefixes atomic.Int64

// terms opens successive leadership terms under a fresh prefix the way
// coordinators do: each term is a session that wins the election, and a
// new term begins once the previous one's lease is revoked.
type terms struct {
	cli    *clientv3.Client
	prefix string
	sess   *concurrency.Session
}

func newTerms(t *testing.T, cli *clientv3.Client) *terms {
	return &terms{cli: cli, prefix: fmt.Sprintf("/test%d/regroup/v1/", prefixes.Add(1))}
}

func (ts *terms) open(t *testing.T) *etcdstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ts.sess != nil {
		if err := ts.sess.Close(); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := concurrency.NewSession(ts.cli, concurrency.WithTTL(10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	ts.sess = sess
	e := concurrency.NewElection(sess, etcdstore.ElectionPrefix(ts.prefix))
	if err := e.Campaign(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	return etcdstore.New(ts.cli, ts.prefix, etcdstore.Fence{Key: e.Key(), Revision: e.Rev()})
}

func TestContract(t *testing.T) {
	cli := client(t, node.Endpoint())
	storetest.Run(t, storetest.Backend{
		Fresh: func(t *testing.T) (func(*testing.T) store.Store, storetest.Corrupt) {
			ts := newTerms(t, cli)
			return func(t *testing.T) store.Store { return ts.open(t) },
				func(t *testing.T, topic bool, name string, b []byte) {
					key := etcdstore.GroupsPrefix(ts.prefix) + name
					if topic {
						key = etcdstore.TopicsPrefix(ts.prefix) + name
					}
					if _, err := cli.Put(context.Background(), key, string(b)); err != nil {
						t.Fatal(err)
					}
				}
		},
	})
}

// A broken record's error names its etcd key, so that an operator can fix
// or delete it.
func TestBrokenRecordNamesKey(t *testing.T) {
	cli := client(t, node.Endpoint())
	ts := newTerms(t, cli)
	s := ts.open(t)
	key := etcdstore.GroupsPrefix(ts.prefix) + "bad"
	if _, err := cli.Put(context.Background(), key, "\xff\xff"); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Broken["bad"]; err == nil || !strings.Contains(err.Error(), key) {
		t.Fatalf("broken record error %v does not name key %q", err, key)
	}
}

// A write from a term whose election key expired with its lease is fenced,
// even though no other coordinator has been elected yet.
func TestLeaseExpiryFences(t *testing.T) {
	cli := client(t, node.Endpoint())
	prefix := fmt.Sprintf("/test%d/regroup/v1/", prefixes.Add(1))
	ctx := context.Background()
	lease, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	key := etcdstore.ElectionPrefix(prefix) + "/term"
	put, err := cli.Put(ctx, key, "addr", clientv3.WithLease(lease.ID))
	if err != nil {
		t.Fatal(err)
	}
	s := etcdstore.New(cli, prefix, etcdstore.Fence{Key: key, Revision: put.Header.Revision})
	if err := s.PutGroup(ctx, &storev1.GroupRecord{GroupId: "g", Generation: 1}); err != nil {
		t.Fatalf("the live term cannot write: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.PutGroup(ctx, &storev1.GroupRecord{GroupId: "g", Generation: 2})
		if errors.Is(err, store.ErrFenced) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("writes still succeed 60s after the lease's TTL of 1s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.Load(ctx); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("Load after the lease expired: got %v, want store.ErrFenced", err)
	}
}

// A record larger than the cluster's request limit fails with an error
// that says which flag to raise.
func TestRecordTooLarge(t *testing.T) {
	small, err := embedetcd.Start(embedetcd.Config{Dir: t.TempDir(), MaxRequestBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(small.Close)
	cli := client(t, small.Endpoint())
	s := newTerms(t, cli).open(t)
	rec := &storev1.GroupRecord{GroupId: "big", Generation: 1, State: regroupv1.GroupState_GROUP_STATE_STABLE}
	for i := range 200 {
		parts := make([]int32, 500)
		for p := range parts {
			parts[p] = int32(i*500 + p)
		}
		rec.Members = append(rec.Members, &storev1.MemberRecord{
			MemberId:   fmt.Sprintf("m%d", i),
			Assignment: &regroupv1.Assignment{Partitions: []*regroupv1.TopicPartitions{{Topic: "orders", Partitions: parts}}},
		})
	}
	err = s.PutGroup(context.Background(), rec)
	if !errors.Is(err, etcdstore.ErrRecordTooLarge) || !strings.Contains(err.Error(), "--max-request-bytes") {
		t.Fatalf("got %v, want ErrRecordTooLarge naming --max-request-bytes", err)
	}
	if err := s.PutGroup(context.Background(), &storev1.GroupRecord{GroupId: "small", Generation: 1}); err != nil {
		t.Fatalf("a small record after a refused one: %v", err)
	}
}

// WatchTopics calls back once it watches and after every change of the
// registry, whoever made it; LoadTopics reads it, fenced on the term.
func TestWatchTopics(t *testing.T) {
	cli := client(t, node.Endpoint())
	ts := newTerms(t, cli)
	s := ts.open(t)
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.WatchTopics(ctx, func() { changed <- struct{}{} })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wait := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(30 * time.Second):
			t.Fatalf("no call back within 30s %s", what)
		}
	}
	wait("once the watch was set up")
	other := ts.open(t) // another term: another shard's leader writes the registry too
	if err := other.PutTopic(context.Background(), &regroupv1.Topic{Name: "orders", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	wait("after another coordinator put a topic")
	if _, _, err := s.LoadTopics(context.Background()); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("LoadTopics of a term that ended: got %v, want store.ErrFenced", err)
	}
	topics, broken, err := other.LoadTopics(context.Background())
	if err != nil || len(topics) != 1 || topics[0].GetPartitions() != 4 || len(broken) != 0 {
		t.Fatalf("LoadTopics = %v, %v, %v; want orders with 4 partitions", topics, broken, err)
	}
	if _, err := cli.Put(context.Background(), etcdstore.TopicsPrefix(ts.prefix)+"bad", "\xff\xff"); err != nil {
		t.Fatal(err)
	}
	wait("after a broken record was put")
	if _, broken, err := other.LoadTopics(context.Background()); err != nil || broken["bad"] == nil {
		t.Fatalf("LoadTopics = broken %v, %v; want the record of bad broken", broken, err)
	}
}

// The number of shards is stored at a cluster's first start and never
// changes: a coordinator started with another count is refused with both
// counts named, and a cluster that holds groups without a count keeps one.
func TestShards(t *testing.T) {
	cli := client(t, node.Endpoint())
	ctx := context.Background()
	fresh := func() string { return fmt.Sprintf("/test%d/regroup/v1/", prefixes.Add(1)) }

	// A new cluster asked for no count gets DefaultShards.
	prefix := fresh()
	if n, err := etcdstore.Shards(ctx, cli, prefix, 0); err != nil || n != etcdstore.DefaultShards {
		t.Fatalf("a new cluster taken as it is: %d, %v; want %d shards", n, err, etcdstore.DefaultShards)
	}

	// A coordinator of one shard stores the count: a later one of several
	// must not serve the same groups under other keys.
	prefix = fresh()
	if n, err := etcdstore.Shards(ctx, cli, prefix, 1); err != nil || n != 1 {
		t.Fatalf("a new cluster of one shard: %d, %v; want 1 shard", n, err)
	}
	for _, want := range []int{8, 0} {
		if n, err := etcdstore.Shards(ctx, cli, prefix, want); (want == 0) != (err == nil) || (err == nil && n != 1) ||
			(err != nil && !strings.Contains(err.Error(), "has 1 shards")) {
			t.Fatalf("%d shards after a one-shard coordinator started: %d, %v; want 1 for 0, refused otherwise", want, n, err)
		}
	}

	prefix = fresh()
	if n, err := etcdstore.Shards(ctx, cli, prefix, 8); err != nil || n != 8 {
		t.Fatalf("first start with 8 shards: %d, %v", n, err)
	}
	for _, want := range []int{8, 0} {
		if n, err := etcdstore.Shards(ctx, cli, prefix, want); err != nil || n != 8 {
			t.Fatalf("a later start with %d shards: %d, %v; want 8", want, n, err)
		}
	}
	if _, err := etcdstore.Shards(ctx, cli, prefix, 4); err == nil || !strings.Contains(err.Error(), "has 8 shards") || !strings.Contains(err.Error(), "--shards 8") {
		t.Fatalf("start with 4 shards of a cluster of 8: got %v, want an error naming 8", err)
	}

	// A coordinator that knows no shards campaigns in the one-shard
	// election and stores nothing: the cluster keeps one shard.
	prefix = fresh()
	if _, err := cli.Put(ctx, etcdstore.ElectionPrefix(prefix)+"/old", "addr"); err != nil {
		t.Fatal(err)
	}
	if _, err := etcdstore.Shards(ctx, cli, prefix, 4); err == nil || !strings.Contains(err.Error(), "has 1 shards") {
		t.Fatalf("4 shards while an older coordinator campaigns: got %v, want refused", err)
	}

	prefix = fresh()
	if _, err := cli.Put(ctx, etcdstore.GroupsPrefix(prefix)+"g", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := etcdstore.Shards(ctx, cli, prefix, 64); err == nil || !strings.Contains(err.Error(), "has 1 shards") {
		t.Fatalf("64 shards for a cluster that serves groups with one: got %v, want refused", err)
	}

	prefix = fresh()
	if _, err := cli.Put(ctx, etcdstore.ShardsKey(prefix), "4 shards"); err != nil {
		t.Fatal(err)
	}
	if _, err := etcdstore.Shards(ctx, cli, prefix, 2); err == nil || !strings.Contains(err.Error(), "not a positive number") {
		t.Fatalf("a count that is not a number: got %v", err)
	}
}

// The store of a shard's term loads only the groups of that shard.
func TestOfShardLoadsItsGroups(t *testing.T) {
	cli := client(t, node.Endpoint())
	prefix := fmt.Sprintf("/test%d/regroup/v1/", prefixes.Add(1))
	key := etcdstore.ShardElectionPrefix(prefix, 0) + "/term"
	put, err := cli.Put(context.Background(), key, "addr")
	if err != nil {
		t.Fatal(err)
	}
	s := etcdstore.New(cli, prefix, etcdstore.Fence{Key: key, Revision: put.Header.Revision})
	// Enough groups that a shard's records take several reads
	// (shardReadBatch).
	const shards = 2
	want := map[int][]string{}
	for i := range 250 {
		id := fmt.Sprint("group-", i)
		if err := s.PutGroup(context.Background(), &storev1.GroupRecord{GroupId: id, Generation: 1}); err != nil {
			t.Fatal(err)
		}
		sh := shard.Of(id, shards)
		want[sh] = append(want[sh], id)
	}
	for i := range shards {
		snap, err := s.OfShard(i, shards).Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// A coordinator that knows no shards campaigns: the shards'
			// terms are fenced.
			if _, err := cli.Put(context.Background(), etcdstore.ElectionPrefix(prefix)+"/old", "addr"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.OfShard(i, shards).Load(context.Background()); !errors.Is(err, store.ErrFenced) {
				t.Errorf("a shard's load while a one-shard coordinator campaigns: got %v, want store.ErrFenced", err)
			}
			if _, err := cli.Delete(context.Background(), etcdstore.ElectionPrefix(prefix)+"/old"); err != nil {
				t.Fatal(err)
			}
		}
		var have []string
		for _, rec := range snap.Groups {
			have = append(have, rec.GetGroupId())
		}
		slices.Sort(have)
		slices.Sort(want[i])
		if !slices.Equal(have, want[i]) {
			t.Errorf("shard %d loaded %v, want %v", i, have, want[i])
		}
	}
}
