// Package etcdstore is the store.Store over etcd, through
// go.etcd.io/etcd/client/v3. It is the production store, whether the etcd
// cluster is external or embedded in `regroup serve`.
//
// # Key layout
//
// Every key lives under a prefix, DefaultPrefix unless configured; the
// version in it changes if the layout ever does:
//
//	/regroup/v1/groups/<group id>   a storev1.GroupRecord (protobuf), tombstones included
//	/regroup/v1/topics/<name>       a regroupv1.Topic (protobuf)
//	/regroup/v1/leader/<lease id>   the coordinators' election (concurrency.Election);
//	                                the value is a coordinator's advertised address
//	/regroup/v1/shards              the number of shards, in decimal (see Shards)
//	/regroup/v1/shards/<i>/leader/<lease id>
//	                                the election of shard i's leader
//	/regroup/v1/coordinators/<lease id>
//	                                the live coordinators of a cluster of several
//	                                shards, each on its own lease; the value is
//	                                its advertised address
//
// A cluster of several shards keeps its groups under the same keys: the
// shard of a group is shard.Of(id, count), and the store of shard i's term
// reads and writes only the groups of shard i, fenced on that shard's
// election key; its load reads every group's key but only shard i's
// records.
//
// # Fencing
//
// A Store belongs to one leadership term, named by a Fence: the elected
// coordinator's election key and that key's creation revision. Every read
// and write is a single transaction guarded by "the key still has this
// creation revision". Once the term's lease has expired or been revoked
// the key is gone (a successor's key has another revision), so a deposed
// coordinator's write fails with store.ErrFenced and it must stop serving.
//
// # Record size
//
// A group record is written in one request. etcd refuses requests above
// its --max-request-bytes (1.5 MiB by default); a group of 2,000 members
// over 1,000,000 partitions needs about 8 MiB. The embedded etcd of
// `regroup serve` accepts 32 MiB; an external cluster must be started with
// a large enough --max-request-bytes, and a write that is too large fails
// with ErrRecordTooLarge, which says so.
package etcdstore

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup/coordinator/shard"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/internal/parallel"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// DefaultPrefix is the prefix of every key Regroup keeps in etcd.
const DefaultPrefix = "/regroup/v1/"

// MaxSendBytes is the largest request the client made by NewClient sends;
// the etcd server's --max-request-bytes decides what it accepts.
const MaxSendBytes = 64 << 20

// ErrRecordTooLarge is returned (wrapped, with the sizes) by a write that
// etcd refused as too large.
var ErrRecordTooLarge = errors.New("regroup: etcdstore: record larger than the etcd cluster accepts in one request")

// GroupsPrefix returns the prefix of the group records under prefix.
func GroupsPrefix(prefix string) string { return prefix + "groups/" }

// TopicsPrefix returns the prefix of the topics under prefix.
func TopicsPrefix(prefix string) string { return prefix + "topics/" }

// ElectionPrefix returns the prefix of the coordinators' election under
// prefix, for concurrency.NewElection.
func ElectionPrefix(prefix string) string { return prefix + "leader" }

// ShardElectionPrefix returns the prefix of the election of shard i's
// leader under prefix, in a cluster of several shards.
func ShardElectionPrefix(prefix string, i int) string {
	return fmt.Sprintf("%s%d/leader", ShardElectionsPrefix(prefix), i)
}

// ShardElectionsPrefix returns the prefix of every shard's election under
// prefix.
func ShardElectionsPrefix(prefix string) string { return prefix + "shards/" }

// CoordinatorsPrefix returns the prefix of the registry of live
// coordinators under prefix.
func CoordinatorsPrefix(prefix string) string { return prefix + "coordinators/" }

// ShardsKey returns the key that holds the number of shards under prefix.
func ShardsKey(prefix string) string { return prefix + "shards" }

// DefaultShards is the number of shards of a new cluster when its first
// coordinator asks for none: enough that a cluster grows to a few dozen
// coordinators, each leading its share, while one coordinator alone leads
// every shard at little cost.
const DefaultShards = 64

// ErrShardCount is wrapped by the errors of Shards that retrying cannot
// fix: the cluster's count is not the one asked for, or not a number.
var ErrShardCount = errors.New("the number of shards does not fit")

