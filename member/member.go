// Package member is the library an application embeds to share the
// partitions of some topics with the other members of a group, through a
// Regroup coordinator, and to learn, safely and quickly, which ones it owns.
//
//	m, err := member.New(member.Config{
//		Endpoints: []string{"127.0.0.1:7070"},
//		Group:     "billing",
//		Topics:    []string{"orders"},
//		Listener: member.ListenerFuncs{
//			Assigned: func(ctx context.Context, ps []member.Partition) { /* start workers */ },
//			Revoked:  func(ctx context.Context, ps []member.Partition) { /* commit, stop workers */ },
//			Lost:     func(ctx context.Context, ps []member.Partition) { /* stop workers, no commit */ },
//		},
//	})
//	if err != nil { ... }
//	err = m.Run(ctx) // until ctx ends; then revokes and leaves
//
// # Safety
//
// The member owns a partition from the moment OnAssigned is called with it
// until OnRevoked with it returns (or its context ends), or until OnLost is
// called with it. No other member owns it meanwhile: the coordinator hands a
// partition on only after its owner released it or the owner's lease could
// have ended, and the library ends the lease itself, calling OnLost, when
// the coordinator has not answered for a session timeout (less a safety
// margin) counted from the send time of the last request it answered. When
// it joins again it reports how many partitions it lost, and operators see
// them in the group's rebalance history and metrics.
//
// A process can still be paused (a long GC, a VM freeze) past its lease and
// wake up believing it owns partitions. Every partition therefore carries a
// fencing token that grows with every change of owner: pass it with every
// write made on the partition's behalf, and have the target refuse tokens
// smaller than the largest it has seen.
//
// # Callbacks
//
// Callbacks run one at a time, in order, on a goroutine of their own. The
// context given to each ends when the library's deadline for that step
// passes: OnRevoked's when the rebalance (or the lease) would leave no more
// time, OnLost's at the instant ownership ended (so it is already done).
// OnRevoked completes before the member rejoins (classic) or reports the
// partitions released (next). A static member stopped by Run's context
// revokes its partitions and releases them without leaving, so that its
// restart gets them back at once and without a rebalance.
//
// # Group protocols
//
// Config.Protocol chooses how the member and the coordinator agree on
// ownership. With "classic" (the default) every rebalance is a round of
// JoinGroup and SyncGroup, in which the group's leader computes the
// assignment with the members' Assignors; a held heartbeat carries the
// notice of the next round. With "next" (Kafka's KIP-848 model) the member
// keeps one held Reconcile call outstanding; the coordinator computes the
// assignment itself (ServerAssignor) and answers the call as soon as the
// member's part changes: the member revokes what it must give up
// (OnRevoked), reports that it did, and is then given what nobody else may
// still hold (OnAssigned). A member whose partitions do not move makes no
// extra call, and no member waits for the slowest. The Listener, the
// callbacks, the lease and the fencing tokens are the same with either.
// Every member of a group must use the same protocol.
package member

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/internal/bearer"
	"github.com/regroup-dev/regroup/member/fsm"
)

// Partition is a partition the member owns and the fencing token it was
// acquired with.
type Partition = fsm.Partition

// Listener receives ownership changes. Its methods are called one at a
// time, in order.
type Listener interface {
	// OnAssigned: the member owns these partitions from now on.
	OnAssigned(ctx context.Context, partitions []Partition)
	// OnRevoked: the member gives these partitions up; finish and commit
	// the work on them before ctx ends.
	OnRevoked(ctx context.Context, partitions []Partition)
	// OnLost: the member lost these partitions at ctx's deadline (already
	// past); stop using them at once, without committing.
	OnLost(ctx context.Context, partitions []Partition)
}

// ListenerFuncs is a Listener made of functions; nil ones do nothing.
type ListenerFuncs struct {
	Assigned, Revoked, Lost func(ctx context.Context, partitions []Partition)
}

// OnAssigned implements Listener.
func (l ListenerFuncs) OnAssigned(ctx context.Context, ps []Partition) { call(l.Assigned, ctx, ps) }

// OnRevoked implements Listener.
func (l ListenerFuncs) OnRevoked(ctx context.Context, ps []Partition) { call(l.Revoked, ctx, ps) }

// OnLost implements Listener.
func (l ListenerFuncs) OnLost(ctx context.Context, ps []Partition) { call(l.Lost, ctx, ps) }

func call(f func(context.Context, []Partition), ctx context.Context, ps []Partition) {
	if f != nil {
		f(ctx, ps)
	}
}

