package group_test

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/internal/scenario"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// FuzzGroup drives one group with random sequences of joins, syncs (valid
// and invalid plans), heartbeats, leaves, leaves naming another member
// (without its secret), admin removals, crashes, static restarts, topic
// changes, coordinator failovers and time passing, from simulated client
// processes that follow the protocol. After every step it
// checks the invariants (see invariants) and the safety property: when a
// partition is delivered to a member, no other process may still believe it
// owns it (it owns what it was delivered and has not released, until the
// send time of its last successful request plus its session timeout). At the
// end every request must have been answered.

// client is who sends the fuzzed requests: an unauthenticated client.
var client = group.Caller{Host: "127.0.0.1"}

func FuzzGroup(f *testing.F) {
	for _, seed := range []string{
		"\x00\x01\x00\x02\x01\x00\x01\x01\x02\x00\x02\x01\x05\x10",
		"\x00\x00\x00\x01\x01\x00\x01\x01\x02\x00\x02\x01\x09\x00\x05\x40\x00\x04\x01\x02",
		"\x00\x05\x00\x06\x01\x00\x01\x01\x02\x00\x02\x01\x07\x01\x05\x30\x08\x00\x01\x00",
		"\x00\x01\x00\x02\x00\x03\x01\x00\x01\x01\x01\x02\x02\x00\x02\x01\x02\x02\x06\x03\x03\x00\x05\x20",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if err := runFuzz(ops); err != nil {
			t.Fatal(err)
		}
	})
}

var replay = flag.String("replay", "", "hex-encoded FuzzGroup input to replay with a trace (TestReplay)")

// TestReplay replays one FuzzGroup input and prints what happens, for
// debugging: go test ./coordinator/group -run TestReplay -replay=HEX -v
func TestReplay(t *testing.T) {
	if *replay == "" {
		t.Skip("no -replay input")
	}
	ops, err := hex.DecodeString(*replay)
	if err != nil {
		t.Fatal(err)
	}
	if err := runFuzzTrace(ops, func(s string) { t.Log(s) }); err != nil {
		t.Fatal(err)
	}
}

// TestRandomSequences runs FuzzGroup's body on seeded random inputs, so that
// every `go test` explores beyond the fuzz corpus.
func TestRandomSequences(t *testing.T) { runRandom(t, 1, 400, 50, 200, runFuzz) }

// runRandom runs run on n inputs (short with -short) of randomOps(spread)
// from a generator seeded with seed, and fails at the first error.
func runRandom(t *testing.T, seed uint64, n, short, spread int, run func(ops []byte) error) {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	if testing.Short() {
		n = short
	}
	for i := range n {
		ops := randomOps(rng, spread)
		if err := run(ops); err != nil {
			t.Fatalf("sequence %d (%x): %v", i, ops, err)
		}
	}
}

// randomOps is a fuzz input of 20 to 20+spread random bytes.
func randomOps(rng *rand.Rand, spread int) []byte {
	ops := make([]byte, 20+rng.IntN(spread))
	for j := range ops {
		ops[j] = byte(rng.UintN(256))
	}
	return ops
}

type tp struct {
	topic string
	p     int32
}

// proc is one simulated client process.
type proc struct {
	name     string
	instance string
	member   string
	secret   string // from its last JoinGroup answer
	gen      int32
	session  time.Duration
	owned    map[tp]bool
	lastOK   time.Time
	leader   *regroupv1.JoinGroupResponse
	dead     bool
	eager    bool
}

func (p *proc) leaseEnd() time.Time { return p.lastOK.Add(p.session) }

type sent struct {
	p    *proc
	kind string
	at   time.Time
}

// world is what both fuzzers (FuzzGroup's and FuzzNextGroup's) keep: the
// input, the group, its clock, its topic registry and its store.
type world struct {
	ops      []byte
	cfg      group.Config
	ids      *scenario.SeqIDs
	g        *group.Group
	now      time.Time
	registry map[string]int32
	trace    func(string)
	inv      *invariants
	stored   []byte
}

