package node_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/node"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/internal/scenario"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestScenarios runs the scenario files in testdata/. Each file drives one
// node (one coordinator's term) with calls, store outcomes and time, and
// shows every reply, store operation, fault, group event and the next
// deadline. The harness keeps the "store": a write reaches it only when
// its outcome is ok or unknown. Regenerate expected output with:
//
//	go test ./coordinator/node -run TestScenarios -rewrite
//
// Commands (times are offsets from the start; an input at T first ticks
// the node at every deadline up to T, as the driver's timer would):
//
//	topics NAME=COUNT ...            (put in the store directly)
//	start [at=T] [valid-until=T] [max-groups=N] [max-members=N] [overload=D] [transit=D]
//	     (a new term loads the store; overload is Overload.Delay, transit
//	     Overload.Transit, with 1 s intervals)
//	valid-until t=T                  (the term's validity from now on)
//	join req=N (the arguments of internal/scenario.JoinRequest; a client
//	     id starting with "panic" makes the id source panic, standing for
//	     a bug in the group's state machine)
//	sync req=N [group=g] member=ID [instance=I] gen=G   (input: "ID: topic=0,1" lines)
//	heartbeat req=N [group=g] member=ID [instance=I] gen=G [hold=D]
//	     [transit=D] [repeat=K]   (K heartbeats, req N to N+K-1, each
//	     answered at once: only the last one's output is shown)
//	leave req=N [group=g] [members=ID[/INSTANCE],...] [temporary]
//	     (each member sends the secret its last JoinGroup answer gave it)
//	reconcile req=N (the arguments of internal/scenario.ReconcileRequest;
//	     a member id sends the secret its first answer gave it)
//	remove req=N [group=g] instances=I,...
//	delete req=N [group=g]
//	put-topic req=N name=T partitions=P
//	store-topic name=T partitions=P|delete|broken
//	     (another coordinator changes the store; the node hears nothing)
//	read-topics [begun]              (the driver reads the registry: TopicsStored;
//	     shows the node's registry after; begun: the read that
//	     begin-read-topics began, delivered now)
//	begin-read-topics                (the driver begins a read of the registry)
//	done write=W outcome=ok|failed|unknown|fenced
//	load group=G [outcome=ok|failed]  (answer the node's load)
//	tick at=T
//	describe [group=g]
//	admit                            (an Admin read asks Node.Admit)
//	elsewhere members=N groups=M     (what the process's other nodes hold,
//	     Input.Elsewhere, from the next input on; shows the node's Counts)
//
// Every call, tick and admit takes queued=D, how long it waited before the
// node got to it (Input.Queued; 0 by default).
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := &harness{stored: map[string][]byte{}, topics: map[string]int32{}, brokenTopics: map[string]error{}, secrets: map[string]string{}, revs: map[string]int64{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return h.run(t, d)
		})
	})
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	n          *node.Node
	ids        *scenario.SeqIDs
	now        time.Duration
	validUntil time.Duration // 0: no limit
	maxGroups  int           // 0: the default
	maxMembers int           // 0: no limit
	overload   time.Duration // Overload.Delay; 0: none
	transit    time.Duration // Overload.Transit; 0: none
	// brokenTopics are the store's topic records that cannot be decoded.
	brokenTopics map[string]error
	queued       time.Duration // the command's queued=D
	elsewhere    node.Elsewhere
	begun        node.TopicsStored // the read begin-read-topics began
	stored       map[string][]byte
	topics       map[string]int32
	writes       map[node.WriteID]node.Write
	secrets      map[string]string // member id -> the secret its JoinGroup answer gave
	revs         map[string]int64  // member id -> the revision of the last assignment an answer gave it
	b            strings.Builder
}

