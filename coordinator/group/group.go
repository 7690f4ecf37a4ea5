// Package group is the group protocol of one consumer group as a pure state
// machine: JoinGroup, SyncGroup, Heartbeat and LeaveGroup, the join and sync
// barriers with their timeouts, leader election, protocol selection, session
// expiry, static membership, the checks on the leader's assignment, and the
// rebalance history.
//
// A Group reads no clock, starts no goroutine and does no I/O. Every input
// carries the current time; every step returns an Output that says which
// requests to answer, whether to persist the group's record first, and the
// driver calls Tick at NextDeadline. Member ids come from an injected
// IDSource. A Group is not safe for concurrent use: its driver serializes the
// inputs of one group.
//
// # Ownership is a lease
//
// The group tracks, for every member, the partitions it may still hold (the
// assignments delivered to it that it has not given up by rejoining without
// them or by leaving) and the time until which it may believe it holds them
// (its lease: the last time the group answered it successfully plus its
// session timeout). A partition is handed to a new owner only once its
// previous owner has released it or its lease has ended: a SyncGroup whose
// assignment contains a partition held by someone else is answered when that
// lease runs out, and a leader's assignment that gives away a partition
// still reported by a rejoined member is refused. So no partition ever has
// two owners, even when members are removed by an administrator, fenced by a
// restarted static member, or dropped at a barrier while still alive.
package group

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/internal/minheap"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// State is a group's place in the rebalance protocol.
type State int

// The states of a group, as in Kafka's classic protocol.
const (
	Empty State = iota + 1
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
)