func newWorld(ops []byte, trace func(string)) world {
	cfg := group.DefaultConfig()
	cfg.InitialRebalanceDelay = 0
	cfg.MinSessionTimeout = time.Second
	cfg.EmptyRetention = time.Hour
	cfg.MaxSize = 5
	w := world{ops: ops, cfg: cfg, ids: &scenario.SeqIDs{}, now: epoch, registry: map[string]int32{"a": 3, "b": 2}, inv: newInvariants(), trace: trace}
	w.g = group.New("g", cfg, w.ids, w.registry, w.now)
	return w
}

// byte takes the input's next byte (0 once it is used up).
func (w *world) byte() int {
	if len(w.ops) == 0 {
		return 0
	}
	b := w.ops[0]
	w.ops = w.ops[1:]
	return int(b)
}

func (w *world) logf(format string, args ...any) {
	if w.trace != nil {
		w.trace(fmt.Sprintf("t=%v ", w.now.Sub(epoch)) + fmt.Sprintf(format, args...))
	}
}

// store checks the invariants on a step's output and keeps the group's
// record when the step asks for it to be written; a deleted group is
// created again from its tombstone, as the next call would. handle takes
// the outputs of what that does.
func (w *world) store(out group.Output, handle func(group.Output) error) error {
	if err := w.inv.verify(w.g, out); err != nil {
		return err
	}
	if out.Persist || out.Delete {
		b, err := marshal(w.g.Record())
		if err != nil {
			return err
		}
		w.stored = b
	}
	if out.Delete {
		return w.failover(handle)
	}
	return nil
}

// failover restores the group from its stored record, as a new
// coordinator does, after the old one answered what it held.
func (w *world) failover(handle func(group.Output) error) error {
	if w.stored == nil {
		return nil
	}
	if err := handle(w.g.Abort(regroup.Errorf(regroup.CodeNotCoordinator, "failover"))); err != nil {
		return err
	}
	rec, err := unmarshal(w.stored)
	if err != nil {
		return err
	}
	g, out, err := group.Restore(rec, w.cfg, w.ids, w.registry, w.now)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	w.g = g
	return handle(out)
}

type fuzzer struct {
	world
	procs    []*proc
	inflight map[group.ReqID]sent
	next     group.ReqID
}

func runFuzz(ops []byte) error { return runFuzzTrace(ops, nil) }

func runFuzzTrace(ops []byte, trace func(string)) error {
	z := &fuzzer{world: newWorld(ops, trace), inflight: map[group.ReqID]sent{}}
	for len(z.ops) > 0 {
		if err := z.step(); err != nil {
			return err
		}
	}
	// Let every timer run out: all parked requests must get an answer.
	if err := z.advance(2 * time.Hour); err != nil {
		return err
	}
	for req, s := range z.inflight {
		return fmt.Errorf("request %d (%s from %s at %v) was never answered", req, s.kind, s.p.name, s.at.Sub(epoch))
	}
	return nil
}

func (z *fuzzer) proc() *proc { return pick(&z.world, z.procs) }

// pick returns an element of list chosen by the input's next byte, or nil
// (consuming nothing) when list is empty.
func pick[T any](w *world, list []*T) *T {
	if len(list) == 0 {
		return nil
	}
	return list[w.byte()%len(list)]
}

