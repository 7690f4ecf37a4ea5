package fsm

import "time"

// The protocol's member defaults. They live here, in the member core, so
// that the member library (package member) and the simulator's scenario
// parser fill in the same values: Config.WithDefaults applies them.
const (
	// DefaultSessionTimeout is the session timeout when none is given. It
	// rides through a coordinator failover with the coordinator's default
	// lease (FailoverBudget): the lease left after the last answered held
	// heartbeat (the session less the margin and two heartbeat intervals,
	// 12 s) outlasts the new leader's election and the way to it.
	DefaultSessionTimeout = 20 * time.Second
	// DefaultRebalanceTimeout is the rebalance timeout when none is given.
	DefaultRebalanceTimeout = 30 * time.Second
	// DefaultHeartbeatInterval is the heartbeat interval when none is
	// given, for session timeouts of at least three times it; shorter
	// sessions get a third of the session timeout.
	DefaultHeartbeatInterval = 3 * time.Second
	// DefaultMinBackoff is the first retry delay when none is given.
	DefaultMinBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff caps the retry delay when no cap is given, for
	// session timeouts of at least three times it; shorter sessions get a
	// third of the session timeout (but never less than MinBackoff).
	DefaultMaxBackoff = 5 * time.Second
	// DefaultServerAssignor is a Next member's server assignor when none
	// is given.
	DefaultServerAssignor = "cooperative-sticky"
)

// FailoverOverhead is what a coordinator failover takes beyond the dead
// leader's lease TTL: the election and load (0.5 s) and a second for the
// member to find the new leader.
const FailoverOverhead = 1500 * time.Millisecond

// FailoverBudget is how long a coordinator failover may take with regroup
// serve's defaults, from the leader's last keep-alive until the new leader
// answers: the 5 s lease TTL plus FailoverOverhead. A member rides through
// a failover when its lease after an answered held heartbeat,
// SessionTimeout - Margin - 2*HeartbeatInterval, exceeds it
// (RidesFailover).
const FailoverBudget = 5*time.Second + FailoverOverhead

// RidesFailover reports whether a member configured as c keeps its lease
// through a coordinator failover that takes budget: the lease it holds at
// worst (just before a held heartbeat's answer, renewed from the send time
// of the one before) outlasts the failover. Jitter only shortens holds
// (Config.Jitter), so it leaves this bound as it is.
func (c Config) RidesFailover(budget time.Duration) bool {
	return c.SessionTimeout-c.Margin-2*c.HeartbeatInterval > budget
}

// SessionToRide returns the shortest session timeout with which a member
// whose other durations are the defaults (WithDefaults) rides through a
// failover that takes budget: RidesFailover solved for the session, for
// sessions of at least 9 s, whose heartbeat is the default 3 s.
func SessionToRide(budget time.Duration) time.Duration {
	// session - session/10 - 2*hb > budget
	return (budget+2*DefaultHeartbeatInterval)*10/9 + time.Millisecond
}

// WithDefaults returns c with its zero durations filled in, each from the
// values filled in before it, and a Next member's server assignor:
//
//	SessionTimeout     20 s
//	RebalanceTimeout   30 s
//	HeartbeatInterval  min(3 s, SessionTimeout/3)
//	Margin             SessionTimeout/10
//	MinBackoff         100 ms
//	MaxBackoff         max(MinBackoff, min(5 s, SessionTimeout/3))
//	ServerAssignor     cooperative-sticky (Protocol Next only)
//
// Values already set are kept (even invalid ones: New reports those). A
// configuration whose durations are all defaults passes New's checks.
func (c Config) WithDefaults() Config {
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = min(DefaultHeartbeatInterval, c.SessionTimeout/3)
	}
	if c.Margin == 0 {
		c.Margin = c.SessionTimeout / 10
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(c.MinBackoff, min(DefaultMaxBackoff, c.SessionTimeout/3))
	}
	if c.Protocol == Next && c.ServerAssignor == "" {
		c.ServerAssignor = DefaultServerAssignor
	}
	return c
}