// Config configures a Member. Zero values mean the defaults given. The
// protocol's defaults (the timeouts, the heartbeat interval, the safety
// margin and the retry backoff) are fsm.Config.WithDefaults's, the one place
// that the member library and the simulator both take them from.
type Config struct {
	// Endpoints are coordinator addresses ("host:port"); the member follows
	// redirects to the leader and tries the others when one fails. Default
	// 127.0.0.1:7070.
	Endpoints []string
	// Group is the group to join. Required.
	Group string
	// Topics are the topics to consume. Required.
	Topics []string
	// Protocol is the group protocol: "classic" (the default; JoinGroup,
	// SyncGroup and held heartbeats, the group's leader assigning with
	// Assignors) or "next" (the next-generation protocol, Kafka's KIP-848
	// model: one held Reconcile call at a time, the coordinator assigning
	// with ServerAssignor, no group-wide barrier). A group keeps the
	// protocol of its first member until it is empty: every member of a
	// group must use the same one (else Run fails with
	// GROUP_PROTOCOL_MISMATCH).
	Protocol string
	// ServerAssignor names the coordinator's assignor that computes a
	// "next" group's assignment (the first member's choice is the
	// group's). Default cooperative-sticky (fsm.DefaultServerAssignor).
	// For "next" only.
	ServerAssignor string
	// InstanceID makes the member static: a restart with the same instance
	// id takes the place (and the partitions) of the previous process
	// without a rebalance. Two live processes must never share one.
	InstanceID string
	// Assignors are the assignors offered, in preference order. Default
	// cooperative-sticky. The member rebalances cooperatively only if every
	// one supports it. For "classic" only: a "next" member always
	// rebalances cooperatively.
	Assignors []assignor.Assignor
	// SessionTimeout is how long the coordinator keeps the member without
	// a heartbeat. Default 20 s (fsm.DefaultSessionTimeout), which rides
	// through a coordinator failover with the coordinator's defaults; New
	// logs a warning for a configuration that cannot (fsm.FailoverBudget).
	SessionTimeout time.Duration
	// RebalanceTimeout is how long the member may take to rejoin once a
	// rebalance starts (OnRevoked included). Default 30 s
	// (fsm.DefaultRebalanceTimeout).
	RebalanceTimeout time.Duration
	// HeartbeatInterval is how long a heartbeat is held by the coordinator;
	// the member always has one outstanding, so it learns of a rebalance
	// within one round trip whatever this is. At most a third of the
	// session timeout. Default 3 s (fsm.DefaultHeartbeatInterval), or a
	// third of the session timeout if that is less. A "next" member holds
	// its calls for the interval the coordinator sets, this one until it
	// has said.
	HeartbeatInterval time.Duration
	// SafetyMargin is taken off the member's lease for clock drift. Default
	// a tenth of the session timeout (fsm.Config.WithDefaults).
	SafetyMargin time.Duration
	// ClientID names the program to operators. Default the executable's name.
	ClientID string
	// Rack is the member's failure domain, for rack-aware assignors. For
	// "classic" only: Reconcile carries no rack.
	Rack string
	// LeaveOnStop makes a static member leave the group when Run's context
	// ends, instead of keeping its place for a restart.
	LeaveOnStop bool
	// Listener receives ownership changes; nil means none (use Assignment).
	Listener Listener
	// Logger receives the member's logs; nil means hclog's default logger.
	Logger hclog.Logger
	// DialOptions replace the default gRPC dial options (plaintext, with a
	// reconnect backoff capped at 2 s). Set TLS and Token instead to keep
	// the defaults over TLS; New refuses DialOptions with either.
	//
	// Members in one process share their connections to a coordinator
	// (up to 256 members on one; the last to stop closes it) when they have
	// the same connection settings: the same DialOptions slice, or the same
	// *tls.Config and Token (or neither). Settings are compared by
	// identity, so give members that may share one configuration value.
	DialOptions []grpc.DialOption
	// TLS, when set, connects to the coordinators over TLS with this
	// configuration: its RootCAs verify the coordinators' certificates,
	// and its Certificates (or GetClientCertificate) are the member's
	// client certificate for a coordinator that requires mTLS. The
	// certificate's name is the member's identity in the coordinator's
	// policy.
	TLS *tls.Config
	// Token, when set, is sent with every call as a bearer token, for a
	// coordinator that authenticates by token. It needs TLS.
	Token string
}

// withDefaults fills in the zero values. The protocol's come from
// fsm.Config.WithDefaults.
func (c Config) withDefaults() Config {
	if len(c.Endpoints) == 0 {
		c.Endpoints = []string{"127.0.0.1:7070"}
	}
	if c.Protocol == "" {
		c.Protocol = fsm.Classic.String()
	}
	if len(c.Assignors) == 0 && c.Protocol == fsm.Classic.String() {
		a, _ := assignor.Lookup("cooperative-sticky")
		c.Assignors = []assignor.Assignor{a}
	}
	d := fsm.Config{
		SessionTimeout:    c.SessionTimeout,
		RebalanceTimeout:  c.RebalanceTimeout,
		HeartbeatInterval: c.HeartbeatInterval,
		Margin:            c.SafetyMargin,
	}.WithDefaults()
	c.SessionTimeout, c.RebalanceTimeout = d.SessionTimeout, d.RebalanceTimeout
	c.HeartbeatInterval, c.SafetyMargin = d.HeartbeatInterval, d.Margin
	if c.ClientID == "" {
		c.ClientID = filepath.Base(os.Args[0])
	}
	if c.Logger == nil {
		c.Logger = hclog.Default()
	}
	if c.Listener == nil {
		c.Listener = ListenerFuncs{}
	}
	if c.DialOptions == nil {
		creds := insecure.NewCredentials()
		if c.TLS != nil {
			creds = credentials.NewTLS(c.TLS)
		}
		c.DialOptions = []grpc.DialOption{
			grpc.WithTransportCredentials(creds),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
				MinConnectTimeout: time.Second,
			}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		}
		if c.Token != "" {
			c.DialOptions = append(c.DialOptions, grpc.WithPerRPCCredentials(bearer.New(c.Token, false)))
		}
	}
	return c
}