// Shards returns the number of shards of the cluster under prefix (""
// means DefaultPrefix), storing it at the cluster's first start: the count
// never changes, since it decides which shard every group belongs to, and
// coordinators of different counts would serve the same group at once.
// want 0 takes the cluster's count (DefaultShards for a new cluster). A cluster that
// stores no count yet (made before shards existed) stores 1 if it holds
// groups or a coordinator campaigns in its one-shard election, so that
// they stay where they are. It fails, naming both counts, if want is not
// the cluster's count.
func Shards(ctx context.Context, cli *clientv3.Client, prefix string, want int) (int, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if want < 0 {
		return 0, fmt.Errorf("regroup: %w: %d shards: a cluster has at least one", ErrShardCount, want)
	}
	key := ShardsKey(prefix)
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("regroup: reading the number of shards at %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		// Store want (DefaultShards for 0) if the cluster is new; 1 if it already
		// serves groups with one shard; whatever another coordinator stored
		// first otherwise.
		put, err := cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
			noKeysUnder(GroupsPrefix(prefix)), noKeysUnder(ElectionPrefix(prefix)+"/"),
		).Then(clientv3.OpPut(key, strconv.Itoa(cmp.Or(want, DefaultShards)))).Else(
			clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)},
				[]clientv3.Op{clientv3.OpPut(key, "1")}, nil),
			clientv3.OpGet(key),
		).Commit()
		if err != nil {
			return 0, fmt.Errorf("regroup: storing the number of shards at %s: %w", key, err)
		}
		if put.Succeeded {
			return cmp.Or(want, DefaultShards), nil
		}
		resp = (*clientv3.GetResponse)(put.Responses[1].GetResponseRange())
	}
	have, err := strconv.Atoi(string(resp.Kvs[0].Value))
	if err != nil || have < 1 {
		return 0, fmt.Errorf("regroup: %w: the number of shards at etcd key %s is %q, not a positive number; put back the count the cluster was started with", ErrShardCount, key, resp.Kvs[0].Value)
	}
	if want != 0 && have != want {
		return 0, fmt.Errorf("regroup: %w: this cluster (%s in etcd) has %d shards, chosen at its first start, and this coordinator was started with %d; start it with --shards %d or without --shards (a group's shard depends on the count, so it never changes)",
			ErrShardCount, prefix, have, want, have)
	}
	return have, nil
}

// noKeysUnder compares true while no key starts with pfx.
func noKeysUnder(pfx string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(pfx), "=", 0).WithRange(clientv3.GetPrefixRangeEnd(pfx))
}

// NewClient returns an etcd client for endpoints (e.g.
// "http://10.0.0.1:2379"), set up for Regroup: it sends records up to
// MaxSendBytes and gives up dialing after 5 s per attempt. Calls block
// until etcd answers or their context ends.
func NewClient(endpoints []string, log *zap.Logger) (*clientv3.Client, error) {
	return NewTLSClient(endpoints, nil, log)
}

// NewTLSClient is NewClient over TLS when tlsConfig is set: its RootCAs
// verify etcd's certificates and its Certificates are the client's.
func NewTLSClient(endpoints []string, tlsConfig *tls.Config, log *zap.Logger) (*clientv3.Client, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          5 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		MaxCallSendMsgSize:   MaxSendBytes,
		TLS:                  tlsConfig,
		Logger:               log,
	})
	if err != nil {
		return nil, fmt.Errorf("regroup: etcd client for %s: %w", strings.Join(endpoints, ","), err)
	}
	return cli, nil
}

// Fence names a leadership term: the election key of the elected
// coordinator and the key's creation revision.
type Fence struct {
	Key      string
	Revision int64
}

// Store is the store.Store of one leadership term. Its methods are safe for
// concurrent use.
type Store struct {
	cli    *clientv3.Client
	prefix string
	fence  Fence
	// shard and shards: the store holds only the groups of shard of
	// shards; shards is 0 for every group.
	shard, shards int
}

var (
	_ store.Store        = (*Store)(nil)
	_ store.TopicWatcher = (*Store)(nil)
)

// New returns the Store of the term f, keeping its keys under prefix
// ("" means DefaultPrefix) through cli.
func New(cli *clientv3.Client, prefix string, f Fence) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{cli: cli, prefix: prefix, fence: f}
}

// OfShard returns the Store of the same term that holds only the groups of
// shard i of n (see coordinator/shard): Load leaves the others out. Topics
// are shared by every shard.
func (s *Store) OfShard(i, n int) *Store {
	c := *s
	c.shard, c.shards = i, n
	return &c
}

// holds reports whether group id belongs to the store's shard.
func (s *Store) holds(id string) bool {
	return s.shards == 0 || shard.Of(id, s.shards) == s.shard
}

