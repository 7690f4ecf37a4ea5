// Package coordinator is the driver of the group protocol: it serves the
// Coordinator and Admin gRPC services, runs one coordinator/group state
// machine per group, persists group records through a store.Store before
// replying, and owns the goroutines and timers. It makes no protocol
// decision of its own.
//
// Several coordinators may share a store: an Elector (coordinator/election
// over etcd) elects one, which loads every group and serves them for as
// long as its term lasts, writing through a store fenced on the term. It
// stops serving at once when the term may have ended (its lease may have
// expired, or a write was fenced), and the others answer group calls with
// NOT_COORDINATOR and the leader's address, and forward Admin calls to it.
package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/internal/parallel"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Config configures a Server. The zero value of each field has the meaning
// given in its comment.
type Config struct {
	// Group holds the protocol settings; the zero value means
	// group.DefaultConfig().
	Group group.Config
	// Logger receives structured logs; nil means hclog's default logger.
	Logger hclog.Logger
	// WriteTimeout bounds each store write; zero means 5 s.
	WriteTimeout time.Duration
	// Metrics receives measurements; nil means none are taken.
	Metrics Metrics
	// Address is the address members and other coordinators reach this
	// one at: an elected Server announces it as the leader's, and
	// DescribeCluster shows it. "" means unknown.
	Address string
}

// Server runs the groups of one coordinator. A Server made by New leads at
// once; one made by NewElected serves groups only while its Elector has
// elected it, and otherwise answers group calls with NOT_COORDINATOR and
// forwards Admin calls to the leader. Its methods are safe for concurrent
// use.
type Server struct {
	regroupv1.UnimplementedCoordinatorServer
	regroupv1.UnimplementedAdminServer

	cfg     Config
	log     hclog.Logger
	clock   func() time.Time
	ids     group.IDSource
	reqs    atomic.Uint64
	elector Elector // nil for a Server made by New
	fwd     forwarder

	// cur is the tenure being served; nil while not leading.
	cur atomic.Pointer[tenure]

	// mu guards closed, the changes of cur, and the current tenure's
	// registry and broken groups; it serializes topic changes. Lock order:
	// mu, then an actor's mu, then a tenure's tombMu.
	mu        sync.Mutex
	closed    bool
	closing   chan struct{} // closed by Close
	closeOnce sync.Once

	watchers watchers // WatchGroup streams
}

func newServer(cfg Config) (*Server, error) {
	if cfg.Group == (group.Config{}) {
		cfg.Group = group.DefaultConfig()
	}
	if err := cfg.Group.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.Default()
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	return &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		clock:   time.Now,
		ids:     randomIDs{},
		closing: make(chan struct{}),
	}, nil
}

// New loads every group and topic from st and returns a Server that serves
// them at once, for as long as it runs: a single coordinator. If a write
// is fenced (another coordinator took over st), it stops serving for good.
func New(ctx context.Context, cfg Config, st store.Store) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	t, err := s.load(ctx, st, nil)
	if err != nil {
		return nil, err
	}
	s.cur.Store(t)
	return s, nil
}