// Change reports the member's state after a step that changed it.
type Change struct {
	Time       time.Time
	State      fsm.State
	MemberID   string
	Generation int32 // the generation, or a "next" member's epoch
	Assignment []Partition
}

// Member is one member of a group. Create it with New and run it with Run.
type Member struct {
	cfg     Config
	machine fsm.Machine
	log     hclog.Logger
	tr      *transport
	started atomic.Bool

	mu         sync.Mutex
	assignment []Partition
	last       Change
	changes    chan Change

	// pause, when set, freezes the member for a while (tests of a
	// stop-the-world pause).
	pause chan time.Duration
}

// New validates cfg and returns a Member that has not joined yet. Invalid
// configurations (no group, no topics, a heartbeat interval above a third of
// the session timeout, unknown assignors...) are errors here, not later.
func New(cfg Config) (*Member, error) {
	if cfg.DialOptions != nil && (cfg.TLS != nil || cfg.Token != "") {
		return nil, errors.New("regroup: member: DialOptions replace the connection settings, TLS and Token included: set either DialOptions (with your own credentials) or TLS and Token, not both")
	}
	if cfg.Token != "" && cfg.TLS == nil {
		return nil, errors.New("regroup: member: a Token is sent only over TLS, where no one on the path can read it: set TLS too (at least RootCAs to verify the coordinators)")
	}
	given := cfg.DialOptions
	cfg = cfg.withDefaults()
	for _, e := range cfg.Endpoints {
		if e == "" {
			return nil, errors.New("regroup: member: an endpoint is empty")
		}
	}
	for i, a := range cfg.Assignors {
		if a == nil {
			return nil, fmt.Errorf("regroup: member: assignor %d is nil", i)
		}
	}
	if cfg.InstanceID == "" && cfg.LeaveOnStop {
		return nil, errors.New("regroup: member: LeaveOnStop applies to static members (set InstanceID); dynamic members always leave")
	}
	protocol, err := fsm.ParseProtocol(cfg.Protocol)
	if err != nil {
		return nil, err
	}
	fcfg := fsm.Config{
		Protocol:          protocol,
		ServerAssignor:    cfg.ServerAssignor,
		GroupID:           cfg.Group,
		InstanceID:        cfg.InstanceID,
		ClientID:          cfg.ClientID,
		Rack:              cfg.Rack,
		Topics:            slices.Clone(cfg.Topics),
		Assignors:         cfg.Assignors,
		SessionTimeout:    cfg.SessionTimeout,
		RebalanceTimeout:  cfg.RebalanceTimeout,
		HeartbeatInterval: cfg.HeartbeatInterval,
		Margin:            cfg.SafetyMargin,
		LeaveOnStop:       cfg.LeaveOnStop,
		Jitter:            jitter, // the backoff bounds are the defaults
	}.WithDefaults()
	machine, err := fsm.NewMachine(fcfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("group", cfg.Group)
	if cfg.InstanceID != "" {
		log = log.With("instance", cfg.InstanceID)
	}
	if !fcfg.RidesFailover(fsm.FailoverBudget) {
		log.Warn("this member's lease cannot ride through a coordinator failover with the coordinator's default lease: it will declare its partitions lost and rejoin; for a session timeout less its safety margin and two heartbeat intervals to exceed the failover, raise SessionTimeout or shorten HeartbeatInterval",
			"session_timeout", cfg.SessionTimeout, "safety_margin", fcfg.Margin, "heartbeat_interval", fcfg.HeartbeatInterval, "failover", fsm.FailoverBudget)
	}
	return &Member{
		cfg:     cfg,
		machine: machine,
		log:     log,
		tr:      newTransport(cfg.Group, cfg.Endpoints, settingsFor(given, cfg.TLS, cfg.Token, cfg.DialOptions), log),
		changes: make(chan Change, 16),
		pause:   make(chan time.Duration, 1),
	}, nil
}

// Assignment returns the partitions the member owns now, sorted.
func (m *Member) Assignment() []Partition {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.assignment)
}

// Changes delivers the member's state after every step that changed it.
// A reader that falls behind misses changes (Assignment is always current).
func (m *Member) Changes() <-chan Change { return m.changes }
