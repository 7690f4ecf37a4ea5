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
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/node"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/internal/parallel"
	"github.com/regroup-dev/regroup/internal/rpcerr"
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
	// TermLogger receives the news of the terms' life: campaigning,
	// elected, loaded, resigned, stepped down when asked; nil means
	// Logger. A process that runs a Server per shard logs them at Debug
	// and says in one line which shards it leads.
	TermLogger hclog.Logger
	// WriteTimeout bounds each store write; zero means 5 s.
	WriteTimeout time.Duration
	// Metrics receives measurements; nil means none are taken.
	Metrics Metrics
	// Address is the address members and other coordinators reach this
	// one at: an elected Server announces it as the leader's, and
	// DescribeCluster shows it. "" means unknown.
	Address string
	// PeerTLS secures the calls this coordinator makes to others (Admin
	// calls forwarded to the leader); nil means plaintext. Its client
	// certificate is this coordinator's identity to the others, which
	// take the forwarded caller's identity from it only if their policy
	// gives it the coordinator right (see coordinator/auth).
	PeerTLS *tls.Config
	// Overload says when the coordinator sheds new members and Admin
	// reads (see node.Overload); the zero value never sheds.
	Overload node.Overload
	// Shared, if not nil, is shared with the process's other Servers: their
	// load meter and limits are the process's, and Overload is ignored.
	// nil means this Server is the process's only one.
	Shared *Shared
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
	shared  *Shared
	fwd     forwarder

	// cur is the tenure being served; nil while not leading.
	cur atomic.Pointer[tenure]

	// mu guards closed and the changes of cur. Lock order: mu, then a
	// tenure's mu.
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
	if cfg.TermLogger == nil {
		cfg.TermLogger = cfg.Logger
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	shared := cfg.Shared
	if shared == nil {
		shared = NewShared(cfg.Overload)
	}
	return &Server{
		shared:  shared,
		cfg:     cfg,
		log:     cfg.Logger,
		clock:   time.Now,
		ids:     randomIDs{},
		fwd:     forwarder{tlsConfig: cfg.PeerTLS},
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

// load reads the state of a term from st and starts its node. The groups'
// timers run from now on; the caller installs the tenure or ends it.
func (s *Server) load(ctx context.Context, st store.Store, term Term) (*tenure, error) {
	start := s.clock()
	snap, err := st.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("regroup: loading groups and topics: %w", err)
	}
	t := &tenure{s: s, st: st, term: term, since: s.clock(), part: s.shared.join(), waiters: map[group.ReqID]chan group.Reply{}, done: make(chan struct{})}
	t.box.wake = make(chan struct{}, 1)
	go t.run()
	t.mu.Lock()
	defer t.mu.Unlock()
	n, out := node.New(node.Config{Group: s.cfg.Group, IDs: s.ids, ForEach: parallel.ForEach, Load: s.shared.meter}, snap, s.clock(), t.validUntil())
	t.node = n
	for name, err := range n.BrokenTopics() {
		s.log.Error("topic record cannot be used; the topic is left out of the registry until it is put again or deleted", "topic", name, "error", err)
	}
	for id, err := range n.Broken() {
		s.log.Error("group record cannot be used; the group is refused until it is fixed or deleted", "group", id, "error", err)
	}
	t.apply(out)
	t.part.publish(n.Counts())
	if w, ok := st.(store.TopicWatcher); ok {
		t.followTopics(w)
	}
	s.cfg.TermLogger.Info("loaded state", "groups", len(n.GroupIDs()), "tombstones", n.Tombstones(), "broken", len(n.Broken()),
		"topics", len(n.Registry()), "duration", s.clock().Sub(start))
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
		t.end("the coordinator is shutting down", err)
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

// observe logs an event of a group and passes it to the metrics and the
// watchers.
func (s *Server) observe(g *group.Group, e group.Event) {
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
			"partitions_revoked", r.GetPartitionsRevoked(), "partitions_unowned", e.Unowned, "partitions_lost", r.GetPartitionsLost())
		if unknown := g.UnknownTopics(); len(unknown) > 0 {
			s.log.Warn("members subscribe to topics that are not in the registry: nobody owns their partitions until an operator creates them (regroup topics put)",
				"group", g.ID(), "topics", unknown)
		}
	case group.EventAssignmentRefused:
		s.log.Warn("leader's assignment refused", "group", g.ID(), "leader", e.Member, "reason", e.Detail)
	case group.EventMemberRemoved:
		s.log.Info("member removed", "group", g.ID(), "member", e.Member, "reason", e.Detail)
	case group.EventMemberReplaced:
		s.log.Info("static member replaced without a rebalance", "group", g.ID(), "detail", e.Detail)
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

// call hands a request to the tenure being served and waits for its
// answer; it returns NOT_COORDINATOR (or COORDINATOR_NOT_AVAILABLE) when
// this coordinator does not lead.
func (s *Server) call(ctx context.Context, msg proto.Message) (group.Reply, error) {
	arrived := time.Now()
	host := hostOf(ctx)
	for {
		t, err := s.serving()
		if err != nil {
			return group.Reply{}, err
		}
		r, err := t.call(ctx, host, arrived, node.Request{Msg: msg})
		if errors.Is(err, errEnded) {
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
	if code == regroup.CodeCoordinatorOverloaded {
		s.cfg.Metrics.Shed(method)
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
	r, err := s.call(ctx, req)
	return replyOf[*regroupv1.JoinGroupResponse](r, err)
}

// SyncGroup implements the Coordinator service.
func (s *Server) SyncGroup(ctx context.Context, req *regroupv1.SyncGroupRequest) (_ *regroupv1.SyncGroupResponse, err error) {
	defer func(start time.Time) { s.finish("SyncGroup", req, start, err) }(time.Now())
	r, err := s.call(ctx, req)
	return replyOf[*regroupv1.SyncGroupResponse](r, err)
}

// Heartbeat implements the Coordinator service.
func (s *Server) Heartbeat(ctx context.Context, req *regroupv1.HeartbeatRequest) (_ *regroupv1.HeartbeatResponse, err error) {
	defer func(start time.Time) { s.finish("Heartbeat", req, start, err) }(time.Now())
	r, err := s.call(ctx, req)
	return replyOf[*regroupv1.HeartbeatResponse](r, err)
}

// Reconcile implements the Coordinator service.
func (s *Server) Reconcile(ctx context.Context, req *regroupv1.ReconcileRequest) (_ *regroupv1.ReconcileResponse, err error) {
	defer func(start time.Time) { s.finish("Reconcile", req, start, err) }(time.Now())
	r, err := s.call(ctx, req)
	return replyOf[*regroupv1.ReconcileResponse](r, err)
}

// FindCoordinator implements the Coordinator service. Every coordinator
// answers it from what it sees of the election; it is never forwarded.
func (s *Server) FindCoordinator(_ context.Context, req *regroupv1.FindCoordinatorRequest) (_ *regroupv1.FindCoordinatorResponse, err error) {
	defer func(start time.Time) { s.finish("FindCoordinator", req, start, err) }(time.Now())
	if err := group.ValidateGroupID(req.GetGroupId()); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return &regroupv1.FindCoordinatorResponse{LeaderAddress: s.leader(), Coordinators: s.coordinators()}, nil
}

// LeaveGroup implements the Coordinator service.
func (s *Server) LeaveGroup(ctx context.Context, req *regroupv1.LeaveGroupRequest) (_ *regroupv1.LeaveGroupResponse, err error) {
	defer func(start time.Time) { s.finish("LeaveGroup", req, start, err) }(time.Now())
	r, err := s.call(ctx, req)
	return replyOf[*regroupv1.LeaveGroupResponse](r, err)
}
