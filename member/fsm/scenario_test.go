package fsm_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/internal/scenario"
	"github.com/regroup-dev/regroup/member/fsm"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestScenarios runs the scenario files in testdata/: each drives one
// member with responses, callback completions and time, and shows the
// requests, callbacks and events of every step. Regenerate with
//
//	go test ./member/fsm -run TestScenarios -rewrite
//
// Commands (times are offsets; an input at t first fires Tick up to t,
// unless it is marked paused: then, as in a process that was frozen, no
// timer ran in between):
//
//	config [protocol=classic|next] [instance=I] [topics=a,b]
//	       [assignors=cooperative-sticky,range] [server-assignor=range]
//	       [session=10s] [rebalance=30s] [heartbeat=3s] [margin=1s]
//	       [leave-on-stop] [classic]
//	       (protocol=next: no assignors unless given; the scenario files
//	        of the next-generation member are in testdata/next)
//	start [at=T]
//	join id=N [at=T] gen=G member=M leader=L [protocol=P] [skip] [secret=S]
//	     (input, leader only: "member ID topics=a,b [owned=a:0-3] [gen=G]"
//	      and "topic NAME COUNT" lines)
//	sync id=N [at=T] [assignment=a:0-3/b:1] token=G.R
//	heartbeat id=N [at=T]
//	leave id=N [at=T]
//	reconcile id=N [at=T] [member=M] [epoch=E] [secret=S] [interval=3s]
//	          [assignment=a:0-3/b:1 token=G.R [rev=N]] [unknown-topics=a,b]
//	          (assignment= alone: an empty assignment; each assignment is
//	          the next revision unless rev= says which)
//	error id=N [at=T] code=CODE [rebalance-ms=N] [member-id=M] [retry-after-ms=N]
//	fail id=N [at=T]   (a transport failure)
//	done cb=N [at=T]   (callback N returned)
//	tick at=T
//	stop [at=T]
//	state
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
	m    fsm.Machine
	now  time.Duration
	sent map[uint64]proto.Message
	// sentAt is when each request was sent: an answer's held-ms is, unless
	// the scenario gives it, the whole round trip (no transit).
	sentAt map[uint64]time.Duration
	rev    int64 // the last assignment revision a reconcile answer carried
	b      strings.Builder
}

func (h *harness) printf(format string, args ...any) { fmt.Fprintf(&h.b, format, args...) }

func (h *harness) at() time.Time { return epoch.Add(h.now) }

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	h.b.Reset()
	if d.Cmd != "config" && h.m == nil {
		h.configure(t, nil)
	}
	if v, ok := scenario.Arg(d, "at"); ok {
		if _, paused := scenario.Arg(d, "paused"); paused {
			// A paused process: time moved on, but no timer ran.
			h.now = scenario.Duration(t, v)
		} else {
			h.advance(t, scenario.Duration(t, v))
		}
	}
	switch d.Cmd {
	case "config":
		h.configure(t, d)
	case "start":
		h.show(h.m.Start(h.at()))
	case "join":
		h.respond(t, d, h.joinResponse(t, d), nil)
	case "sync":
		a := &regroupv1.Assignment{}
		if v := scenario.ArgOr(d, "assignment", ""); v != "" {
			a.Partitions = scenario.Partitions(t, v)
		}
		h.respond(t, d, &regroupv1.SyncGroupResponse{Assignment: a, FencingToken: token(t, d), UnknownTopics: scenario.List(scenario.ArgOr(d, "unknown-topics", ""))}, nil)
	case "heartbeat":
		h.respond(t, d, &regroupv1.HeartbeatResponse{HeldMs: h.held(t, d)}, nil)
	case "leave":
		h.respond(t, d, &regroupv1.LeaveGroupResponse{}, nil)
	case "reconcile":
		r := reconcileResponse(t, d)
		r.HeldMs = h.held(t, d)
		if a := r.GetAssignment(); a != nil {
			h.rev++
			if v, ok := scenario.Arg(d, "rev"); ok {
				h.rev = scenario.Int(t, v)
			}
			a.Revision = h.rev
		}
		h.respond(t, d, r, nil)
	case "error":
		e := &regroup.Error{Code: regroup.Code(scenario.ArgOr(d, "code", "")), Message: "test", Metadata: map[string]string{}}
		if v, ok := scenario.Arg(d, "rebalance-ms"); ok {
			e.Metadata[regroup.MetaRebalanceTimeoutMs] = v
		}
		if v, ok := scenario.Arg(d, "member-id"); ok {
			e.Metadata[regroup.MetaMemberID] = v
		}
		if v, ok := scenario.Arg(d, "retry-after-ms"); ok {
			e.Metadata[regroup.MetaRetryAfterMs] = v
		}
		h.respond(t, d, nil, e)
	case "fail":
		h.respond(t, d, nil, fmt.Errorf("connection refused"))
	case "done":
		h.show(h.m.CallbackDone(h.at(), uint64(scenario.Int(t, scenario.ArgOr(d, "cb", "0")))))
	case "tick":
		if _, paused := scenario.Arg(d, "paused"); paused {
			h.show(h.m.Tick(h.at()))
		}
	case "stop":
		h.show(h.m.Stop(h.at()))
	case "state":
		if c, ok := h.m.(*fsm.Member); ok {
			h.printf("state=%s member=%s generation=%d leader=%v cooperative=%v\n", h.m.State(), h.m.MemberID(), h.m.Generation(), c.Leader(), h.m.Cooperative())
		} else {
			h.printf("state=%s member=%s epoch=%d cooperative=%v\n", h.m.State(), h.m.MemberID(), h.m.Generation(), h.m.Cooperative())
		}
		h.printf("owned=%s\n", fmtOwned(h.m.Assignment()))
		if l := h.m.Lease(); !l.IsZero() {
			h.printf("lease until t=%v\n", l.Sub(epoch))
		}
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	return h.b.String()
}

