package fsm

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
)

// Protocol is a group protocol a member can speak.
type Protocol int

// The group protocols. A group keeps the protocol of its first member until
// it is empty; a member of the other protocol is refused
// (GROUP_PROTOCOL_MISMATCH, fatal).
const (
	// Classic is Kafka's classic protocol, with Regroup's held heartbeats:
	// JoinGroup and SyncGroup at every rebalance, the leader assigning
	// with the members' Assignors. The Member machine (New).
	Classic Protocol = iota
	// Next is the next-generation protocol (Kafka's KIP-848 model): one
	// Reconcile call joins, reports, heartbeats and leaves; the coordinator
	// assigns with ServerAssignor and each member converges to its part on
	// its own, with no group-wide barrier. The NextMember machine
	// (NewNext).
	Next
)

// String returns "classic" or "next", the names ParseProtocol reads.
func (p Protocol) String() string {
	switch p {
	case Classic:
		return "classic"
	case Next:
		return "next"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// ParseProtocol returns the protocol named s: "classic" (or "", the
// default) or "next".
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "", "classic":
		return Classic, nil
	case "next":
		return Next, nil
	}
	return 0, fmt.Errorf("regroup: member: unknown group protocol %q: use \"classic\" or \"next\"", s)
}

// Machine is a member's protocol state as its driver sees it, whichever
// the protocol: *Member (Classic) and *NextMember (Next) implement it, so
// that the member library and the simulator run either. The contract is
// Member's: no clock, no goroutine, no I/O; every step takes the time and
// returns an Output; Tick is due at NextDeadline; not safe for concurrent
// use.
type Machine interface {
	// Start begins joining the group.
	Start(now time.Time) Output
	// Stop gives up the member's partitions (OnRevoked), leaves the group
	// (a static member only releases its partitions, unless LeaveOnStop)
	// and finishes.
	Stop(now time.Time) Output
	// Response reports the answer to request id: msg on success, else
	// err. Answers the machine no longer waits for are ignored.
	Response(now time.Time, id uint64, msg proto.Message, err error) Output
	// CallbackDone reports that callback id returned.
	CallbackDone(now time.Time, id uint64) Output
	// Tick fires what is due at now.
	Tick(now time.Time) Output
	// NextDeadline returns when Tick must be called next (zero: nothing
	// due).
	NextDeadline() time.Time
	// Assignment returns the partitions the member owns, sorted.
	Assignment() []Partition
	// Lease returns when the member's ownership ends unless renewed.
	Lease() time.Time
	// State returns where the member is in the protocol.
	State() State
	// MemberID returns the member id the coordinator gave, or "".
	MemberID() string
	// Generation returns the classic generation the member belongs to
	// (-1 before the first), or a Next member's epoch (0 before the
	// coordinator included it in a target assignment).
	Generation() int32
	// Cooperative reports whether the member rebalances incrementally
	// (always, for Next).
	Cooperative() bool
}

// NewMachine validates cfg and returns a machine for cfg.Protocol that has
// not started: a *Member (New) for Classic, a *NextMember (NewNext) for
// Next.
func NewMachine(cfg Config) (Machine, error) {
	var m Machine
	var err error
	switch cfg.Protocol {
	case Classic:
		m, err = New(cfg)
	case Next:
		m, err = NewNext(cfg)
	default:
		err = fmt.Errorf("regroup: member: unknown group protocol %v: use Classic or Next", cfg.Protocol)
	}
	if err != nil {
		return nil, err // not a Machine holding a nil pointer
	}
	return m, nil
}

var (
	_ Machine = (*Member)(nil)
	_ Machine = (*NextMember)(nil)
)

// validate checks cfg for a machine of protocol p: what every member needs,
// then what p needs.
func (c Config) validate(p Protocol) error {
	switch {
	case c.Protocol != p:
		return fmt.Errorf("regroup: member: the configuration asks for the %v protocol, not %v: build the member with NewMachine", c.Protocol, p)
	case c.GroupID == "":
		return errors.New("regroup: member: the group id is empty")
	case len(c.Topics) == 0:
		return errors.New("regroup: member: no topics to subscribe to")
	case c.SessionTimeout <= 0 || c.RebalanceTimeout <= 0 || c.HeartbeatInterval <= 0:
		return errors.New("regroup: member: session timeout, rebalance timeout and heartbeat interval must be positive")
	case c.HeartbeatInterval*3 > c.SessionTimeout:
		return fmt.Errorf("regroup: member: heartbeat interval %v must be at most a third of the session timeout %v", c.HeartbeatInterval, c.SessionTimeout)
	case c.Margin < 0 || c.Margin >= c.SessionTimeout-c.HeartbeatInterval:
		return fmt.Errorf("regroup: member: safety margin %v must be between 0 and the session timeout minus the heartbeat interval", c.Margin)
	case c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("regroup: member: backoff bounds %v..%v are not increasing positive durations", c.MinBackoff, c.MaxBackoff)
	}
	if p == Next {
		switch {
		case c.ServerAssignor == "":
			return errors.New("regroup: member: the next-generation protocol needs a server assignor (WithDefaults fills in " + DefaultServerAssignor + ")")
		case len(c.Assignors) > 0:
			return errors.New("regroup: member: assignors are the classic protocol's, run by the group's leader; with the next-generation protocol the coordinator assigns: set the server assignor instead")
		case c.Rack != "":
			return errors.New("regroup: member: the next-generation protocol does not carry a rack; leave it empty")
		case c.ClassicHeartbeats:
			return errors.New("regroup: member: classic heartbeats are a baseline of the classic protocol")
		}
		return nil
	}
	switch {
	case c.ServerAssignor != "":
		return fmt.Errorf("regroup: member: server assignor %q applies to the next-generation protocol; a classic group's leader assigns with the member's assignors", c.ServerAssignor)
	case len(c.Assignors) == 0:
		return errors.New("regroup: member: no assignors")
	}
	seen := map[string]bool{}
	for _, a := range c.Assignors {
		if seen[a.Name()] {
			return fmt.Errorf("regroup: member: assignor %q listed twice", a.Name())
		}
		seen[a.Name()] = true
	}
	return nil
}