func (z *fuzzer) step() error {
	switch op := z.byte() % 12; op {
	case 0: // a new process, dynamic or static
		p := &proc{name: fmt.Sprintf("p%d", len(z.procs)), session: time.Duration(2+z.byte()%4) * time.Second, owned: map[tp]bool{}}
		if k := z.byte() % 4; k < 3 {
			p.instance = fmt.Sprintf("i%d", k)
		}
		p.eager = z.byte()%2 == 0
		z.procs = append(z.procs, p)
		return z.join(p)
	case 1:
		if p := z.proc(); p != nil && !p.dead {
			return z.join(p)
		}
	case 2:
		if p := z.proc(); p != nil && !p.dead && p.member != "" {
			return z.sync(p)
		}
	case 3:
		if p := z.proc(); p != nil && !p.dead && p.member != "" {
			return z.send(p, "heartbeat", func(req group.ReqID) group.Output {
				return z.g.Heartbeat(z.now, req, client, &regroupv1.HeartbeatRequest{
					GroupId: "g", MemberId: p.member, GroupInstanceId: p.instance, Generation: p.gen,
					HoldMs: int64(z.byte()%3) * 500,
				})
			})
		}
	case 4: // graceful leave, or a static member's temporary leave
		if p := z.proc(); p != nil && !p.dead && p.member != "" {
			temporary := p.instance != "" && z.byte()%2 == 0
			clear(p.owned)
			if !temporary {
				p.dead = true
			}
			return z.send(p, "leave", func(req group.ReqID) group.Output {
				return z.g.Leave(z.now, req, client, &regroupv1.LeaveGroupRequest{GroupId: "g", Members: []*regroupv1.LeaveMember{
					{MemberId: p.member, GroupInstanceId: p.instance, Temporary: temporary, MemberSecret: p.secret},
				}})
			})
		}
	case 5:
		return z.advance(time.Duration(z.byte()) * 50 * time.Millisecond)
	case 6:
		z.registry = map[string]int32{"a": int32(1 + z.byte()%4), "b": int32(1 + z.byte()%3)}
		if z.byte()%4 == 0 {
			delete(z.registry, "b")
		}
		out, _ := z.g.SetTopics(z.now, z.registry)
		return z.handle(out)
	case 7: // an administrator removes an instance
		inst := fmt.Sprintf("i%d", z.byte()%3)
		admin := &proc{name: "admin", owned: map[tp]bool{}}
		return z.send(admin, "leave", func(req group.ReqID) group.Output {
			return z.g.Leave(z.now, req, group.Caller{Admin: true}, &regroupv1.LeaveGroupRequest{GroupId: "g", Members: []*regroupv1.LeaveMember{{GroupInstanceId: inst}}})
		})
	case 8: // coordinator failover
		z.logf("failover")
		return z.failover(z.handle)
	case 9: // crash: the process stops; what it owns stays owned until its lease ends
		if p := z.proc(); p != nil {
			z.logf("crash %s", p.name)
			p.dead = true
		}
	case 10: // a crashed static process restarts as a new process
		if p := z.proc(); p != nil && p.dead && p.instance != "" {
			n := &proc{name: p.name + "'", instance: p.instance, session: p.session, owned: map[tp]bool{}, eager: p.eager}
			z.procs = append(z.procs, n)
			return z.join(n)
		}
	case 11: // someone else names a member in a LeaveGroup: the member keeps running
		if p := z.proc(); p != nil && p.member != "" {
			other := &proc{name: "impostor", owned: map[tp]bool{}}
			temporary := p.instance != "" && z.byte()%2 == 0
			return z.send(other, "leave", func(req group.ReqID) group.Output {
				return z.g.Leave(z.now, req, client, &regroupv1.LeaveGroupRequest{GroupId: "g", Members: []*regroupv1.LeaveMember{
					{MemberId: p.member, GroupInstanceId: p.instance, Temporary: temporary},
				}})
			})
		}
	}
	return nil
}

