package group_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/internal/scenario"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestScenarios runs the scenario files in testdata/. Each file drives one
// group with commands and shows every reply, state change, persist and the
// next deadline. Regenerate expected output with:
//
//	go test ./coordinator/group -run TestScenarios -rewrite
//
// Commands (times are offsets from the scenario's start; an input at t
// first fires every timer due up to t, as the driver would):
//
//	config [initial-delay=3s] [min-session=6s] [max-session=30m] [max-size=0]
//	       [retention=24h] [new-member-timeout=5m] [max-rebalance=1h]
//	       [max-metadata=1048576] [max-group-metadata=16777216]
//	       [max-pending=1000] [pending-timeout=5s]
//	topics NAME=COUNT ...
//	join req=N [at=T] [member=ID] [instance=I] [client=C] [session=10s]
//	     [rebalance=30s] [protocols=range,sticky] [topics=a,b]
//	     [owned=a:0-3/b:1] [gen=G] [reason=R] [userdata=N] [lost=N]
//	sync req=N [at=T] member=ID gen=G [instance=I] [protocol=P]
//	     (input: one line per member, "ID: topic=0,1 topic2=3")
//	heartbeat req=N [at=T] member=ID gen=G [instance=I] [hold=1s]
//	reconcile req=N [at=T] [member=ID] [epoch=E] [instance=I] [topics=a,b]
//	     [owned=a:0-3/b:1] [hold=3s] [session=10s] [rebalance=30s]
//	     [assignor=NAME] [lost=N] [no-secret | secret=S] [rev=N]   (a
//	     next-generation member's call; with a member id it carries that
//	     member's secret, and the revision of the last assignment an
//	     answer gave it unless rev is given)
//	leave req=N [at=T] [members=ID,ID] [instances=I,I] [temporary] [reason=R]
//	      [no-secret | secret=S]   (an entry with a member id carries the
//	      secret that member last got in a JoinGroup answer, unless told)
//	secrets   (the secret each member id last got in a JoinGroup answer)
//	tick at=T
//	describe [at=T]
//	history   (and the group's count of partitions reported lost)
//	delete [at=T]   (an administrator deletes the group: Group.Delete)
//	restore [at=T] [config keys]   (reload the group from its last
//	        persisted record, as a new coordinator would; after a delete,
//	        from its tombstone, as the next JoinGroup would)
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := &harness{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return h.run(t, d)
		})
	})
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	cfg      group.Config
	ids      *scenario.SeqIDs
	g        *group.Group
	now      time.Duration
	registry map[string]int32
	stored   []byte
	inv      *invariants
	secrets  map[string]string // member id -> the secret its last JoinGroup answer carried
	revs     map[string]int64  // member id -> the revision of the last assignment an answer gave it
	b        strings.Builder
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	h.b.Reset()
	if d.Cmd != "config" && h.g == nil {
		h.configure(t, nil)
	}
	if at, ok := scenario.Arg(d, "at"); ok {
		h.advance(t, scenario.Duration(t, at))
	}
	switch d.Cmd {
	case "config":
		h.configure(t, d)
	case "topics":
		h.topics(t, d)
	case "join":
		h.join(t, d)
	case "sync":
		h.sync(t, d)
	case "heartbeat":
		h.heartbeat(t, d)
	case "leave":
		h.leave(t, d)
	case "reconcile":
		h.reconcile(t, d)
	case "tick":
	case "describe":
		h.describe()
	case "history":
		for _, r := range h.g.Describe().GetRebalances() {
			h.printf("%s\n", fmtRebalance(r))
		}
		if n := h.g.PartitionsLost(); n > 0 {
			h.printf("partitions lost in all: %d\n", n)
		}
	case "secrets":
		ids := make([]string, 0, len(h.secrets))
		for id := range h.secrets {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			h.printf("%s: %s\n", id, h.secrets[id])
		}
	case "delete":
		out, err := h.g.Delete(h.at())
		if err != nil {
			h.printf("delete error: %s\n", scenario.Err(err))
		}
		h.show(t, out)
	case "restore":
		h.applyConfig(t, d)
		h.restore(t)
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	return h.b.String()
}