func (h *harness) printf(format string, args ...any) { fmt.Fprintf(&h.b, format, args...) }

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	h.b.Reset()
	if h.n == nil && d.Cmd != "topics" && d.Cmd != "start" {
		h.start(t)
	}
	h.queued = scenario.Duration(t, scenario.ArgOr(d, "queued", "0s"))
	if at, ok := scenario.Arg(d, "at"); ok {
		h.advance(t, scenario.Duration(t, at))
	}
	switch d.Cmd {
	case "topics":
		for _, a := range d.CmdArgs {
			h.topics[a.Key] = int32(scenario.Int(t, a.Vals[0]))
		}
	case "start":
		if v, ok := scenario.Arg(d, "valid-until"); ok {
			h.validUntil = scenario.Duration(t, v)
		}
		if v, ok := scenario.Arg(d, "max-groups"); ok {
			h.maxGroups = int(scenario.Int(t, v))
		}
		if v, ok := scenario.Arg(d, "max-members"); ok {
			h.maxMembers = int(scenario.Int(t, v))
		}
		if v, ok := scenario.Arg(d, "overload"); ok {
			h.overload = scenario.Duration(t, v)
		}
		if v, ok := scenario.Arg(d, "transit"); ok {
			h.transit = scenario.Duration(t, v)
		}
		h.start(t)
	case "valid-until":
		h.validUntil = scenario.Duration(t, scenario.ArgOr(d, "t", "0s"))
	case "join":
		h.call(t, d, scenario.JoinRequest(t, d))
	case "sync":
		h.call(t, d, scenario.SyncRequest(t, d))
	case "heartbeat":
		h.heartbeats(t, d)
	case "leave":
		r := &regroupv1.LeaveGroupRequest{GroupId: scenario.ArgOr(d, "group", "g")}
		_, temporary := scenario.Arg(d, "temporary")
		for _, id := range scenario.List(scenario.ArgOr(d, "members", "")) {
			member, instance, _ := strings.Cut(id, "/")
			r.Members = append(r.Members, &regroupv1.LeaveMember{MemberId: member, GroupInstanceId: instance, Temporary: temporary, MemberSecret: h.secrets[member]})
		}
		h.call(t, d, r)
	case "reconcile":
		r := scenario.ReconcileRequest(t, d)
		r.MemberSecret = h.secrets[r.GetMemberId()]
		if _, ok := scenario.Arg(d, "rev"); !ok {
			r.AssignmentRevision = h.revs[r.GetMemberId()]
		}
		h.call(t, d, r)
	case "remove":
		h.call(t, d, &regroupv1.RemoveMembersRequest{GroupId: scenario.ArgOr(d, "group", "g"), GroupInstanceIds: scenario.List(scenario.ArgOr(d, "instances", ""))})
	case "delete":
		h.call(t, d, &regroupv1.DeleteGroupRequest{GroupId: scenario.ArgOr(d, "group", "g")})
	case "put-topic":
		h.call(t, d, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{
			Name: scenario.ArgOr(d, "name", ""), Partitions: int32(scenario.Int(t, scenario.ArgOr(d, "partitions", "0")))}})
	case "store-topic":
		h.storeTopic(t, d)
	case "begin-read-topics":
		h.begun = h.beginRead()
	case "read-topics":
		_, begun := scenario.Arg(d, "begun")
		h.readTopics(begun)
	case "done":
		h.done(t, d)
	case "load":
		h.load(t, d)
	case "tick":
	case "describe":
		h.describe(scenario.ArgOr(d, "group", "g"))
	case "elsewhere":
		h.elsewhere = node.Elsewhere{Members: int(scenario.Int(t, scenario.ArgOr(d, "members", "0"))), Groups: int(scenario.Int(t, scenario.ArgOr(d, "groups", "0")))}
		c := h.n.Counts()
		h.printf("here: members=%d groups=%d\n", c.Members, c.Groups)
	case "admit":
		if err := h.n.Admit(h.at(), h.queued); err != nil {
			h.printf("%s\n", scenario.Err(err))
		} else {
			h.printf("admitted\n")
		}
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	return h.b.String()
}

func (h *harness) at() time.Time { return epoch.Add(h.now) }

func (h *harness) input(ev node.Event) node.Input {
	in := node.Input{Now: h.at(), Event: ev, Queued: h.queued, Elsewhere: h.elsewhere}
	if h.validUntil > 0 {
		in.ValidUntil = epoch.Add(h.validUntil)
	}
	return in
}

// beginRead reads the registry as the store holds it now.
func (h *harness) beginRead() node.TopicsStored {
	ev := node.TopicsStored{Writes: h.n.TopicWrites(), Broken: maps.Clone(h.brokenTopics)}
	for _, name := range slices.Sorted(maps.Keys(h.topics)) {
		ev.Topics = append(ev.Topics, &regroupv1.Topic{Name: name, Partitions: h.topics[name]})
	}
	return ev
}