// guards are the conditions of every read and write of the term: its
// election key still has its creation revision and, for a shard's term,
// no coordinator campaigns in the one-shard election (a coordinator of an
// older version, which knows no shards, would serve every group).
func (s *Store) guards() []clientv3.Cmp {
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.fence.Key), "=", s.fence.Revision)}
	if s.shards > 0 {
		cmps = append(cmps, noKeysUnder(ElectionPrefix(s.prefix)+"/"))
	}
	return cmps
}

// Load implements store.Store: it reads every group and topic at one
// revision, in one transaction fenced on the term. The Store of one shard
// of several (OfShard) reads the groups' keys and the topics first, then
// only its own groups' records, in fenced transactions of at most
// shardReadBatch keys: the leader of every shard would otherwise read
// every record. Its records may be read at a later revision than the keys,
// which changes nothing: they change only through the term being loaded.
func (s *Store) Load(ctx context.Context) (*store.Snapshot, error) {
	gp, tp := GroupsPrefix(s.prefix), TopicsPrefix(s.prefix)
	groups := []clientv3.OpOption{clientv3.WithPrefix()}
	if s.shards > 0 {
		groups = append(groups, clientv3.WithKeysOnly())
	}
	resp, err := s.fenced(ctx, clientv3.OpGet(gp, groups...), clientv3.OpGet(tp, clientv3.WithPrefix()))
	if err != nil {
		return nil, err
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if s.shards > 0 {
		if kvs, err = s.readShard(ctx, kvs, gp); err != nil {
			return nil, err
		}
	}
	snap := &store.Snapshot{Broken: map[string]error{}, BrokenTopics: map[string]error{}, GroupKeys: gp, TopicKeys: tp}
	recs := make([]*storev1.GroupRecord, len(kvs))
	errs := make([]error, len(kvs))
	// Decoding dominates a large load: spread it over the cores.
	parallel.ForEach(len(kvs), func(i int) {
		key := string(kvs[i].Key)
		id := strings.TrimPrefix(key, gp)
		rec := &storev1.GroupRecord{}
		err := proto.Unmarshal(kvs[i].Value, rec)
		if err == nil && rec.GetGroupId() != id {
			err = fmt.Errorf("the record names group %q", rec.GetGroupId())
		}
		if err != nil {
			errs[i] = fmt.Errorf("regroup: group %q: the record at etcd key %q cannot be decoded (%v); fix or delete the key to serve the group again", id, key, err)
			return
		}
		recs[i] = rec
	})
	for i, rec := range recs {
		if errs[i] != nil {
			snap.Broken[strings.TrimPrefix(string(kvs[i].Key), gp)] = errs[i]
			continue
		}
		snap.Groups = append(snap.Groups, rec)
	}
	snap.Topics, snap.BrokenTopics = decodeTopics(resp.Responses[1].GetResponseRange().GetKvs(), tp)
	return snap, nil
}

// shardReadBatch is the most keys a shard's load reads in one
// transaction, within etcd's --max-txn-ops (128 by default).
const shardReadBatch = 100

// readShard returns the records of the keys (read without values, under
// gp) whose groups belong to the store's shard, in the order of keys.
func (s *Store) readShard(ctx context.Context, keys []*mvccpb.KeyValue, gp string) ([]*mvccpb.KeyValue, error) {
	var mine []clientv3.Op
	for _, kv := range keys {
		if s.holds(strings.TrimPrefix(string(kv.Key), gp)) {
			mine = append(mine, clientv3.OpGet(string(kv.Key)))
		}
	}
	var kvs []*mvccpb.KeyValue
	for batch := range slices.Chunk(mine, shardReadBatch) {
		resp, err := s.fenced(ctx, batch...)
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Responses {
			kvs = append(kvs, r.GetResponseRange().GetKvs()...)
		}
	}
	return kvs, nil
}

// fenced runs the reads ops in one transaction guarded by the term.
func (s *Store) fenced(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	resp, err := s.cli.Txn(ctx).If(s.guards()...).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("regroup: reading %s from etcd: %w", s.prefix, err)
	}
	if !resp.Succeeded {
		return nil, store.ErrFenced
	}
	return resp, nil
}

// decodeTopics decodes the topic records kvs, whose keys are under tp: the
// topics, and why each record that cannot be used cannot.
func decodeTopics(kvs []*mvccpb.KeyValue, tp string) ([]*regroupv1.Topic, map[string]error) {
	var topics []*regroupv1.Topic
	broken := map[string]error{}
	for _, kv := range kvs {
		name := strings.TrimPrefix(string(kv.Key), tp)
		t := &regroupv1.Topic{}
		err := proto.Unmarshal(kv.Value, t)
		if err == nil && t.GetName() != name {
			err = fmt.Errorf("the record names topic %q", t.GetName())
		}
		if err != nil {
			broken[name] = fmt.Errorf("regroup: topic %q: the record at etcd key %q cannot be decoded (%v); put the topic again (regroup topics put) or delete the key", name, kv.Key, err)
			continue
		}
		topics = append(topics, t)
	}
	return topics, broken
}