func (h *harness) printf(format string, args ...any) { fmt.Fprintf(&h.b, format, args...) }

func (h *harness) configure(t *testing.T, d *datadriven.TestData) {
	h.cfg = group.DefaultConfig()
	h.cfg.InitialRebalanceDelay = 0
	h.applyConfig(t, d)
	h.ids = &scenario.SeqIDs{}
	h.now = 0
	if h.registry == nil {
		h.registry = map[string]int32{}
	}
	h.g = group.New("g", h.cfg, h.ids, h.registry, epoch)
	h.inv = newInvariants()
	h.secrets = map[string]string{}
	h.revs = map[string]int64{}
}

// applyConfig sets the config keys of d on h.cfg.
func (h *harness) applyConfig(t *testing.T, d *datadriven.TestData) {
	if d == nil {
		return
	}
	for _, a := range d.CmdArgs {
		v := a.Vals[0]
		switch a.Key {
		case "at":
		case "initial-delay":
			h.cfg.InitialRebalanceDelay = scenario.Duration(t, v)
		case "min-session":
			h.cfg.MinSessionTimeout = scenario.Duration(t, v)
		case "max-session":
			h.cfg.MaxSessionTimeout = scenario.Duration(t, v)
		case "max-rebalance":
			h.cfg.MaxRebalanceTimeout = scenario.Duration(t, v)
		case "max-size":
			h.cfg.MaxSize = int(scenario.Int(t, v))
		case "retention":
			h.cfg.EmptyRetention = scenario.Duration(t, v)
		case "new-member-timeout":
			h.cfg.NewMemberJoinTimeout = scenario.Duration(t, v)
		case "max-metadata":
			h.cfg.MaxMetadataBytes = int(scenario.Int(t, v))
		case "max-group-metadata":
			h.cfg.MaxGroupMetadataBytes = int(scenario.Int(t, v))
		case "max-pending":
			h.cfg.MaxPendingMembers = int(scenario.Int(t, v))
		case "pending-timeout":
			h.cfg.PendingMemberTimeout = scenario.Duration(t, v)
		default:
			t.Fatalf("%s: unknown config key %q", d.Pos, a.Key)
		}
	}
	if err := h.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) at() time.Time { return epoch.Add(h.now) }

// advance fires every timer due up to offset, then moves the clock there.
func (h *harness) advance(t *testing.T, to time.Duration) {
	if to < h.now {
		t.Fatalf("time goes backwards: %v after %v", to, h.now)
	}
	for {
		next := h.g.NextDeadline()
		if next.IsZero() || next.After(epoch.Add(to)) {
			break
		}
		if next.Before(h.at()) {
			next = h.at()
		}
		h.now = next.Sub(epoch)
		out := h.g.Tick(next)
		h.printf("t=%v tick\n", h.now)
		h.show(t, out)
		if h.g.NextDeadline().Equal(next) {
			t.Fatalf("Tick at %v left its own deadline in place", h.now)
		}
	}
	h.now = to
}

func (h *harness) show(t *testing.T, out group.Output) {
	h.inv.check(t, h.g, out)
	for _, e := range out.Events {
		switch e.Kind {
		case group.EventStateChanged:
			h.printf("  state %v -> %v\n", e.From, e.To)
		case group.EventMemberRemoved:
			h.printf("  removed %s: %s\n", e.Member, e.Detail)
		case group.EventAssignmentRefused:
			h.printf("  refused assignment from %s: %s\n", e.Member, e.Detail)
		case group.EventRebalanceStarted:
			h.printf("  rebalance started (%s): %s\n", e.Cause, e.Detail)
		case group.EventRebalanceDone:
			h.printf("  rebalance done: %s (unowned %d)\n", fmtRebalance(e.Rebalance), e.Unowned)
		case group.EventMemberReplaced:
			h.printf("  replaced: %s\n", e.Detail)
		}
	}
	if out.Persist {
		h.printf("  persist\n")
	}
	if out.Persist || out.Delete {
		// A deleted group's record is its tombstone: the driver writes it.
		h.persist(t)
	}
	if out.Delete {
		h.printf("  delete\n")
	}
	for _, r := range out.Replies {
		if j, ok := r.Msg.(*regroupv1.JoinGroupResponse); ok {
			h.secrets[j.GetMemberId()] = j.GetMemberSecret()
		}
		if rr, ok := r.Msg.(*regroupv1.ReconcileResponse); ok {
			if rr.GetMemberSecret() != "" {
				h.secrets[rr.GetMemberId()] = rr.GetMemberSecret()
			}
			if a := rr.GetAssignment(); a != nil && r.HoldUntil.IsZero() {
				h.revs[rr.GetMemberId()] = max(h.revs[rr.GetMemberId()], a.GetRevision())
			}
		}
		h.printf("  reply req=%d: %s\n", r.Req, fmtReply(h, r))
	}
	if next := h.g.NextDeadline(); !next.IsZero() {
		h.printf("  next deadline t=%v\n", next.Sub(epoch))
	}
}