func (h *harness) configure(t *testing.T, d *datadriven.TestData) {
	cfg := fsm.Config{
		GroupID: "g", ClientID: "c", Topics: []string{"orders"},
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 30 * time.Second, HeartbeatInterval: 3 * time.Second,
		Margin: time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second,
	}
	var names []string
	if d != nil {
		for _, a := range d.CmdArgs {
			v := ""
			if len(a.Vals) > 0 {
				v = a.Vals[0]
			}
			switch a.Key {
			case "protocol":
				p, err := fsm.ParseProtocol(v)
				if err != nil {
					t.Fatalf("%s: %v", d.Pos, err)
				}
				cfg.Protocol = p
			case "server-assignor":
				cfg.ServerAssignor = v
			case "instance":
				cfg.InstanceID = v
			case "topics":
				cfg.Topics = scenario.List(v)
			case "assignors":
				names = scenario.List(v)
			case "session":
				cfg.SessionTimeout = scenario.Duration(t, v)
			case "rebalance":
				cfg.RebalanceTimeout = scenario.Duration(t, v)
			case "heartbeat":
				cfg.HeartbeatInterval = scenario.Duration(t, v)
			case "margin":
				cfg.Margin = scenario.Duration(t, v)
			case "leave-on-stop":
				cfg.LeaveOnStop = true
			case "classic":
				cfg.ClassicHeartbeats = true
			default:
				t.Fatalf("%s: unknown config key %q", d.Pos, a.Key)
			}
		}
	}
	if names == nil && cfg.Protocol == fsm.Classic {
		names = []string{"cooperative-sticky"}
	}
	if cfg.Protocol == fsm.Next && cfg.ServerAssignor == "" {
		cfg.ServerAssignor = fsm.DefaultServerAssignor
	}
	for _, n := range names {
		a, err := assignor.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Assignors = append(cfg.Assignors, a)
	}
	m, err := fsm.NewMachine(cfg)
	if err != nil {
		h.printf("error: %v\n", err)
		return
	}
	h.m, h.now, h.sent, h.sentAt = m, 0, map[uint64]proto.Message{}, map[uint64]time.Duration{}
}

// advance fires Tick at every deadline up to offset.
func (h *harness) advance(t *testing.T, to time.Duration) {
	if to < h.now {
		t.Fatalf("time goes backwards: %v after %v", to, h.now)
	}
	for {
		next := h.m.NextDeadline()
		if next.IsZero() || next.After(epoch.Add(to)) {
			break
		}
		if next.After(h.at()) {
			h.now = next.Sub(epoch)
		}
		h.printf("t=%v tick\n", h.now)
		h.show(h.m.Tick(h.at()))
		if h.m.NextDeadline().Equal(next) {
			t.Fatalf("Tick at %v left its own deadline in place", h.now)
		}
	}
	h.now = to
}