// start begins a new term over what the store holds.
func (h *harness) start(t *testing.T) {
	snap := &store.Snapshot{Broken: map[string]error{}, GroupKeys: "groups/", TopicKeys: "topics/"}
	for _, name := range slices.Sorted(maps.Keys(h.topics)) {
		snap.Topics = append(snap.Topics, &regroupv1.Topic{Name: name, Partitions: h.topics[name]})
	}
	for _, id := range slices.Sorted(maps.Keys(h.stored)) {
		rec := &storev1.GroupRecord{}
		if err := proto.Unmarshal(h.stored[id], rec); err != nil {
			t.Fatal(err)
		}
		snap.Groups = append(snap.Groups, rec)
	}
	if h.ids == nil {
		h.ids = &scenario.SeqIDs{PanicPrefix: "panic"}
	}
	h.writes = map[node.WriteID]node.Write{}
	cfg := group.DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	if h.maxGroups > 0 {
		cfg.MaxGroups = h.maxGroups
	}
	cfg.MaxMembers = h.maxMembers
	var validUntil time.Time
	if h.validUntil > 0 {
		validUntil = epoch.Add(h.validUntil)
	}
	n, out := node.New(node.Config{Group: cfg, IDs: h.ids, Overload: node.Overload{Delay: h.overload, Transit: h.transit}}, snap, h.at(), validUntil)
	h.n = n
	h.printf("started: groups=%s tombstones=%d\n", strings.Join(n.GroupIDs(), ","), n.Tombstones())
	broken, topics := n.Broken(), n.BrokenTopics()
	for _, name := range slices.Sorted(maps.Keys(topics)) {
		h.printf("  broken topic %s: %v\n", name, topics[name])
	}
	for _, id := range slices.Sorted(maps.Keys(broken)) {
		h.printf("  broken group %s: %v\n", id, broken[id])
	}
	h.show(out)
}

// advance ticks the node at every deadline up to to, then moves there.
func (h *harness) advance(t *testing.T, to time.Duration) {
	if to < h.now {
		t.Fatalf("time goes backwards: %v after %v", to, h.now)
	}
	for i := 0; ; i++ {
		next := h.n.NextDeadline()
		if next.IsZero() || next.After(epoch.Add(to)) {
			break
		}
		if i > 1000 {
			t.Fatalf("the node asks to be ticked again and again at %v", next.Sub(epoch))
		}
		h.now = max(next.Sub(epoch), h.now)
		h.printf("t=%v tick\n", h.now)
		h.show(h.n.Step(h.input(node.Tick{})))
	}
	h.now = to
}

func (h *harness) call(t *testing.T, d *datadriven.TestData, msg proto.Message) {
	v, ok := scenario.Arg(d, "req")
	if !ok {
		t.Fatalf("%s: missing req=N", d.Pos)
	}
	h.show(h.n.Step(h.input(node.Request{Req: group.ReqID(scenario.Int(t, v)), Host: "127.0.0.1", Msg: msg})))
}

// heartbeats sends d's heartbeat, repeat=K times (req N to N+K-1): the
// output of all but the last must be one answer each (an error or not),
// and is not shown.
func (h *harness) heartbeats(t *testing.T, d *datadriven.TestData) {
	req := scenario.Int(t, scenario.ArgOr(d, "req", "0"))
	k := scenario.Int(t, scenario.ArgOr(d, "repeat", "1"))
	for i := range k {
		in := h.input(node.Request{Req: group.ReqID(req + i), Host: "127.0.0.1", Msg: &regroupv1.HeartbeatRequest{
			GroupId: scenario.ArgOr(d, "group", "g"), MemberId: scenario.ArgOr(d, "member", ""),
			GroupInstanceId: scenario.ArgOr(d, "instance", ""),
			Generation:      int32(scenario.Int(t, scenario.ArgOr(d, "gen", "0"))),
			HoldMs:          scenario.Duration(t, scenario.ArgOr(d, "hold", "0s")).Milliseconds(),
			TransitMs:       scenario.Duration(t, scenario.ArgOr(d, "transit", "0s")).Milliseconds(),
		}})
		out := h.n.Step(in)
		if i == k-1 {
			h.show(out)
		} else if len(out.Replies) != 1 {
			t.Fatalf("%s: heartbeat %d of %d: want one answer, have %+v", d.Pos, i+1, k, out.Replies)
		}
	}
	if k > 1 {
		h.printf("  (%d heartbeats before it answered alike)\n", k-1)
	}
}

