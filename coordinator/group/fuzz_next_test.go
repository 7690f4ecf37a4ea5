package group_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// FuzzNextGroup drives a next-generation group with random sequences of
// joins, calls, revocations that finish late or never, leaves, temporary
// leaves, crashes, static restarts, subscription and topic changes, admin
// removals, forged calls, coordinator failovers and time passing, from
// simulated processes that follow the protocol with several calls in
// flight (as the member library's probes and retries make them), acting on
// every answer whose assignment revision is newer than the last one they
// acted on. After every step it checks the invariants and the safety
// property: when a process takes a partition, no other process may still
// believe it owns it (it owns what it was given and has not reported
// released, until the send time of its last answered call plus its
// session timeout). At the end every call must have been answered.
func FuzzNextGroup(f *testing.F) {
	for _, seed := range []string{
		"\x00\x01\x00\x02\x01\x00\x01\x01\x02\x00\x02\x01\x03\x10",
		"\x00\x00\x00\x01\x01\x00\x02\x01\x08\x00\x03\x40\x01\x01\x02\x01",
		"\x00\x05\x00\x06\x01\x00\x04\x01\x07\x01\x03\x30\x09\x00\x01\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if err := runNextFuzz(ops, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestNextRandomSequences runs FuzzNextGroup's body on seeded random
// inputs, so that every `go test` explores beyond the fuzz corpus.
func TestNextRandomSequences(t *testing.T) {
	runRandom(t, 3, 1000, 100, 300, func(ops []byte) error { return runNextFuzz(ops, nil) })
}

// TestNextFuzzCatchesTwoOwners shows that the safety check fails when a
// process acts on an assignment older than one it already acted on, which
// the member library must never do.
func TestNextFuzzCatchesTwoOwners(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 3000 {
		ops := randomOps(rng, 300)
		z := newNextFuzzer(ops, nil)
		z.actOnOld = true
		if err := z.run(); err != nil {
			t.Logf("sequence %d caught: %v", i, err)
			return
		}
	}
	t.Fatal("acting on old assignments gave no partition two owners in 3000 sequences: the check is too weak")
}

// nproc is one simulated next-generation process.
type nproc struct {
	name, instance  string
	member, secret  string
	epoch           int32
	rev             int64 // the revision of the last assignment it acted on
	session         time.Duration
	topics          []string
	owned, revoking map[tp]bool
	lastOK          time.Time
	dead            bool
}

func (p *nproc) leaseEnd() time.Time { return p.lastOK.Add(p.session) }

type nsent struct {
	p      *nproc
	member string // the member id it was sent as
	at     time.Time
}

// queued is an answer on its way: delivered at at, unless a newer answer
// to the same call replaces it first (held answers only).
type queued struct {
	r  group.Reply
	at time.Time
}

type nextFuzzer struct {
	world
	queue    []queued // answers in flight, in the order they were sent
	procs    []*nproc
	inflight map[group.ReqID]nsent
	next     group.ReqID
	actOnOld bool // a broken process, for TestNextFuzzCatchesTwoOwners
}

func runNextFuzz(ops []byte, trace func(string)) error { return newNextFuzzer(ops, trace).run() }

func newNextFuzzer(ops []byte, trace func(string)) *nextFuzzer {
	return &nextFuzzer{world: newWorld(ops, trace), inflight: map[group.ReqID]nsent{}}
}

func (z *nextFuzzer) run() error {
	for len(z.ops) > 0 {
		if err := z.step(); err != nil {
			return err
		}
	}
	if err := z.advance(2 * time.Hour); err != nil {
		return err
	}
	if err := z.arrive(len(z.queue)); err != nil {
		return err
	}
	for req, s := range z.inflight {
		return fmt.Errorf("call %d from %s at %v was never answered", req, s.p.name, s.at.Sub(epoch))
	}
	return nil
}

func (z *nextFuzzer) proc() *nproc { return pick(&z.world, z.procs) }

func (z *nextFuzzer) step() error {
	switch op := z.byte() % 13; op {
	case 12: // some answers in flight arrive
		return z.arrive(z.byte() % 4)
	case 0: // a new process, dynamic or static
		p := &nproc{name: fmt.Sprintf("p%d", len(z.procs)), session: time.Duration(2+z.byte()%4) * time.Second,
			topics: []string{"a", "b"}, owned: map[tp]bool{}, revoking: map[tp]bool{}}
		if k := z.byte() % 4; k < 3 {
			p.instance = fmt.Sprintf("i%d", k)
		}
		z.procs = append(z.procs, p)
		return z.call(p, 0)
	case 1, 2: // a call (held or not); or first finish the revocations
		if p := z.proc(); p != nil && !p.dead {
			if op == 2 {
				clear(p.revoking)
			}
			return z.call(p, p.epoch)
		}
	case 3:
		return z.advance(time.Duration(z.byte()) * 40 * time.Millisecond)
	case 4: // leave, or a static member's temporary leave
		if p := z.proc(); p != nil && !p.dead && p.member != "" {
			epoch := int32(-1)
			if p.instance != "" && z.byte()%2 == 0 {
				epoch = -2
			}
			clear(p.owned)
			clear(p.revoking)
			p.dead = true
			return z.call(p, epoch)
		}
	case 5:
		z.registry = map[string]int32{"a": int32(1 + z.byte()%4), "b": int32(1 + z.byte()%3)}
		if z.byte()%4 == 0 {
			delete(z.registry, "b")
		}
		out, _ := z.g.SetTopics(z.now, z.registry)
		return z.handle(out)
	case 6: // an administrator removes an instance
		admin := &nproc{name: "admin", owned: map[tp]bool{}, revoking: map[tp]bool{}}
		z.next++
		z.inflight[z.next] = nsent{p: admin, at: z.now}
		return z.handle(z.g.Leave(z.now, z.next, group.Caller{Admin: true}, &regroupv1.LeaveGroupRequest{GroupId: "g",
			Members: []*regroupv1.LeaveMember{{GroupInstanceId: fmt.Sprintf("i%d", z.byte()%3)}}}))
	case 7:
		z.logf("failover")
		return z.failover(z.handle)
	case 8: // crash: what it owns stays owned until its lease ends
		if p := z.proc(); p != nil {
			z.logf("crash %s", p.name)
			p.dead = true
		}
	case 9: // a dead static process restarts
		if p := z.proc(); p != nil && p.dead && p.instance != "" {
			n := &nproc{name: p.name + "'", instance: p.instance, session: p.session, topics: p.topics, owned: map[tp]bool{}, revoking: map[tp]bool{}}
			z.procs = append(z.procs, n)
			return z.call(n, 0)
		}
	case 10: // someone else calls as a member, without its secret
		if p := z.proc(); p != nil && p.member != "" {
			impostor := &nproc{name: "impostor", member: p.member, instance: p.instance, session: p.session, topics: p.topics,
				owned: map[tp]bool{}, revoking: map[tp]bool{}, dead: true}
			return z.call(impostor, -1)
		}
	case 11: // a subscription change
		if p := z.proc(); p != nil && !p.dead && p.member != "" {
			if len(p.topics) == 2 {
				p.topics = []string{"a"}
			} else {
				p.topics = []string{"a", "b"}
			}
			return z.call(p, p.epoch)
		}
	}
	return nil
}

// call sends a Reconcile from p, reporting what it holds.
func (z *nextFuzzer) call(p *nproc, epoch int32) error {
	var owned []*regroupv1.TopicPartitions
	for _, k := range sortedTPs(p.owned) {
		owned = append(owned, &regroupv1.TopicPartitions{Topic: k.topic, Partitions: []int32{k.p}})
	}
	for _, k := range sortedTPs(p.revoking) {
		owned = append(owned, &regroupv1.TopicPartitions{Topic: k.topic, Partitions: []int32{k.p}})
	}
	r := &regroupv1.ReconcileRequest{
		GroupId: "g", MemberId: p.member, MemberEpoch: epoch, GroupInstanceId: p.instance, ClientId: "c",
		SessionTimeoutMs: p.session.Milliseconds(), RebalanceTimeoutMs: int64(1+z.byte()%5) * 1000,
		SubscribedTopics: p.topics, Owned: owned, HoldMs: int64(z.byte()%3) * 500, MemberSecret: p.secret,
		AssignmentRevision: p.rev,
	}
	if epoch == 0 {
		r.MemberId, r.MemberSecret = "", ""
	}
	if p.name == "impostor" {
		r.MemberSecret, r.MemberEpoch = "", 0
		if z.byte()%2 == 0 {
			r.MemberSecret = "guess"
		}
	}
	z.next++
	z.logf("call %d from %s (%s epoch %d rev %d, owns %v, revoking %v)", z.next, p.name, p.member, epoch, p.rev, sortedTPs(p.owned), sortedTPs(p.revoking))
	z.inflight[z.next] = nsent{p: p, member: r.GetMemberId(), at: z.now}
	return z.handle(z.g.Reconcile(z.now, z.next, client, r))
}

// advance lets time pass: timers fire, and every answer due arrives.
func (z *nextFuzzer) advance(d time.Duration) error {
	to := z.now.Add(d)
	for steps := 0; ; steps++ {
		if steps > 100_000 {
			return fmt.Errorf("t=%v: time does not advance: the group's next deadline is t=%v", z.now.Sub(epoch), z.g.NextDeadline().Sub(epoch))
		}
		next := z.g.NextDeadline()
		for _, q := range z.queue {
			if next.IsZero() || q.at.Before(next) {
				next = q.at
			}
		}
		if next.IsZero() || next.After(to) {
			break
		}
		if next.After(z.now) {
			z.now = next
		}
		if err := z.arrive(len(z.queue)); err != nil {
			return err
		}
		if !z.g.NextDeadline().After(z.now) {
			if err := z.handle(z.g.Tick(z.now)); err != nil {
				return err
			}
		}
	}
	z.now = to
	return z.arrive(len(z.queue))
}

// arrive delivers up to n of the answers in flight that are due, in any
// order.
func (z *nextFuzzer) arrive(n int) error {
	for ; n > 0; n-- {
		// Answers to different calls may overtake each other: any due one
		// may come next.
		var due []int
		for i, q := range z.queue {
			if !q.at.After(z.now) {
				due = append(due, i)
			}
		}
		if len(due) == 0 {
			return nil
		}
		i := due[z.byte()%len(due)]
		q := z.queue[i]
		z.queue = append(z.queue[:i], z.queue[i+1:]...)
		s, ok := z.inflight[q.r.Req]
		if !ok {
			continue
		}
		delete(z.inflight, q.r.Req)
		z.logf("  answer %d to %s: %v %v", q.r.Req, s.p.name, q.r.Err, q.r.Msg)
		if err := z.deliver(q.r.Req, s, q.r); err != nil {
			return err
		}
	}
	return nil
}

func (z *nextFuzzer) handle(out group.Output) error {
	if err := z.g.CheckNextCounts(); err != nil {
		return fmt.Errorf("t=%v: %w", z.now.Sub(epoch), err)
	}
	if err := z.store(out, z.handle); err != nil {
		return err
	}
	// Answers go on their way, as the node sends them: a held answer
	// waits until its HoldUntil unless a newer answer to the same call
	// replaces it; once one is sent, later ones are dropped.
	for _, r := range out.Replies {
		if _, ok := z.inflight[r.Req]; !ok {
			continue
		}
		at := z.now
		if r.HoldUntil.After(at) {
			at = r.HoldUntil
		}
		i := slices.IndexFunc(z.queue, func(q queued) bool { return q.r.Req == r.Req })
		switch {
		case i < 0:
			z.queue = append(z.queue, queued{r: r, at: at})
		case z.queue[i].at.After(z.now):
			z.queue[i] = queued{r: r, at: at}
		}
	}
	return nil
}

// deliver applies an answer to the process that sent the call, as the
// member library does: an answer to a call sent as another member (before
// a rejoin) is ignored, and so is an assignment older than one acted on.
func (z *nextFuzzer) deliver(req group.ReqID, s nsent, r group.Reply) error {
	p := s.p
	if p.dead || s.member != p.member {
		return nil
	}
	if !p.lastOK.IsZero() && !z.now.Before(p.leaseEnd()) {
		clear(p.owned) // the lease ended: everything is lost
		clear(p.revoking)
	}
	if r.Err != nil {
		if errors.Is(r.Err, regroup.ErrUnknownMemberID) || errors.Is(r.Err, regroup.ErrFencedMemberEpoch) {
			p.member, p.secret, p.epoch, p.rev = "", "", 0, 0
			clear(p.owned)
			clear(p.revoking)
		}
		return nil
	}
	m, ok := r.Msg.(*regroupv1.ReconcileResponse)
	if !ok {
		return nil
	}
	if s.at.After(p.lastOK) {
		p.lastOK = s.at
	}
	if m.GetMemberEpoch() < 0 {
		return nil
	}
	p.member, p.epoch = m.GetMemberId(), max(p.epoch, m.GetMemberEpoch())
	if m.GetMemberSecret() != "" {
		p.secret = m.GetMemberSecret()
	}
	a := m.GetAssignment()
	if a == nil || a.GetRevision() <= p.rev && !z.actOnOld {
		return nil
	}
	p.rev = max(p.rev, a.GetRevision())
	given := map[tp]bool{}
	for _, t := range a.GetPartitions() {
		for _, q := range t.GetPartitions() {
			given[tp{t.GetTopic(), q}] = true
		}
	}
	for k := range p.owned {
		if !given[k] {
			delete(p.owned, k)
			p.revoking[k] = true // released when a later call stops reporting it
		}
	}
	for k := range given {
		if p.owned[k] || p.revoking[k] {
			delete(p.revoking, k)
			p.owned[k] = true
			continue
		}
		for _, o := range z.procs {
			if o != p && (o.owned[k] || o.revoking[k]) && o.leaseEnd().After(z.now) {
				return fmt.Errorf("t=%v: partition %s/%d given to %s (%s) while %s (%s) may still own it until t=%v",
					z.now.Sub(epoch), k.topic, k.p, p.name, p.member, o.name, o.member, o.leaseEnd().Sub(epoch))
			}
		}
		p.owned[k] = true
	}
	return nil
}