// load reads the state of a term from st and restores every group. The
// groups' timers run from now on; the caller installs the tenure or ends
// it.
func (s *Server) load(ctx context.Context, st store.Store, term Term) (*tenure, error) {
	t := newTenure(st, term, s.clock())
	start := s.clock()
	snap, err := st.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("regroup: loading groups and topics: %w", err)
	}
	for _, tp := range snap.Topics {
		t.registry[tp.GetName()] = tp.GetPartitions()
	}
	for id, err := range snap.Broken {
		s.log.Error("group record cannot be decoded; the group is refused until it is fixed or deleted", "group", id, "error", err)
		t.broken[id] = err
	}
	// Restoring is pure and independent per group: spread it over the
	// cores, then start the groups one by one.
	type restored struct {
		g   *group.Group
		out group.Output
		err error
	}
	res := make([]restored, len(snap.Groups))
	now := s.clock()
	parallel.ForEach(len(snap.Groups), func(i int) {
		if rec := snap.Groups[i]; rec.GetState() != regroupv1.GroupState_GROUP_STATE_DEAD {
			res[i].g, res[i].out, res[i].err = group.Restore(rec, s.cfg.Group, s.ids, t.registry, now)
		}
	})
	loaded := 0
	for i, rec := range snap.Groups {
		if rec.GetState() == regroupv1.GroupState_GROUP_STATE_DEAD {
			t.tombstones[rec.GetGroupId()] = rec
			continue
		}
		g, out, err := res[i].g, res[i].out, res[i].err
		if err != nil {
			s.log.Error("group record is inconsistent; the group is refused until it is fixed or deleted", "group", rec.GetGroupId(), "error", err)
			t.broken[rec.GetGroupId()] = err
			continue
		}
		a := s.newActor(t, g)
		t.groups.Store(g.ID(), a)
		a.mu.Lock()
		a.apply(out)
		a.mu.Unlock()
		loaded++
	}
	s.log.Info("loaded state", "groups", loaded, "tombstones", len(t.tombstones), "broken", len(t.broken),
		"topics", len(t.registry), "duration", s.clock().Sub(start))
	return t, nil
}

// Register registers the Coordinator and Admin services on srv.
func (s *Server) Register(srv grpc.ServiceRegistrar) {
	regroupv1.RegisterCoordinatorServer(srv, s)
	regroupv1.RegisterAdminServer(srv, s)
}

// Close answers every waiting request with COORDINATOR_NOT_AVAILABLE, so
// that members move on to another coordinator, and stops all timers. The
// Server refuses requests afterwards, and Run resigns and returns.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	t := s.cur.Swap(nil)
	if t != nil {
		t.ended.Store(true)
	}
	s.mu.Unlock()
	s.closeOnce.Do(func() { close(s.closing) })
	err := regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "the coordinator is shutting down; retry on another one")
	s.watchers.close(err)
	if t != nil {
		t.end(err)
	}
	s.fwd.close()
}

// randomIDs mints member ids "PREFIX-UUID" from crypto/rand.
type randomIDs struct{}

func (randomIDs) MemberID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	id := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	if prefix == "" {
		return id
	}
	// Keep the whole id within the protocol's length limit.
	if max := group.MaxIDLength - len(id) - 1; len(prefix) > max {
		prefix = prefix[:max]
	}
	return prefix + "-" + id
}