func (h *harness) done(t *testing.T, d *datadriven.TestData) {
	id := node.WriteID(scenario.Int(t, scenario.ArgOr(d, "write", "0")))
	w, ok := h.writes[id]
	if !ok {
		h.printf("no write %d is in flight\n", id)
		return
	}
	delete(h.writes, id)
	outcome := map[string]node.Outcome{"ok": node.OK, "failed": node.Failed, "unknown": node.Unknown, "fenced": node.Fenced}[scenario.ArgOr(d, "outcome", "ok")]
	var err error
	if outcome != node.OK {
		err = fmt.Errorf("simulated %v", outcome)
	}
	if outcome == node.OK || outcome == node.Unknown {
		switch {
		case w.Group != nil:
			b, merr := proto.Marshal(w.Group)
			if merr != nil {
				t.Fatal(merr)
			}
			h.stored[w.Group.GetGroupId()] = b
		case w.Topic != nil:
			h.topics[w.Topic.GetName()] = w.Topic.GetPartitions()
		default:
			delete(h.topics, w.DeleteTopic)
		}
	}
	h.show(h.n.Step(h.input(node.WriteDone{ID: id, Outcome: outcome, Err: err})))
}

// storeTopic changes the store's registry behind the node's back, as the
// leader of another shard does.
func (h *harness) storeTopic(t *testing.T, d *datadriven.TestData) {
	name := scenario.ArgOr(d, "name", "")
	delete(h.brokenTopics, name)
	switch {
	case d.HasArg("delete"):
		delete(h.topics, name)
	case d.HasArg("broken"):
		delete(h.topics, name)
		h.brokenTopics[name] = fmt.Errorf("simulated undecodable record")
	default:
		h.topics[name] = int32(scenario.Int(t, scenario.ArgOr(d, "partitions", "0")))
	}
}

// readTopics steps the node with the registry as the store holds it.
// readTopics delivers a read of the registry: the one begun by
// begin-read-topics, or one begun now.
func (h *harness) readTopics(begun bool) {
	ev := h.begun
	if !begun {
		ev = h.beginRead()
	}
	h.show(h.n.Step(h.input(ev)))
	reg := h.n.Registry()
	var ts []string
	for _, name := range slices.Sorted(maps.Keys(reg)) {
		ts = append(ts, fmt.Sprintf("%s=%d", name, reg[name]))
	}
	h.printf("  registry %s\n", strings.Join(ts, " "))
}

func (h *harness) load(t *testing.T, d *datadriven.TestData) {
	id := scenario.ArgOr(d, "group", "g")
	done := node.LoadDone{Group: id, Outcome: node.OK}
	if scenario.ArgOr(d, "outcome", "ok") == "failed" {
		done.Outcome, done.Err = node.Failed, fmt.Errorf("simulated failure")
	} else if b, ok := h.stored[id]; ok {
		done.Record = &storev1.GroupRecord{}
		if err := proto.Unmarshal(b, done.Record); err != nil {
			t.Fatal(err)
		}
	}
	h.show(h.n.Step(h.input(done)))
}

func (h *harness) show(out node.Output) {
	if err := node.CheckAdmitted(h.n); err != nil {
		h.printf("  BUG: %v\n", err)
	}
	for _, o := range out.Observed {
		e := o.Event
		switch e.Kind {
		case group.EventStateChanged:
			h.printf("  %s: state %v -> %v (generation %d)\n", o.Group.ID(), e.From, e.To, o.Group.Generation())
		case group.EventRebalanceStarted:
			h.printf("  %s: rebalance started (%s): %s\n", o.Group.ID(), e.Cause, e.Detail)
		case group.EventMemberRemoved:
			h.printf("  %s: removed %s: %s\n", o.Group.ID(), e.Member, e.Detail)
		case group.EventMemberReplaced:
			h.printf("  %s: replaced: %s\n", o.Group.ID(), e.Detail)
		case group.EventAssignmentRefused:
			h.printf("  %s: refused assignment: %s\n", o.Group.ID(), e.Detail)
		}
	}
	for _, f := range out.Faults {
		h.printf("  fault: %s\n", f.Detail)
	}
	for _, w := range out.Writes {
		h.writes[w.ID] = w
		switch {
		case w.Group != nil:
			r := w.Group
			var ms []string
			for _, m := range r.GetMembers() {
				ms = append(ms, m.GetMemberId())
			}
			h.printf("  write %d: group %s %s gen=%d members=%s holds=%d\n", w.ID, r.GetGroupId(),
				strings.TrimPrefix(r.GetState().String(), "GROUP_STATE_"), r.GetGeneration(), strings.Join(ms, ","), len(r.GetHolds()))
		case w.Topic != nil:
			h.printf("  write %d: topic %s=%d\n", w.ID, w.Topic.GetName(), w.Topic.GetPartitions())
		default:
			h.printf("  write %d: delete topic %s\n", w.ID, w.DeleteTopic)
		}
	}
	for _, id := range out.Loads {
		h.printf("  load %s\n", id)
	}
	for _, r := range out.Replies {
		if j, ok := r.Msg.(*regroupv1.JoinGroupResponse); ok {
			h.secrets[j.GetMemberId()] = j.GetMemberSecret()
		}
		if rr, ok := r.Msg.(*regroupv1.ReconcileResponse); ok {
			if rr.GetMemberSecret() != "" {
				h.secrets[rr.GetMemberId()] = rr.GetMemberSecret()
			}
			if a := rr.GetAssignment(); a != nil {
				h.revs[rr.GetMemberId()] = max(h.revs[rr.GetMemberId()], a.GetRevision())
			}
		}
		h.printf("  reply req=%d: %s\n", r.Req, fmtReply(r))
	}
	if out.ReadTopics {
		h.printf("  read topics\n")
	}
	if out.Ended != "" {
		h.printf("  ended: %s\n", out.Ended)
	}
	if next := h.n.NextDeadline(); !next.IsZero() {
		h.printf("  next deadline t=%v\n", next.Sub(epoch))
	}
}