func (h *harness) respond(t *testing.T, d *datadriven.TestData, msg proto.Message, err error) {
	id := uint64(scenario.Int(t, scenario.ArgOr(d, "id", "0")))
	if _, ok := h.sent[id]; !ok {
		t.Fatalf("%s: request %d was not sent (or already answered)", d.Pos, id)
	}
	delete(h.sent, id)
	h.show(h.m.Response(h.at(), id, msg, err))
}

// reconcileResponse is a Reconcile answer; token= is the fencing token as
// generation.rank (see sync).
func reconcileResponse(t *testing.T, d *datadriven.TestData) *regroupv1.ReconcileResponse {
	r := &regroupv1.ReconcileResponse{
		MemberId:      scenario.ArgOr(d, "member", ""),
		MemberEpoch:   int32(scenario.Int(t, scenario.ArgOr(d, "epoch", "0"))),
		MemberSecret:  scenario.ArgOr(d, "secret", ""),
		UnknownTopics: scenario.List(scenario.ArgOr(d, "unknown-topics", "")),
	}
	if v, ok := scenario.Arg(d, "interval"); ok {
		r.HeartbeatIntervalMs = scenario.Duration(t, v).Milliseconds()
	}
	if v, ok := scenario.Arg(d, "assignment"); ok {
		r.Assignment = &regroupv1.ReconcileAssignment{FencingToken: token(t, d)}
		if v != "" {
			r.Assignment.Partitions = scenario.Partitions(t, v)
		}
	}
	return r
}

// token reads token=G.R as a fencing token.
func token(t *testing.T, d *datadriven.TestData) int64 {
	gen, rep, _ := strings.Cut(scenario.ArgOr(d, "token", "0.0"), ".")
	return scenario.Int(t, gen)<<32 | scenario.Int(t, rep)
}

func (h *harness) joinResponse(t *testing.T, d *datadriven.TestData) *regroupv1.JoinGroupResponse {
	r := &regroupv1.JoinGroupResponse{
		Generation:   int32(scenario.Int(t, scenario.ArgOr(d, "gen", "1"))),
		MemberId:     scenario.ArgOr(d, "member", ""),
		LeaderId:     scenario.ArgOr(d, "leader", ""),
		ProtocolName: scenario.ArgOr(d, "protocol", "cooperative-sticky"),
		MemberSecret: scenario.ArgOr(d, "secret", ""),
	}
	_, r.SkipAssignment = scenario.Arg(d, "skip")
	for _, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "member":
			sub := &regroupv1.Subscription{Generation: -1}
			for _, kv := range f[2:] {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "topics":
					sub.Topics = scenario.List(v)
				case "owned":
					sub.OwnedPartitions = scenario.Partitions(t, v)
				case "gen":
					sub.Generation = int32(scenario.Int(t, v))
				}
			}
			r.Members = append(r.Members, &regroupv1.JoinGroupMember{MemberId: f[1], Subscription: sub})
		case "topic":
			r.Topics = append(r.Topics, &regroupv1.Topic{Name: f[1], Partitions: int32(scenario.Int(t, f[2]))})
		default:
			t.Fatalf("%s: bad join input line %q", d.Pos, line)
		}
	}
	return r
}

func fmtOwned(ps []fsm.Partition) string {
	if len(ps) == 0 {
		return "-"
	}
	var ss []string
	for _, p := range ps {
		ss = append(ss, fmt.Sprintf("%s/%d@%d.%d", p.Topic, p.Partition, p.Token>>32, p.Token&0xffffffff))
	}
	return strings.Join(ss, " ")
}

// held is the held-ms of the answer d gives: its held-ms argument, or the
// whole time since the request was sent.
func (h *harness) held(t *testing.T, d *datadriven.TestData) int64 {
	if v, ok := scenario.Arg(d, "held-ms"); ok {
		return scenario.Int(t, v)
	}
	return (h.now - h.sentAt[uint64(scenario.Int(t, scenario.ArgOr(d, "id", "0")))]).Milliseconds()
}