// String returns the state's name, e.g. "PreparingRebalance".
func (s State) String() string {
	switch s {
	case Empty:
		return "Empty"
	case PreparingRebalance:
		return "PreparingRebalance"
	case CompletingRebalance:
		return "CompletingRebalance"
	case Stable:
		return "Stable"
	case Dead:
		return "Dead"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Proto returns the state as the API's enum.
func (s State) Proto() regroupv1.GroupState {
	switch s {
	case Empty:
		return regroupv1.GroupState_GROUP_STATE_EMPTY
	case PreparingRebalance:
		return regroupv1.GroupState_GROUP_STATE_PREPARING_REBALANCE
	case CompletingRebalance:
		return regroupv1.GroupState_GROUP_STATE_COMPLETING_REBALANCE
	case Stable:
		return regroupv1.GroupState_GROUP_STATE_STABLE
	case Dead:
		return regroupv1.GroupState_GROUP_STATE_DEAD
	}
	return regroupv1.GroupState_GROUP_STATE_UNSPECIFIED
}

// IDSource mints member ids. Ids must be unique for the life of the group;
// prefix is the member's instance id or client id (possibly empty). The
// group also mints each member's secret with MemberID(""), so ids minted
// with an empty prefix must be unguessable (the coordinator's are random
// UUIDs from crypto/rand).
type IDSource interface {
	MemberID(prefix string) string
}

// Caller is who made a member call: where from, and as which
// authenticated identity.
type Caller struct {
	// Host is the caller's address, as operators see it.
	Host string
	// Identity is the authenticated identity, or "" without
	// authentication. A member is bound to the identity that joined it:
	// only that identity may act as it or take its instance id.
	Identity string
	// Admin marks an administrator's call (RemoveMembers), which may
	// remove any member.
	Admin bool
}

// member is one member of the group.
type member struct {
	id, instanceID, clientID, clientHost string
	identity                             string // see Caller.Identity
	sessionTimeout, rebalanceTimeout     time.Duration
	protocols                            []*regroupv1.Protocol

	// secret proves a LeaveGroup is the member's own: issued in its
	// JoinGroup answers, never shown to anyone else.
	secret string

	joinReq ReqID // parked JoinGroup, or 0
	syncReq ReqID // parked SyncGroup, or 0
	hbReq   ReqID // held heartbeat, or 0

	isNew        bool // added in this rebalance: its first join is parked
	absent       bool // static member that did not rejoin the current generation
	awaitingSync bool // has not sent SyncGroup in the current generation

	sessionDeadline time.Time
	timerAt         time.Time // the session timer entry it has in the heap
	leaseUntil      time.Time // until when it may believe it owns owned
	deliverAt       time.Time // parked SyncGroup waits for holds until then
	waitListed      bool      // in the group's waiting list
	removed         bool      // no longer a member (removed or replaced)
	inHeld          bool      // its lease counts in the cached heldIndex, for beyond
	beyond          parts     // what it may hold beyond its assignment, when inHeld

	assignment    *regroupv1.Assignment // current assignment (delivered or not)
	assigned      parts                 // assignment's partitions
	assignmentGen int32                 // generation of assignment
	owned         parts                 // partitions it may still hold
	token         int64                 // fencing token of assignment
	protoBytes    int                   // its footprint while counted: see tally

	// lostCounted is the partitions_lost of its parked JoinGroup, already
	// counted: a newer join of the same rebalance repeats it (see countLost).
	lostCounted int32

	// Next-generation groups (see reconcile.go); hbReq is the outstanding
	// Reconcile call.
	epoch       int32     // member epoch
	target      parts     // its part of the target assignment
	revokeBy    time.Time // when it must have released what is not in target
	revision    int64     // the revision of assigned: it grows with every change
	unacked     parts     // granted in revisions the member has not acknowledged
	callRev     int64     // the revision its outstanding call acknowledged
	holdUntil   time.Time // when its outstanding call is answered at the latest
	joinCall    bool      // the outstanding call is its join: the answer carries the secret
	answerDue   bool      // listed in toAnswer
	awaitListed bool      // listed in awaiting
	settled     bool      // converged to the target (see note)
}

// key identifies a member across static replacements: its instance id, or
// its member id when dynamic.
func (m *member) key() string {
	if m.instanceID != "" {
		return m.instanceID
	}
	return m.id
}

func (m *member) offers(protocol string) *regroupv1.Protocol {
	for _, p := range m.protocols {
		if p.GetName() == protocol {
			return p
		}
	}
	return nil
}

// hold keeps the partitions of a member that left the group without
// releasing them until its lease has ended.
type hold struct {
	member         string
	partitions     parts
	until          time.Time
	sessionTimeout time.Duration
}

// Group is one consumer group.
type Group struct {
	id  string
	cfg Config
	ids IDSource
	now time.Time // time of the latest input

	state      State
	formed     bool // Stable once since created, or restored: see Forming
	generation int32
	protocol   string
	leader     string
	members    map[string]*member
	order      []*member      // insertion order: leader succession, iteration
	sorted     []*member      // order sorted by id, or nil: see byID
	joinedHead int            // order[:joinedHead] have a parked JoinGroup: see allJoined
	offered    map[string]int // protocol name -> members that offer it
	instances  map[string]*member
	pending    pendingIDs

	reb            *regroupv1.Rebalance // the rebalance in progress
	released       int                  // partitions released since reb started
	joinDeadline   time.Time            // PreparingRebalance: barrier deadline
	delayDeadline  time.Time            // initial rebalance delay timer
	delayStep      time.Duration        // the delay that delayDeadline ends
	delayBudget    time.Duration        // what is left to extend the delay
	newMemberAdded bool
	syncDeadline   time.Time

	unowned      int       // partitions the current assignment leaves without an owner
	unassigned   parts     // those partitions
	lastStranded parts     // the last set checkStranded started a round for
	strandCheck  time.Time // when a hold covering unassigned partitions ends
	holds        []hold
	held         heldIndex // cache of heldIndex; nil when stale
	replacements int64
	registry     map[string]int32 // the topic registry (shared, read-only)
	seen         map[string]int32 // subscribed topics' counts the leader was given
	history      []*regroupv1.Rebalance
	emptySince   time.Time
	departed     []ownerParts // assignments of members removed since the last plan
	inTransit    []ownerParts // partitions taken from their owner, not yet reassigned
	timers       minheap.Heap[timerEntry]
	waiting      []*member // members whose delivery waits: see wait
	protoBytes   int       // the counted members' footprints (see Config.MaxGroupMetadataBytes)
	assignBytes  int       // the size of the members' assignments
	lost         int64     // partitions members reported lost: see PartitionsLost

	// Next-generation groups (see reconcile.go and target.go).
	next        bool      // runs the next-generation protocol
	assignEpoch int32     // epoch of the target assignment
	assignAt    time.Time // when the target is computed next; zero if current
	lastAssign  time.Time // when it was last computed
	lastToken   int64     // the largest fencing token given
	awaiting    []*member // members owed partitions that others may hold
	holdCheck   time.Time // when a hold blocking an owed partition ends
	releases    bool      // partitions were released: grant again in settle
	claims      heldIndex // cache of claimIndex; nil when stale
	toAnswer    []*member // members whose outstanding call settle answers
	unsettled   int       // members that have not converged (see note)
}

type ownerParts struct {
	owner string
	parts parts
}

// New returns an Empty group. registry maps every topic of the topic
// registry to its partition count; the group keeps it and never modifies it.
func New(id string, cfg Config, ids IDSource, registry map[string]int32, now time.Time) *Group {
	return &Group{
		id:         id,
		cfg:        cfg,
		ids:        ids,
		now:        now,
		state:      Empty,
		members:    map[string]*member{},
		offered:    map[string]int{},
		instances:  map[string]*member{},
		pending:    newPendingIDs(),
		registry:   registry,
		seen:       map[string]int32{},
		emptySince: now,
	}
}

// ID returns the group's id.
func (g *Group) ID() string { return g.id }

// State returns the group's state.
func (g *Group) State() State { return g.state }

// Generation returns the group's generation.
func (g *Group) Generation() int32 { return g.generation }

// Leader returns the leader's member id, or "".
func (g *Group) Leader() string { return g.leader }

// Protocol returns the selected protocol, or "": the assignor's name (a
// next-generation group's server-side assignor).
func (g *Group) Protocol() string { return g.protocol }

// Size returns the number of members.
func (g *Group) Size() int { return len(g.members) }

// Unowned returns how many partitions of the subscribed topics the current
// generation's assignment left without an owner (0 before the first).
func (g *Group) Unowned() int { return g.unowned }

// Forming reports whether the group has never been Stable since it was
// created (a restored group counts as formed): its members own nothing and
// never did, so it has no lease to keep, and its calls are new work that
// an overloaded coordinator may shed (node.Overload). A group that was
// Stable once is never forming again, even in an eager rebalance where
// its members own nothing for a while, so that shedding never locks a
// group out of the rebalance that gives its members their partitions
// back.
func (g *Group) Forming() bool { return !g.formed }

// Admitted returns how many members the group counts against a
// coordinator's limit (node.Config.MaxMembers): its members, and the
// dynamic members told their id (MEMBER_ID_REQUIRED) and expected back.
func (g *Group) Admitted() int { return len(g.members) + g.pending.len() }

// HasInstance reports whether a static member with instance id inst is a
// member of the group: a JoinGroup or Reconcile of a restarted process
// that takes its place adds nobody.
func (g *Group) HasInstance(inst string) bool { return g.instances[inst] != nil }

// HasMember reports whether id is a member of the group.
func (g *Group) HasMember(id string) bool {
	_, ok := g.members[id]
	return ok
}

// PartitionsLost returns how many partitions members reported, in their
// JoinGroups, that they declared lost (OnLost) since this Group was created
// or restored: a counter, for metrics.
func (g *Group) PartitionsLost() int64 { return g.lost }

func (g *Group) setState(out *Output, s State) {
	if g.state == s {
		return
	}
	out.event(Event{Kind: EventStateChanged, From: g.state, To: s})
	g.state = s
	if s == Stable {
		g.formed = true
	}
}

// byID returns the members sorted by id. The list is kept until the
// membership changes; callers must not modify it.
func (g *Group) byID() []*member {
	if g.sorted == nil {
		g.sorted = slices.Clone(g.order)
		slices.SortFunc(g.sorted, func(a, b *member) int { return strings.Compare(a.id, b.id) })
	}
	return g.sorted
}

// subscription returns m's subscription under the selected protocol, or
// under its first protocol before one is selected.
func (g *Group) subscription(m *member) *regroupv1.Subscription {
	if p := m.offers(g.protocol); p != nil {
		return p.GetSubscription()
	}
	if len(m.protocols) > 0 {
		return m.protocols[0].GetSubscription()
	}
	return nil
}

// subscribes reports whether m subscribes to topic under the selected
// protocol.
func (g *Group) subscribes(m *member, topic string) bool {
	return slices.Contains(g.subscription(m).GetTopics(), topic)
}

// UnknownTopics returns the topics the members subscribe to that are not
// in the registry, sorted: nobody owns partitions of them.
func (g *Group) UnknownTopics() []string { return g.unknownTopics(g.order...) }

// unknownTopics returns the topics the members ms subscribe to that are
// not in the registry, sorted: nobody owns partitions of them.
func (g *Group) unknownTopics(ms ...*member) []string {
	var out []string
	for _, m := range ms {
		for _, t := range g.subscription(m).GetTopics() {
			if _, ok := g.registry[t]; !ok && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	slices.Sort(out)
	return out
}

// subscribedCounts returns the registry's partition count of every topic a
// member subscribes to.
func (g *Group) subscribedCounts() map[string]int32 {
	counts := map[string]int32{}
	for _, m := range g.order {
		for _, t := range g.subscription(m).GetTopics() {
			if n, ok := g.registry[t]; ok {
				counts[t] = n
			}
		}
	}
	return counts
}

// rebalanceTimeout is the largest rebalance timeout among the members.
func (g *Group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.order {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// addMember adds a member that c joins with request r.
func (g *Group) addMember(now time.Time, id string, c Caller, r *regroupv1.JoinGroupRequest) *member {
	m := &member{
		id:            id,
		instanceID:    r.GetGroupInstanceId(),
		clientID:      r.GetClientId(),
		clientHost:    c.Host,
		identity:      c.Identity,
		isNew:         true,
		assignment:    &regroupv1.Assignment{},
		assigned:      parts{},
		owned:         parts{},
		assignmentGen: -1,
		secret:        g.ids.MemberID(""),
	}
	g.update(m, r)
	m.sessionDeadline = now.Add(g.cfg.NewMemberJoinTimeout)
	g.members[id] = m
	g.order = append(g.order, m)
	g.sorted = nil
	if m.instanceID != "" {
		g.instances[m.instanceID] = m
	}
	if g.leader == "" && !g.next {
		g.leader = id
	}
	g.newMemberAdded = true
	g.schedule(m)
	return m
}

// update applies a (re)join's protocols and timeouts to m (KAFKA-14009:
// both timeouts follow every rejoin).
func (g *Group) update(m *member, r *regroupv1.JoinGroupRequest) {
	g.uncount(m)
	m.protocols = r.GetProtocols()
	g.count(m)
	m.sessionTimeout = time.Duration(r.GetSessionTimeoutMs()) * time.Millisecond
	m.rebalanceTimeout = time.Duration(r.GetRebalanceTimeoutMs()) * time.Millisecond
	if r.GetClientId() != "" {
		m.clientID = r.GetClientId()
	}
}

// count adds m's protocols to the number of members offering each (a name
// m lists twice counts once).
func (g *Group) count(m *member) { g.tally(m, 1) }

// uncount takes m's protocols out of the number of members offering each.
func (g *Group) uncount(m *member) { g.tally(m, -1) }

func (g *Group) tally(m *member, d int) {
	if d > 0 {
		m.protoBytes = m.footprint()
	}
	g.protoBytes += d * m.protoBytes
	for i, p := range m.protocols {
		if !slices.ContainsFunc(m.protocols[:i], func(q *regroupv1.Protocol) bool { return q.GetName() == p.GetName() }) {
			g.offered[p.GetName()] += d
		}
	}
}

// reportOwned records what m says it still owns when it rejoins: whatever it
// no longer reports is released. It returns the number released.
func (g *Group) reportOwned(m *member, r *regroupv1.JoinGroupRequest) int {
	if len(r.GetProtocols()) == 0 {
		return 0
	}
	g.held = nil
	lists := r.GetProtocols()[0].GetSubscription().GetOwnedPartitions()
	if m.owned.coveredBy(lists) {
		return 0
	}
	kept := m.owned.intersect(partsFromProto(lists))
	released := m.owned.count() - kept.count()
	m.owned = kept
	return released
}

// refresh extends m's session and lease: the group answered it successfully.
// If the cached heldIndex counts m's lease, it is extended there too (only a
// flag test for the members it does not count: heartbeats come here).
func (g *Group) refresh(now time.Time, m *member) {
	m.sessionDeadline = now.Add(m.sessionTimeout)
	if until := now.Add(m.sessionTimeout); until.After(m.leaseUntil) {
		m.leaseUntil = until
		if m.inHeld && g.held != nil {
			g.held.raise(m.beyond, until)
		}
	}
	g.schedule(m)
}

// remove takes m out of the group, answering its parked requests with err.
// Unless graceful (the member itself left, having released its partitions),
// what it may still hold is kept from others until its lease ends.
func (g *Group) remove(now time.Time, out *Output, m *member, why string, graceful bool, err error) {
	g.held = nil
	if g.next {
		if !m.settled {
			g.unsettled--
		}
		// Moves count from its target, whatever it was given of it yet;
		// what it held may go to others once released or its hold ends.
		g.departed = append(g.departed, ownerParts{owner: m.key(), parts: m.target})
		g.claims, g.releases = nil, true
	}
	for _, req := range []ReqID{m.joinReq, m.syncReq, m.hbReq} {
		if req != 0 {
			out.fail(req, err)
		}
	}
	m.joinReq, m.syncReq, m.hbReq = 0, 0, 0
	if graceful {
		g.released += m.owned.count()
	} else if m.owned.count() > 0 && m.leaseUntil.After(now) {
		g.holds = append(g.holds, hold{member: m.id, partitions: m.owned, until: m.leaseUntil, sessionTimeout: m.sessionTimeout})
	}
	if m.assigned.count() > 0 {
		g.departed = append(g.departed, ownerParts{owner: m.key(), parts: m.assigned})
	}
	delete(g.members, m.id)
	m.removed = true
	g.uncount(m)
	i := slices.Index(g.order, m)
	g.order = slices.Delete(g.order, i, i+1)
	g.sorted, g.joinedHead = nil, 0
	if m.instanceID != "" && g.instances[m.instanceID] == m {
		delete(g.instances, m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
		if len(g.order) > 0 {
			g.leader = g.order[min(i, len(g.order)-1)].id
		}
	}
	out.Persist = true
	out.event(Event{Kind: EventMemberRemoved, Member: m.id, Detail: why})
}

// validateMember finds the member a request names (Kafka's validateMember).
func (g *Group) validateMember(memberID, instanceID string) (*member, error) {
	if instanceID != "" {
		m := g.instances[instanceID]
		if m == nil {
			return nil, regroup.Errorf(regroup.CodeUnknownMemberID, "instance %q is not a member of group %q", instanceID, g.id)
		}
		if m.id != memberID {
			return nil, regroup.Errorf(regroup.CodeFencedInstanceID,
				"member %q was replaced by %q, which joined with the same instance id %q", memberID, m.id, instanceID)
		}
		return m, nil
	}
	m := g.members[memberID]
	if m == nil {
		return nil, regroup.Errorf(regroup.CodeUnknownMemberID, "member %q is not a member of group %q", memberID, g.id)
	}
	if m.instanceID != "" {
		return nil, regroup.Errorf(regroup.CodeFencedInstanceID,
			"member %q is static (instance %q) but the request has no instance id", memberID, m.instanceID)
	}
	return m, nil
}

// authorize checks that c may act as m: the identity that joined m, an
// administrator, or anyone for a member that joined without
// authentication (it is bound at its next join).
func (g *Group) authorize(m *member, c Caller) error {
	if c.Admin || m.identity == "" || m.identity == c.Identity {
		return nil
	}
	who := "an unauthenticated caller"
	if c.Identity != "" {
		who = fmt.Sprintf("identity %q", c.Identity)
	}
	return regroup.Errorf(regroup.CodeNotAuthorized, "member %s of group %q belongs to identity %q; %s may not act as it", m.id, g.id, m.identity, who)
}

// authorizePending checks that c may use the pending member id id: the
// identity it was minted for, or an administrator.
func (g *Group) authorizePending(id string, c Caller) error {
	if owner := g.pending.owner(id); !c.Admin && owner != c.Identity {
		return regroup.Errorf(regroup.CodeNotAuthorized, "member id %q of group %q was minted for identity %q, not for %q; join with an empty member id to get one of your own", id, g.id, owner, c.Identity)
	}
	return nil
}

// supportsProtocols reports whether some protocol of protocols is offered by
// every member other than except (nil, or a member of the group).
func (g *Group) supportsProtocols(protocols []*regroupv1.Protocol, except *member) bool {
	others := len(g.order)
	if except != nil {
		others--
	}
	for _, p := range protocols {
		n := g.offered[p.GetName()]
		if except != nil && except.offers(p.GetName()) != nil {
			n--
		}
		if n == others {
			return true
		}
	}
	return false
}

// selectProtocol picks the protocol every member offers that most members
// prefer; ties go to the one the leader prefers.
func (g *Group) selectProtocol() string {
	leader := g.members[g.leader]
	if leader == nil {
		leader = g.order[0]
	}
	votes := map[string]int{}
	var candidates []string
	for _, p := range leader.protocols {
		if g.offered[p.GetName()] == len(g.order) {
			candidates = append(candidates, p.GetName())
			votes[p.GetName()] = 0
		}
	}
	if len(candidates) == 0 {
		panic(fmt.Sprintf("group %q: members share no protocol at join completion", g.id))
	}
	for _, m := range g.order {
		for _, p := range m.protocols {
			if _, ok := votes[p.GetName()]; ok {
				votes[p.GetName()]++
				break
			}
		}
	}
	best := candidates[0]
	for _, c := range candidates[1:] {
		if votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

// protocolsEqual reports whether a and b are equal lists of protocols, as
// proto.Equal compares each pair.
func protocolsEqual(a, b []*regroupv1.Protocol) bool {
	return slices.EqualFunc(a, b, protocolEqual)
}

// protocolEqual is proto.Equal(x, y), compared field by field: every
// rejoin compares its protocols with the member's, and proto.Equal's
// reflection costs more than the rest of the join. Messages with unknown
// fields or nil list elements are left to proto.Equal.
func protocolEqual(x, y *regroupv1.Protocol) bool {
	if !plain(x) || !plain(y) {
		return proto.Equal(x, y)
	}
	if x.GetName() != y.GetName() {
		return false
	}
	xs, ys := x.GetSubscription(), y.GetSubscription()
	if xs == nil || ys == nil {
		return xs == ys
	}
	return xs.GetGeneration() == ys.GetGeneration() && xs.GetRack() == ys.GetRack() &&
		slices.Equal(xs.GetTopics(), ys.GetTopics()) && bytes.Equal(xs.GetUserData(), ys.GetUserData()) &&
		slices.EqualFunc(xs.GetOwnedPartitions(), ys.GetOwnedPartitions(), func(a, b *regroupv1.TopicPartitions) bool {
			return a.GetTopic() == b.GetTopic() && slices.Equal(a.GetPartitions(), b.GetPartitions())
		})
}

// plain reports whether p is a non-nil message without unknown fields or nil
// list elements, which protocolEqual can compare field by field.
func plain(p *regroupv1.Protocol) bool {
	if p == nil || len(p.ProtoReflect().GetUnknown()) > 0 {
		return false
	}
	s := p.GetSubscription()
	if s == nil {
		return true
	}
	if len(s.ProtoReflect().GetUnknown()) > 0 {
		return false
	}
	for _, tp := range s.GetOwnedPartitions() {
		if tp == nil || len(tp.ProtoReflect().GetUnknown()) > 0 {
			return false
		}
	}
	return true
}

// sameSubscriptions reports whether a and b differ at most in the owned
// partitions and their generation: a cooperative member that released
// partitions rejoins with such a change.
func sameSubscriptions(a, b []*regroupv1.Protocol) bool {
	return slices.EqualFunc(a, b, func(x, y *regroupv1.Protocol) bool {
		xs, ys := x.GetSubscription(), y.GetSubscription()
		return x.GetName() == y.GetName() && slices.Equal(xs.GetTopics(), ys.GetTopics()) &&
			xs.GetRack() == ys.GetRack() && bytes.Equal(xs.GetUserData(), ys.GetUserData())
	})
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