func (h *harness) describe(id string) {
	g, err := h.n.Group(id)
	if err != nil {
		h.printf("%s\n", scenario.Err(err))
		return
	}
	d := g.Describe()
	h.printf("%s: %s generation=%d leader=%s\n", id, strings.TrimPrefix(d.GetState().String(), "GROUP_STATE_"), d.GetGeneration(), d.GetLeaderId())
	for _, m := range d.GetMembers() {
		h.printf("  %s assignment=%s token=%s\n", m.GetMemberId(), scenario.Parts(m.GetAssignment().GetPartitions(), "="), scenario.Token(m.GetFencingToken()))
	}
}

func fmtReply(r group.Reply) string {
	if r.Err != nil {
		return scenario.Err(r.Err)
	}
	switch m := r.Msg.(type) {
	case *regroupv1.JoinGroupResponse:
		s := fmt.Sprintf("join gen=%d member=%s leader=%s", m.GetGeneration(), m.GetMemberId(), m.GetLeaderId())
		if n := len(m.GetMembers()); n > 0 {
			s += fmt.Sprintf(" members=%d", n)
		}
		return s
	case *regroupv1.SyncGroupResponse:
		return fmt.Sprintf("sync assignment=%s token=%s", scenario.Parts(m.GetAssignment().GetPartitions(), "="), scenario.Token(m.GetFencingToken()))
	case *regroupv1.HeartbeatResponse:
		s := "heartbeat ok"
		if m.GetNextHoldMs() > 0 {
			s += fmt.Sprintf(" next_hold=%v", time.Duration(m.GetNextHoldMs())*time.Millisecond)
		}
		return s + fmtHeld(m.GetHeldMs())
	case *regroupv1.ReconcileResponse:
		s := fmt.Sprintf("reconcile member=%s epoch=%d interval=%v", m.GetMemberId(), m.GetMemberEpoch(), time.Duration(m.GetHeartbeatIntervalMs())*time.Millisecond)
		if a := m.GetAssignment(); a != nil {
			s += fmt.Sprintf(" assignment=%s token=%s rev=%d", scenario.Parts(a.GetPartitions(), "="), scenario.Token(a.GetFencingToken()), a.GetRevision())
		}
		return s + fmtHeld(m.GetHeldMs())
	case *regroupv1.LeaveGroupResponse:
		return fmtLeave(m.GetMembers())
	case *regroupv1.RemoveMembersResponse:
		return fmtLeave(m.GetMembers())
	case *regroupv1.DeleteGroupResponse:
		return "deleted"
	case *regroupv1.PutTopicResponse:
		return fmt.Sprintf("topic put (was %d) rebalanced=%s", m.GetPreviousPartitions(), strings.Join(m.GetRebalancedGroups(), ","))
	}
	return fmt.Sprintf("%T", r.Msg)
}

// fmtHeld shows how long the node says it held a call, if at all.
func fmtHeld(ms int64) string {
	if ms == 0 {
		return ""
	}
	return fmt.Sprintf(" held=%v", time.Duration(ms)*time.Millisecond)
}

func fmtLeave(rs []*regroupv1.LeaveMemberResult) string {
	s := "leave"
	for _, r := range rs {
		who := r.GetMemberId()
		if who == "" {
			who = "instance " + r.GetGroupInstanceId()
		}
		if r.GetErrorReason() == "" {
			s += " " + who + ": ok"
		} else {
			s += " " + who + ": " + r.GetErrorReason()
		}
	}
	return s
}