func (z *fuzzer) join(p *proc) error {
	var owned []*regroupv1.TopicPartitions
	if p.eager {
		clear(p.owned)
	} else {
		// A cooperative member keeps some of what it owns and releases the
		// rest by not reporting it.
		for _, k := range sortedTPs(p.owned) {
			if z.byte()%4 == 0 {
				delete(p.owned, k)
				continue
			}
			owned = append(owned, &regroupv1.TopicPartitions{Topic: k.topic, Partitions: []int32{k.p}})
		}
	}
	topics := []string{"a", "b"}
	if z.byte()%3 == 0 {
		topics = []string{"a"}
	}
	protocols := []string{"range", "sticky"}
	if z.byte()%4 == 0 {
		protocols = []string{"sticky"}
	}
	var ps []*regroupv1.Protocol
	for _, name := range protocols {
		ps = append(ps, &regroupv1.Protocol{Name: name, Subscription: &regroupv1.Subscription{Topics: topics, OwnedPartitions: owned, Generation: p.gen}})
	}
	return z.send(p, "join", func(req group.ReqID) group.Output {
		return z.g.Join(z.now, req, client, &regroupv1.JoinGroupRequest{
			GroupId: "g", MemberId: p.member, GroupInstanceId: p.instance, ClientId: "c",
			SessionTimeoutMs: p.session.Milliseconds(), RebalanceTimeoutMs: int64(1+z.byte()%5) * 1000, Protocols: ps,
		})
	})
}

func sortedTPs(m map[tp]bool) []tp {
	ks := make([]tp, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b tp) int {
		if a.topic != b.topic {
			if a.topic < b.topic {
				return -1
			}
			return 1
		}
		return int(a.p - b.p)
	})
	return ks
}

// sync sends SyncGroup; a leader sends a plan: usually one that keeps every
// reported owner's partitions and spreads the rest, sometimes a random one.
func (z *fuzzer) sync(p *proc) error {
	r := &regroupv1.SyncGroupRequest{GroupId: "g", MemberId: p.member, GroupInstanceId: p.instance, Generation: p.gen}
	if l := p.leader; l != nil && l.GetGeneration() == p.gen && l.GetMemberId() == p.member && !l.GetSkipAssignment() {
		r.Assignments = z.plan(l, z.byte()%5 == 0)
	}
	z.inv.syncSent(z.next+1, p.member)
	return z.send(p, "sync", func(req group.ReqID) group.Output { return z.g.Sync(z.now, req, client, r) })
}

func (z *fuzzer) plan(l *regroupv1.JoinGroupResponse, random bool) []*regroupv1.MemberAssignment {
	byMember := map[string]*regroupv1.Assignment{}
	owner := map[tp]string{}
	subscribes := func(m *regroupv1.JoinGroupMember, t string) bool {
		return slices.Contains(m.GetSubscription().GetTopics(), t)
	}
	for _, m := range l.GetMembers() {
		byMember[m.GetMemberId()] = &regroupv1.Assignment{}
		for _, o := range m.GetSubscription().GetOwnedPartitions() {
			for _, q := range o.GetPartitions() {
				owner[tp{o.GetTopic(), q}] = m.GetMemberId()
			}
		}
	}
	add := func(id, topic string, q int32) {
		a := byMember[id]
		if a == nil {
			a = &regroupv1.Assignment{}
			byMember[id] = a
		}
		a.Partitions = append(a.Partitions, &regroupv1.TopicPartitions{Topic: topic, Partitions: []int32{q}})
	}
	i := 0
	for _, t := range l.GetTopics() {
		for q := range t.GetPartitions() {
			if random {
				id := "ghost"
				if k := z.byte() % (len(l.GetMembers()) + 1); k < len(l.GetMembers()) {
					id = l.GetMembers()[k].GetMemberId()
				}
				add(id, t.GetName(), q+int32(z.byte()%2))
				continue
			}
			if o, ok := owner[tp{t.GetName(), q}]; ok {
				for _, m := range l.GetMembers() {
					if m.GetMemberId() == o && subscribes(m, t.GetName()) {
						add(o, t.GetName(), q)
					}
				}
				continue
			}
			for range l.GetMembers() {
				m := l.GetMembers()[i%len(l.GetMembers())]
				i++
				if subscribes(m, t.GetName()) {
					add(m.GetMemberId(), t.GetName(), q)
					break
				}
			}
		}
	}
	var out []*regroupv1.MemberAssignment
	ids := make([]string, 0, len(byMember))
	for id := range byMember {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		out = append(out, &regroupv1.MemberAssignment{MemberId: id, Assignment: byMember[id]})
	}
	return out
}