func (h *harness) persist(t *testing.T) {
	b, err := marshal(h.g.Record())
	if err != nil {
		t.Fatal(err)
	}
	h.stored = b
}

func (h *harness) restore(t *testing.T) {
	rec, err := unmarshal(h.stored)
	if err != nil {
		t.Fatal(err)
	}
	g, out, err := group.Restore(rec, h.cfg, h.ids, h.registry, h.at())
	if err != nil {
		h.printf("restore error: %v\n", err)
		return
	}
	h.g = g
	h.printf("restored %s generation %d\n", g.State(), g.Generation())
	h.show(t, out)
}

func fmtReply(h *harness, r group.Reply) string {
	if r.Err != nil {
		return scenario.Err(r.Err)
	}
	var s string
	switch m := r.Msg.(type) {
	case *regroupv1.JoinGroupResponse:
		s = fmt.Sprintf("join gen=%d member=%s leader=%s protocol=%s", m.GetGeneration(), m.GetMemberId(), m.GetLeaderId(), m.GetProtocolName())
		if m.GetSkipAssignment() {
			s += " skip-assignment"
		}
		for _, mm := range m.GetMembers() {
			s += "\n    member " + mm.GetMemberId()
			if mm.GetGroupInstanceId() != "" {
				s += " instance=" + mm.GetGroupInstanceId()
			}
			s += " topics=" + strings.Join(mm.GetSubscription().GetTopics(), ",")
			if o := mm.GetSubscription().GetOwnedPartitions(); len(o) > 0 {
				s += fmt.Sprintf(" owned=%s gen=%d", scenario.Parts(o, "="), mm.GetSubscription().GetGeneration())
				if mm.GetOwnedNotHeld() {
					s += " not-held"
				}
			}
		}
		if len(m.GetTopics()) > 0 {
			var ts []string
			for _, tp := range m.GetTopics() {
				ts = append(ts, fmt.Sprintf("%s:%d", tp.GetName(), tp.GetPartitions()))
			}
			s += "\n    topics " + strings.Join(ts, " ")
		}
	case *regroupv1.SyncGroupResponse:
		s = fmt.Sprintf("sync assignment=%s token=%s", scenario.Parts(m.GetAssignment().GetPartitions(), "="), scenario.Token(m.GetFencingToken()))
		if u := m.GetUnknownTopics(); len(u) > 0 {
			s += " unknown-topics=" + strings.Join(u, ",")
		}
	case *regroupv1.ReconcileResponse:
		s = fmt.Sprintf("reconcile member=%s epoch=%d", m.GetMemberId(), m.GetMemberEpoch())
		if a := m.GetAssignment(); a != nil {
			s += fmt.Sprintf(" assignment=%s token=%s rev=%d", scenario.Parts(a.GetPartitions(), "="), scenario.Token(a.GetFencingToken()), a.GetRevision())
		}
		if m.GetMemberSecret() != "" {
			s += " secret"
		}
		if u := m.GetUnknownTopics(); len(u) > 0 {
			s += " unknown-topics=" + strings.Join(u, ",")
		}
		if !r.HoldUntil.IsZero() {
			s += fmt.Sprintf(" (held until t=%v)", r.HoldUntil.Sub(epoch))
		}
	case *regroupv1.HeartbeatResponse:
		s = "heartbeat ok"
		if !r.HoldUntil.IsZero() {
			s += fmt.Sprintf(" (held until t=%v)", r.HoldUntil.Sub(epoch))
		}
	case *regroupv1.LeaveGroupResponse:
		s = "leave"
		for _, e := range m.GetMembers() {
			who := e.GetMemberId()
			if who == "" {
				who = "instance " + e.GetGroupInstanceId()
			}
			if e.GetErrorReason() == "" {
				s += fmt.Sprintf("\n    %s: ok", who)
			} else {
				s += fmt.Sprintf("\n    %s: %s", who, e.GetErrorReason())
			}
		}
	default:
		s = fmt.Sprintf("%T", m)
	}
	return s
}