func (h *harness) show(out fsm.Output) {
	for _, e := range out.Events {
		h.printf("  event %s\n", e.Detail)
	}
	for _, r := range out.Requests {
		h.sent[r.ID] = r.Msg
		h.sentAt[r.ID] = h.now
		probe := ""
		if r.Probe {
			probe = " probe"
		}
		h.printf("  send id=%d %s (timeout %v)%s\n", r.ID, fmtRequest(r.Msg), r.Timeout, probe)
	}
	for _, c := range out.Callbacks {
		h.printf("  callback cb=%d %s %s (deadline t=%v)\n", c.ID, c.Kind, fmtOwned(c.Partitions), c.Deadline.Sub(epoch))
	}
	if out.Done {
		if out.Err != nil {
			h.printf("  done: %v\n", out.Err)
		} else {
			h.printf("  done\n")
		}
	}
	h.printf("  state %s", h.m.State())
	if next := h.m.NextDeadline(); !next.IsZero() {
		h.printf(", next deadline t=%v", next.Sub(epoch))
	}
	h.printf("\n")
}

func fmtRequest(msg proto.Message) string {
	switch r := msg.(type) {
	case *regroupv1.JoinGroupRequest:
		var names []string
		for _, p := range r.GetProtocols() {
			names = append(names, p.GetName())
		}
		sub := r.GetProtocols()[0].GetSubscription()
		s := fmt.Sprintf("join member=%q protocols=%s owned=%s", r.GetMemberId(), strings.Join(names, ","), scenario.Parts(sub.GetOwnedPartitions(), ":"))
		if sub.GetGeneration() >= 0 {
			s += fmt.Sprintf(" owned-gen=%d", sub.GetGeneration())
		}
		if r.GetGroupInstanceId() != "" {
			s += " instance=" + r.GetGroupInstanceId()
		}
		if n := r.GetPartitionsLost(); n > 0 {
			s += fmt.Sprintf(" lost=%d", n)
		}
		return s
	case *regroupv1.SyncGroupRequest:
		s := fmt.Sprintf("sync gen=%d member=%s", r.GetGeneration(), r.GetMemberId())
		as := r.GetAssignments()
		sort.Slice(as, func(i, j int) bool { return as[i].GetMemberId() < as[j].GetMemberId() })
		for _, a := range as {
			s += fmt.Sprintf("\n      %s: %s", a.GetMemberId(), scenario.Parts(a.GetAssignment().GetPartitions(), ":"))
		}
		return s
	case *regroupv1.HeartbeatRequest:
		s := fmt.Sprintf("heartbeat gen=%d member=%s hold=%dms", r.GetGeneration(), r.GetMemberId(), r.GetHoldMs())
		if r.GetTransitMs() > 0 {
			s += fmt.Sprintf(" transit=%dms", r.GetTransitMs())
		}
		return s
	case *regroupv1.ReconcileRequest:
		s := fmt.Sprintf("reconcile member=%q epoch=%d owned=%s hold=%dms", r.GetMemberId(), r.GetMemberEpoch(), scenario.Parts(r.GetOwned(), ":"), r.GetHoldMs())
		if r.GetAssignmentRevision() > 0 {
			s += fmt.Sprintf(" rev=%d", r.GetAssignmentRevision())
		}
		if r.GetGroupInstanceId() != "" {
			s += " instance=" + r.GetGroupInstanceId()
		}
		if r.GetMemberSecret() != "" {
			s += " secret=" + r.GetMemberSecret()
		}
		if r.GetServerAssignor() != fsm.DefaultServerAssignor {
			s += " assignor=" + r.GetServerAssignor()
		}
		if r.GetTransitMs() > 0 {
			s += fmt.Sprintf(" transit=%dms", r.GetTransitMs())
		}
		if n := r.GetPartitionsLost(); n > 0 {
			s += fmt.Sprintf(" lost=%d", n)
		}
		return s
	case *regroupv1.LeaveGroupRequest:
		e := r.GetMembers()[0]
		s := "leave member=" + e.GetMemberId()
		if e.GetTemporary() {
			s += " temporary"
		}
		if e.GetMemberSecret() != "" {
			s += " secret=" + e.GetMemberSecret()
		}
		return s
	}
	return fmt.Sprintf("%T", msg)
}