// lookup finds a group's actor in the tenure being served. With create, a
// missing group is created (continuing a tombstone's generation if there
// is one). It returns NOT_COORDINATOR (or COORDINATOR_NOT_AVAILABLE) when
// this coordinator does not lead.
func (s *Server) lookup(id string, create bool) (*actor, error) {
	t, err := s.serving()
	if err != nil {
		return nil, err
	}
	if v, ok := t.groups.Load(id); ok {
		return v.(*actor), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.Load() != t {
		return nil, s.notLeading()
	}
	if err := t.broken[id]; err != nil {
		return nil, regroup.Errorf(regroup.CodeCoordinatorNotAvailable, "group %q is unavailable: %v", id, err)
	}
	if v, ok := t.groups.Load(id); ok {
		return v.(*actor), nil
	}
	if !create {
		return nil, nil
	}
	var g *group.Group
	t.tombMu.Lock()
	tomb := t.tombstones[id]
	t.tombMu.Unlock()
	if tomb != nil {
		restored, _, err := group.Restore(tomb, s.cfg.Group, s.ids, t.registry, s.clock())
		if err != nil {
			return nil, err
		}
		g = restored
	} else {
		g = group.New(id, s.cfg.Group, s.ids, t.registry, s.clock())
	}
	a := s.newActor(t, g)
	t.groups.Store(id, a)
	return a, nil
}

// forget drops a Dead group, keeping its tombstone.
func (t *tenure) forget(a *actor, tomb *storev1.GroupRecord) {
	t.tombMu.Lock()
	defer t.tombMu.Unlock()
	t.groups.CompareAndDelete(tomb.GetGroupId(), a)
	t.tombstones[tomb.GetGroupId()] = tomb
}

// lost drops a group whose write failed; the next request reloads it. A
// fenced write means another coordinator leads: the whole tenure ends.
func (s *Server) lost(a *actor, err error) {
	id := a.g.ID()
	a.t.groups.CompareAndDelete(id, a)
	s.log.Error("group record write failed; dropped the group from memory", "group", id, "error", err)
	if errors.Is(err, store.ErrFenced) {
		// The caller holds the actor's lock, which ending the tenure takes.
		go s.stepDown(a.t, "a write was fenced: another coordinator was elected")
		return
	}
	// Reload it from the store as a new coordinator would, in the
	// background, so that members find it when they retry.
	go s.reload(a.t, id)
}

func (s *Server) reload(t *tenure, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	snap, err := t.st.Load(ctx)
	if err != nil {
		if errors.Is(err, store.ErrFenced) {
			s.stepDown(t, "a read was fenced: another coordinator was elected")
			return
		}
		s.log.Error("reloading group failed; it is created afresh on its next join", "group", id, "error", err)
		return
	}
	for _, rec := range snap.Groups {
		if rec.GetGroupId() != id || rec.GetState() == regroupv1.GroupState_GROUP_STATE_DEAD {
			continue
		}
		s.mu.Lock()
		if s.cur.Load() != t {
			s.mu.Unlock()
			return
		}
		g, out, err := group.Restore(rec, s.cfg.Group, s.ids, t.registry, s.clock())
		if err == nil {
			a := s.newActor(t, g)
			if _, loaded := t.groups.LoadOrStore(id, a); !loaded {
				a.mu.Lock()
				a.apply(out)
				a.mu.Unlock()
			}
		}
		s.mu.Unlock()
	}
}

// persist writes a group's record through its tenure's store.
func (a *actor) persist() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.s.cfg.WriteTimeout)
	defer cancel()
	start := time.Now()
	err := a.t.st.PutGroup(ctx, a.g.Record())
	a.s.cfg.Metrics.StoreWrite(time.Since(start), err)
	return err
}

// observe logs what a step did and passes its events to the metrics and
// the watchers.
func (s *Server) observe(g *group.Group, out group.Output) {
	for _, e := range out.Events {
		s.cfg.Metrics.GroupEvent(g.ID(), e)
		s.watchers.publish(g, s.clock(), e)
		switch e.Kind {
		case group.EventRebalanceStarted:
			s.log.Debug("rebalance started", "group", g.ID(), "cause", e.Detail)
		case group.EventStateChanged:
			s.log.Debug("group state changed", "group", g.ID(), "from", e.From, "to", e.To, "generation", g.Generation())
		case group.EventRebalanceDone:
			r := e.Rebalance
			var dur time.Duration
			if r.GetStart() != nil && r.GetEnd() != nil {
				dur = r.GetEnd().AsTime().Sub(r.GetStart().AsTime())
			}
			s.log.Info("rebalance done", "group", g.ID(), "generation", r.GetGeneration(), "cause", r.GetCause(),
				"duration", dur, "members", len(r.GetMembers()), "partitions_moved", r.GetPartitionsMoved(),
				"partitions_revoked", r.GetPartitionsRevoked(), "partitions_unowned", e.Unowned)
		case group.EventAssignmentRefused:
			s.log.Warn("leader's assignment refused", "group", g.ID(), "leader", e.Member, "reason", e.Detail)
		case group.EventMemberRemoved:
			s.log.Info("member removed", "group", g.ID(), "member", e.Member, "reason", e.Detail)
		case group.EventMemberReplaced:
			s.log.Info("static member replaced without a rebalance", "group", g.ID(), "detail", e.Detail)
		}
	}
}

// hostOf returns the address a request came from.
func hostOf(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}