func fmtRebalance(r *regroupv1.Rebalance) string {
	s := fmt.Sprintf("gen=%d cause=%q start=t=%v", r.GetGeneration(), r.GetCause(), r.GetStart().AsTime().Sub(epoch))
	if a := r.GetAssignmentAccepted(); a != nil && !proto.Equal(a, r.GetEnd()) {
		s += fmt.Sprintf(" accepted=t=%v", a.AsTime().Sub(epoch))
	}
	if r.GetEnd() != nil {
		s += fmt.Sprintf(" end=t=%v", r.GetEnd().AsTime().Sub(epoch))
	}
	if r.GetNoRebalance() {
		s += " no-rebalance"
	}
	s += fmt.Sprintf(" members=%s moved=%d revoked=%d", strings.Join(r.GetMembers(), ","), r.GetPartitionsMoved(), r.GetPartitionsRevoked())
	if n := r.GetPartitionsLost(); n > 0 {
		s += fmt.Sprintf(" lost=%d", n)
	}
	return s
}

func (h *harness) topics(t *testing.T, d *datadriven.TestData) {
	reg := map[string]int32{}
	for _, a := range d.CmdArgs {
		if a.Key == "at" {
			continue
		}
		reg[a.Key] = int32(scenario.Int(t, a.Vals[0]))
	}
	h.registry = reg
	out, change := h.g.SetTopics(h.at(), reg)
	if change != "" {
		h.printf("change: %s\n", change)
	}
	h.show(t, out)
}

func (h *harness) join(t *testing.T, d *datadriven.TestData) {
	h.show(t, h.g.Join(h.at(), h.req(t, d), caller(d), scenario.JoinRequest(t, d)))
}

// caller is who sends a command's request: as=NAME is an authenticated
// identity, admin an administrator; by default an unauthenticated client.
func caller(d *datadriven.TestData) group.Caller {
	_, admin := scenario.Arg(d, "admin")
	return group.Caller{Host: "127.0.0.1", Identity: scenario.ArgOr(d, "as", ""), Admin: admin}
}

func (h *harness) req(t *testing.T, d *datadriven.TestData) group.ReqID {
	v, ok := scenario.Arg(d, "req")
	if !ok {
		t.Fatalf("%s: missing req=N", d.Pos)
	}
	return group.ReqID(scenario.Int(t, v))
}

func (h *harness) sync(t *testing.T, d *datadriven.TestData) {
	r := scenario.SyncRequest(t, d)
	req := h.req(t, d)
	h.inv.syncSent(req, r.GetMemberId())
	h.show(t, h.g.Sync(h.at(), req, caller(d), r))
}

func (h *harness) heartbeat(t *testing.T, d *datadriven.TestData) {
	r := &regroupv1.HeartbeatRequest{
		GroupId:         "g",
		MemberId:        scenario.ArgOr(d, "member", ""),
		GroupInstanceId: scenario.ArgOr(d, "instance", ""),
		Generation:      int32(scenario.Int(t, scenario.ArgOr(d, "gen", "0"))),
		HoldMs:          scenario.Duration(t, scenario.ArgOr(d, "hold", "0s")).Milliseconds(),
	}
	h.show(t, h.g.Heartbeat(h.at(), h.req(t, d), caller(d), r))
}