func (z *fuzzer) send(p *proc, kind string, call func(req group.ReqID) group.Output) error {
	z.next++
	z.logf("req %d: %s %s from %s (%s, instance %q, gen %d, owns %v)", z.next, kind, "", p.name, p.member, p.instance, p.gen, sortedTPs(p.owned))
	z.inflight[z.next] = sent{p: p, kind: kind, at: z.now}
	return z.handle(call(z.next))
}

func (z *fuzzer) advance(d time.Duration) error {
	to := z.now.Add(d)
	for {
		next := z.g.NextDeadline()
		if next.IsZero() || next.After(to) {
			break
		}
		if next.After(z.now) {
			z.now = next
		}
		if err := z.handle(z.g.Tick(z.now)); err != nil {
			return err
		}
	}
	z.now = to
	return nil
}

func (z *fuzzer) handle(out group.Output) error {
	if err := z.store(out, z.handle); err != nil {
		return err
	}
	for _, r := range out.Replies {
		s, ok := z.inflight[r.Req]
		if !ok {
			continue // a held heartbeat answered again: already accounted for
		}
		delete(z.inflight, r.Req)
		z.logf("  reply %d to %s: %v %v", r.Req, s.p.name, r.Err, r.Msg)
		if err := z.deliver(s, r); err != nil {
			return err
		}
	}
	return nil
}

// deliver applies a reply to the process that sent the request.
func (z *fuzzer) deliver(s sent, r group.Reply) error {
	p := s.p
	ok := func() {
		if s.at.After(p.lastOK) {
			p.lastOK = s.at
		}
	}
	if r.Err != nil {
		switch {
		case errors.Is(r.Err, regroup.ErrMemberIDRequired):
			var e *regroup.Error
			errors.As(r.Err, &e)
			p.member = e.Metadata[regroup.MetaMemberID]
		case errors.Is(r.Err, regroup.ErrRebalanceInProgress) && s.kind == "heartbeat":
			ok()
		case errors.Is(r.Err, regroup.ErrUnknownMemberID), errors.Is(r.Err, regroup.ErrFencedInstanceID):
			// The process gives up everything it owns at once.
			p.member, p.secret, p.gen, p.leader = "", "", 0, nil
			clear(p.owned)
			if errors.Is(r.Err, regroup.ErrFencedInstanceID) {
				p.dead = true
			}
		}
		return nil
	}
	switch m := r.Msg.(type) {
	case *regroupv1.JoinGroupResponse:
		ok()
		p.member, p.secret, p.gen = m.GetMemberId(), m.GetMemberSecret(), m.GetGeneration()
		p.leader = nil
		if m.GetMemberId() == m.GetLeaderId() {
			p.leader = m
		}
	case *regroupv1.SyncGroupResponse:
		ok()
		for _, t := range m.GetAssignment().GetPartitions() {
			for _, q := range t.GetPartitions() {
				k := tp{t.GetTopic(), q}
				for _, o := range z.procs {
					if o != p && o.owned[k] && o.leaseEnd().After(z.now) {
						return fmt.Errorf("t=%v: partition %s/%d delivered to %s (%s) while %s (%s) may still own it until t=%v",
							z.now.Sub(epoch), k.topic, k.p, p.name, p.member, o.name, o.member, o.leaseEnd().Sub(epoch))
					}
				}
				p.owned[k] = true
			}
		}
	case *regroupv1.HeartbeatResponse:
		ok()
	}
	return nil
}