// run steps an existing (or, with create, new) group with one request and
// returns its reply, retrying if the group was dropped meanwhile. A request
// for a group that does not exist is answered as group.AnswerUnknownGroup
// says.
func (s *Server) run(ctx context.Context, groupID string, create bool, req proto.Message, step func(g *group.Group, now time.Time, id group.ReqID) group.Output) (group.Reply, error) {
	if err := group.ValidateGroupID(groupID); err != nil {
		return group.Reply{}, err
	}
	for {
		a, err := s.lookup(groupID, create)
		if err != nil {
			return group.Reply{}, err
		}
		if a == nil {
			return group.AnswerUnknownGroup(s.cfg.Group, req), nil
		}
		r, err := a.call(ctx, step)
		if errors.Is(err, errRetry) {
			continue
		}
		return r, err
	}
}

// finish reports an RPC to the metrics.
func (s *Server) finish(method string, req proto.Message, start time.Time, err error) {
	code := regroup.CodeOf(rpcerr.FromStatus(err))
	if err != nil && code == "" {
		code = "CANCELED"
	}
	s.cfg.Metrics.Request(method, req, time.Since(start), code)
}

func replyOf[T any](r group.Reply, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, rpcerr.ToStatus(err)
	}
	if r.Err != nil {
		return zero, rpcerr.ToStatus(r.Err)
	}
	msg, ok := r.Msg.(T)
	if !ok {
		return zero, rpcerr.ToStatus(fmt.Errorf("regroup: internal error: reply of type %T", r.Msg))
	}
	return msg, nil
}

// JoinGroup implements the Coordinator service.
func (s *Server) JoinGroup(ctx context.Context, req *regroupv1.JoinGroupRequest) (_ *regroupv1.JoinGroupResponse, err error) {
	defer func(start time.Time) { s.finish("JoinGroup", req, start, err) }(time.Now())
	host := hostOf(ctx)
	r, err := s.run(ctx, req.GetGroupId(), req.GetMemberId() == "", req, func(g *group.Group, now time.Time, id group.ReqID) group.Output {
		return g.Join(now, id, host, req)
	})
	return replyOf[*regroupv1.JoinGroupResponse](r, err)
}

// SyncGroup implements the Coordinator service.
func (s *Server) SyncGroup(ctx context.Context, req *regroupv1.SyncGroupRequest) (_ *regroupv1.SyncGroupResponse, err error) {
	defer func(start time.Time) { s.finish("SyncGroup", req, start, err) }(time.Now())
	r, err := s.run(ctx, req.GetGroupId(), false, req, func(g *group.Group, now time.Time, id group.ReqID) group.Output {
		return g.Sync(now, id, req)
	})
	return replyOf[*regroupv1.SyncGroupResponse](r, err)
}

// Heartbeat implements the Coordinator service.
func (s *Server) Heartbeat(ctx context.Context, req *regroupv1.HeartbeatRequest) (_ *regroupv1.HeartbeatResponse, err error) {
	defer func(start time.Time) { s.finish("Heartbeat", req, start, err) }(time.Now())
	r, err := s.run(ctx, req.GetGroupId(), false, req, func(g *group.Group, now time.Time, id group.ReqID) group.Output {
		return g.Heartbeat(now, id, req)
	})
	return replyOf[*regroupv1.HeartbeatResponse](r, err)
}

// LeaveGroup implements the Coordinator service.
func (s *Server) LeaveGroup(ctx context.Context, req *regroupv1.LeaveGroupRequest) (_ *regroupv1.LeaveGroupResponse, err error) {
	defer func(start time.Time) { s.finish("LeaveGroup", req, start, err) }(time.Now())
	r, err := s.run(ctx, req.GetGroupId(), false, req, func(g *group.Group, now time.Time, id group.ReqID) group.Output {
		return g.Leave(now, id, req)
	})
	return replyOf[*regroupv1.LeaveGroupResponse](r, err)
}

// groupIDs returns the ids of the tenure's groups, sorted.
func (t *tenure) groupIDs() []string {
	var ids []string
	t.groups.Range(func(k, _ any) bool {
		ids = append(ids, k.(string))
		return true
	})
	sort.Strings(ids)
	return ids
}