// LoadTopics implements store.TopicWatcher: it reads the registry in one
// transaction fenced on the term.
func (s *Store) LoadTopics(ctx context.Context) ([]*regroupv1.Topic, map[string]error, error) {
	tp := TopicsPrefix(s.prefix)
	resp, err := s.fenced(ctx, clientv3.OpGet(tp, clientv3.WithPrefix()))
	if err != nil {
		return nil, nil, err
	}
	topics, broken := decodeTopics(resp.Responses[0].GetResponseRange().GetKvs(), tp)
	return topics, broken, nil
}

// watchRetry is how long WatchTopics waits before it watches again after
// its watch broke (etcd lost its leader, the revision was compacted).
const watchRetry = 500 * time.Millisecond

// WatchTopics implements store.TopicWatcher with an etcd watch on the
// registry's keys. It calls changed once the watch is set up, so that a
// change made between the caller's last read and the watch is not missed.
func (s *Store) WatchTopics(ctx context.Context, changed func()) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := s.cli.Watch(wctx, TopicsPrefix(s.prefix), clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		for resp := range wch {
			if resp.Err() != nil {
				break
			}
			if resp.Created || len(resp.Events) > 0 {
				changed()
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(watchRetry):
		}
	}
}

// PutGroup implements store.Store.
func (s *Store) PutGroup(ctx context.Context, rec *storev1.GroupRecord) error {
	b, err := proto.Marshal(rec)
	if err != nil {
		return fmt.Errorf("regroup: encoding the record of group %q: %w", rec.GetGroupId(), err)
	}
	key := GroupsPrefix(s.prefix) + rec.GetGroupId()
	if err := s.write(ctx, clientv3.OpPut(key, string(b))); err != nil {
		if tooLarge(err) {
			return fmt.Errorf("%w: the record of group %q is %d bytes (%v); start etcd with --max-request-bytes above %d, or split the group",
				ErrRecordTooLarge, rec.GetGroupId(), len(b), err, len(b)+64<<10)
		}
		return fmt.Errorf("regroup: writing the record of group %q: %w", rec.GetGroupId(), err)
	}
	return nil
}

// DeleteGroup implements store.Store.
func (s *Store) DeleteGroup(ctx context.Context, groupID string) error {
	if err := s.write(ctx, clientv3.OpDelete(GroupsPrefix(s.prefix)+groupID)); err != nil {
		return fmt.Errorf("regroup: deleting the record of group %q: %w", groupID, err)
	}
	return nil
}

// PutTopic implements store.Store.
func (s *Store) PutTopic(ctx context.Context, t *regroupv1.Topic) error {
	b, err := proto.Marshal(t)
	if err != nil {
		return fmt.Errorf("regroup: encoding topic %q: %w", t.GetName(), err)
	}
	if err := s.write(ctx, clientv3.OpPut(TopicsPrefix(s.prefix)+t.GetName(), string(b))); err != nil {
		return fmt.Errorf("regroup: writing topic %q: %w", t.GetName(), err)
	}
	return nil
}

// DeleteTopic implements store.Store.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	if err := s.write(ctx, clientv3.OpDelete(TopicsPrefix(s.prefix)+name)); err != nil {
		return fmt.Errorf("regroup: deleting topic %q: %w", name, err)
	}
	return nil
}

// write runs op in a transaction fenced on the term. A write is the whole
// new value of one key, so sending it again after a failure that left its
// fate unknown (etcd's leader changed, a member went away) is harmless:
// write retries those until ctx ends.
func (s *Store) write(ctx context.Context, op clientv3.Op) error {
	backoff := 20 * time.Millisecond
	for {
		resp, err := s.cli.Txn(ctx).If(s.guards()...).Then(op).Commit()
		if err == nil {
			if !resp.Succeeded {
				return store.ErrFenced
			}
			return nil
		}
		if !transient(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// codeOf returns the gRPC code of an error from the etcd client.
func codeOf(err error) codes.Code {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code()
	}
	return status.Code(err)
}

// transient reports whether err says etcd could not serve the request right
// now (no leader, leader changed, a member unreachable, a timeout).
func transient(err error) bool {
	return codeOf(err) == codes.Unavailable
}

func tooLarge(err error) bool {
	return errors.Is(err, rpctypes.ErrRequestTooLarge) || codeOf(err) == codes.ResourceExhausted
}