func (h *harness) leave(t *testing.T, d *datadriven.TestData) {
	r := &regroupv1.LeaveGroupRequest{GroupId: "g"}
	_, temporary := scenario.Arg(d, "temporary")
	_, noSecret := scenario.Arg(d, "no-secret")
	for _, id := range scenario.List(scenario.ArgOr(d, "members", "")) {
		member, instance, _ := strings.Cut(id, "/")
		secret := scenario.ArgOr(d, "secret", h.secrets[member])
		if noSecret {
			secret = ""
		}
		r.Members = append(r.Members, &regroupv1.LeaveMember{MemberId: member, GroupInstanceId: instance, Temporary: temporary, Reason: scenario.ArgOr(d, "reason", ""), MemberSecret: secret})
	}
	for _, inst := range scenario.List(scenario.ArgOr(d, "instances", "")) {
		r.Members = append(r.Members, &regroupv1.LeaveMember{GroupInstanceId: inst, Reason: scenario.ArgOr(d, "reason", "")})
	}
	h.show(t, h.g.Leave(h.at(), h.req(t, d), caller(d), r))
}

func (h *harness) reconcile(t *testing.T, d *datadriven.TestData) {
	r := scenario.ReconcileRequest(t, d)
	r.MemberSecret = scenario.ArgOr(d, "secret", h.secrets[r.GetMemberId()])
	if _, ok := scenario.Arg(d, "rev"); !ok {
		r.AssignmentRevision = h.revs[r.GetMemberId()]
	}
	if _, ok := scenario.Arg(d, "no-secret"); ok {
		r.MemberSecret = ""
	}
	h.show(t, h.g.Reconcile(h.at(), h.req(t, d), caller(d), r))
}

func (h *harness) describe() {
	d := h.g.Describe()
	h.printf("state=%s generation=%d protocol=%s leader=%s\n",
		strings.TrimPrefix(d.GetState().String(), "GROUP_STATE_"), d.GetGeneration(), d.GetProtocolName(), d.GetLeaderId())
	if d.GetGroupProtocol() == "next" {
		h.printf("  next-generation assignment-epoch=%d\n", d.GetAssignmentEpoch())
	}
	for _, m := range d.GetMembers() {
		flags := []string{}
		if m.GetStatic() {
			flags = append(flags, "static="+m.GetGroupInstanceId())
		}
		if m.GetIdentity() != "" {
			flags = append(flags, "identity="+m.GetIdentity())
		}
		if m.GetJoined() {
			flags = append(flags, "joined")
		}
		if m.GetAwaitingSync() {
			flags = append(flags, "awaiting-sync")
		}
		if w := m.GetAssignmentWaitsUntil(); w != nil {
			flags = append(flags, fmt.Sprintf("waits-until=t=%v", w.AsTime().Sub(epoch)))
		}
		if d.GetGroupProtocol() == "next" {
			flags = append(flags, fmt.Sprintf("epoch=%d target=%s", m.GetMemberEpoch(), scenario.Parts(m.GetTarget(), "=")))
			if r := m.GetRevoking(); len(r) > 0 {
				flags = append(flags, "revoking="+scenario.Parts(r, "="))
			}
		}
		h.printf("  %s%s session-deadline=t=%v assignment=%s token=%s\n", m.GetMemberId(), prefixSpace(strings.Join(flags, " ")),
			m.GetSessionDeadline().AsTime().Sub(epoch), scenario.Parts(m.GetAssignment().GetPartitions(), "="), scenario.Token(m.GetFencingToken()))
	}
	if p := d.GetPendingMemberIds(); len(p) > 0 {
		h.printf("  pending %s\n", strings.Join(p, ","))
	}
	if u := d.GetUnknownTopics(); len(u) > 0 {
		h.printf("  unknown-topics %s\n", strings.Join(u, ","))
	}
	if ts := d.GetTopics(); len(ts) > 0 {
		var s []string
		for _, tp := range ts {
			s = append(s, fmt.Sprintf("%s:%d", tp.GetName(), tp.GetPartitions()))
		}
		h.printf("  topics %s\n", strings.Join(s, " "))
	}
}

func prefixSpace(s string) string {
	if s == "" {
		return ""
	}
	return " " + s
}
