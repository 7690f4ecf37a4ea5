package simulator

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup/member/fsm"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// node is a named member host. It runs one process at a time; a restart
// starts a new one. A network partition cuts the node, whatever process
// runs on it.
type node struct {
	name        string
	group       *groupState
	cfg         scenario.MemberConfig // of the latest join
	machine     fsm.Config            // its state machine's, but for what differs per process
	callbacks   scenario.Callbacks    // current durations (slow changes them)
	instance    string                // static instance id
	instances   int                   // instance ids used so far
	proc        *process
	starts      int
	partitioned bool
	partTok     uint64
	upLast      int64 // arrival of the last message sent up (FIFO links)
	downLast    int64
	restart     *scenario.Restart // a restart waiting for the process to exit
}

// process is one run of a member: a member/fsm state machine (of either
// protocol) with its timers, requests in flight and callback queue, as
// member.Run drives it.
type process struct {
	node     *node
	owner    int32 // index in sim.procs: its identity in the ownership ledger
	inc      int
	instance string   // static instance id, or ""
	topics   []string // the topics it subscribes to
	fsm      fsm.Machine
	rate     float64 // clock rate error

	alive    bool // not crashed or exited
	stopping bool
	done     bool // the state machine finished; callbacks drain

	pausedUntil int64 // while paused: when the pause ends
	pausedSince int64 // while paused: when it started
	pauseTok    uint64
	deferred    []event // events that arrived during a pause

	// One timer per process, for the state machine's deadline (next) and
	// the deadlines of the requests in flight. An armed timer that fires
	// before anything is due re-arms itself.
	next     int64 // the state machine's deadline, or -1
	timerAt  int64 // the armed timer, or -1
	timerTok uint64
	spin     int
	spinAt   int64
	inflight []inflight

	queue   []fsm.Callback
	cur     *fsm.Callback
	curEnd  int64
	curTok  uint64
	curLeft int64 // time the running callback still needs, while paused

	owns      map[int32]bool // ledger partitions it owns
	released  map[int32]bool // ledger partitions it owned and gave up
	live      bool           // counted in its group's live members
	unstable  bool           // counted in its group's unstable members
	maxGen    int32
	leaderGen int32
	started   int64
}

func (p *process) name() string {
	if p.inc == 1 {
		return p.node.name
	}
	return fmt.Sprintf("%s#%d", p.node.name, p.inc)
}

func (p *process) paused() bool { return p.pausedUntil > 0 }

// revoking reports whether the running callback revokes ledger partition
// idx.
func (p *process) revoking(idx int32) bool {
	if p.cur == nil || p.cur.Kind != fsm.Revoked {
		return false
	}
	for _, x := range p.cur.Partitions {
		if p.node.group.partition(x.Topic, x.Partition) == idx {
			return true
		}
	}
	return false
}

// localNow is the process's clock reading at virtual time now.
func (p *process) localNow(now int64) int64 {
	if p.rate == 0 {
		return now
	}
	return now + int64(float64(now)*p.rate)
}

func (p *process) local(now int64) time.Time { return epoch.Add(time.Duration(p.localNow(now))) }

// toGlobal returns the first virtual time at which the process's clock
// reads at least l.
func (p *process) toGlobal(l int64) int64 {
	if p.rate == 0 {
		return l
	}
	g := int64(math.Ceil(float64(l) / (1 + p.rate)))
	for p.localNow(g) < l {
		g++
	}
	for g > 0 && p.localNow(g-1) >= l {
		g--
	}
	return g
}

func (p *process) globalOf(t time.Time) int64 { return p.toGlobal(int64(t.Sub(epoch))) }

// inflight is a request waiting for its answer, until deadline.
type inflight struct {
	id       uint64
	deadline int64
}

// startProcess starts a new process on n.
func (s *sim) startProcess(n *node) {
	n.starts++
	p := &process{
		node: n, owner: int32(len(s.procs)), inc: n.starts, alive: true,
		owns: map[int32]bool{}, released: map[int32]bool{},
		maxGen: -1, leaderGen: -1, next: -1, timerAt: -1, started: s.now,
	}
	if d := n.cfg.Drift; d > 0 {
		p.rate = (s.rng.Float64()*2 - 1) * d
	}
	s.procs = append(s.procs, p)
	n.proc = p
	c := n.cfg
	instance := ""
	if c.Static {
		instance = n.instance
	}
	p.instance, p.topics = instance, c.Topics
	cfg := n.machine
	cfg.InstanceID, cfg.ClientID, cfg.Jitter = instance, n.name, s.rng.Float64
	m, err := fsm.NewMachine(cfg)
	if err != nil {
		panic(fmt.Sprintf("simulator: member %s: configuration checked at setup fails now: %v", n.name, err))
	}
	p.fsm = m
	s.activate(n.group)
	if s.trace != nil {
		kind := "dynamic"
		if instance != "" {
			kind = "static, instance " + instance
		}
		drift := ""
		if p.rate != 0 {
			drift = fmt.Sprintf(", clock %+.4f%%", p.rate*100)
		}
		s.tracef(p.name(), "start (%s, %s%s)", kind, protocolOf(m, c), drift)
	}
	if s.tl != nil {
		s.tl.addProcess(p)
	}
	s.applyMember(p, m.Start(p.local(s.now)))
}

// protocolOf says how machine m, configured as c, rebalances, and with
// which assignors.
func protocolOf(m fsm.Machine, c scenario.MemberConfig) string {
	names := strings.Join(c.Assignors, ",")
	switch {
	case c.Protocol == fsm.Next:
		return "next, server assignor " + names
	case m.Cooperative():
		return "cooperative, assignors " + names
	}
	return "eager, assignors " + names
}

// applyMember carries out one step's output as member.Run does: send the
// requests, queue the callbacks, and re-arm the timer (or, once done, let
// the callbacks drain and exit).
func (s *sim) applyMember(p *process, out fsm.Output) {
	if s.trace != nil {
		for _, e := range out.Events {
			s.tracef(p.name(), "%s", e.Detail)
		}
	}
	s.checkMember(p)
	for _, r := range out.Requests {
		if d := s.assignTime(p, r); d > 0 {
			s.tracef(p.name(), "the assignor takes %v: the plan leaves at %s", time.Duration(d), strings.TrimSpace(fmtTime(s.now+d)))
			s.at(s.now+d, event{kind: evSend, proc: p, tok: r.ID, msg: r.Msg, dur: int64(r.Timeout)})
			continue
		}
		s.sendRequest(p, r)
	}
	p.queue = append(p.queue, out.Callbacks...)
	if out.Done && !p.done {
		p.done = true
		if out.Err != nil {
			s.metrics.Fatal++
			s.tracef(p.name(), "failed: %v", out.Err)
		} else {
			s.tracef(p.name(), "stopped")
		}
	}
	s.runCallbacks(p)
	if p.done {
		p.next = -1
		p.inflight = nil
		if p.cur == nil {
			s.exit(p)
		}
	} else {
		p.next = -1
		if next := p.fsm.NextDeadline(); !next.IsZero() {
			p.next = p.globalOf(next)
		}
		s.armMember(p)
	}
	s.refresh(p)
}

// assignTime is how long the assignor took to compute the plan request r
// carries (a leader's SyncGroup), drawn from the member's AssignTime, or 0.
func (s *sim) assignTime(p *process, r fsm.Request) int64 {
	sync, ok := r.Msg.(*regroupv1.SyncGroupRequest)
	if !ok || len(sync.GetAssignments()) == 0 || p.node.cfg.AssignTime.Max == 0 {
		return 0
	}
	return s.draw(p.node.cfg.AssignTime)
}

// armMember makes sure the process's timer fires no later than its
// state machine's deadline and its requests' deadlines.
func (s *sim) armMember(p *process) {
	want := p.next
	for _, r := range p.inflight {
		if want < 0 || r.deadline < want {
			want = r.deadline
		}
	}
	if want < 0 || (p.timerAt >= 0 && p.timerAt <= want) {
		return
	}
	p.timerTok++
	p.timerAt = want
	s.at(want, event{kind: evMemberTimer, proc: p, tok: p.timerTok})
}

// memberTimer fires a process's timer: the requests whose deadline passed
// fail (as a gRPC call's deadline would end them), then the state machine
// is ticked if its deadline has come.
func (s *sim) memberTimer(p *process, tok uint64) {
	if tok != p.timerTok || p.done {
		return
	}
	p.timerAt = -1
	for len(p.inflight) > 0 && !p.done {
		k := -1
		for i, r := range p.inflight {
			if r.deadline <= s.now && (k < 0 || r.deadline < p.inflight[k].deadline) {
				k = i
			}
		}
		if k < 0 {
			break
		}
		s.reply(p, p.inflight[k].id, nil, errDeadline)
	}
	if !p.done && p.next >= 0 && p.next <= s.now {
		if p.spinAt == s.now {
			p.spin++
			if p.spin > 1000 {
				s.stop("member %s: NextDeadline stays at %v after Tick: member/fsm asks to be ticked again and again at one instant", p.name(), time.Duration(s.now))
				return
			}
		} else {
			p.spin, p.spinAt = 0, s.now
		}
		s.applyMember(p, p.fsm.Tick(p.local(s.now)))
	}
	if !p.done {
		s.armMember(p)
	}
}

// reply hands the answer to request id to the process.
func (s *sim) reply(p *process, id uint64, msg proto.Message, err error) {
	i := slices.IndexFunc(p.inflight, func(r inflight) bool { return r.id == id })
	if i < 0 {
		return // it gave up waiting
	}
	p.inflight = slices.Delete(p.inflight, i, i+1)
	if p.done {
		return
	}
	s.applyMember(p, p.fsm.Response(p.local(s.now), id, msg, err))
}

// runCallbacks invokes the next queued callback if none is running.
func (s *sim) runCallbacks(p *process) {
	if p.cur != nil || len(p.queue) == 0 || p.paused() || !p.alive {
		return
	}
	cb := p.queue[0]
	p.queue = p.queue[1:]
	p.cur = &cb
	var d int64
	switch cb.Kind {
	case fsm.Assigned:
		d = s.draw(p.node.callbacks.OnAssigned)
		for _, x := range cb.Partitions {
			s.own(p, x)
		}
	case fsm.Revoked:
		d = s.draw(p.node.callbacks.OnRevoked)
		for _, x := range cb.Partitions {
			if idx := p.node.group.partition(x.Topic, x.Partition); idx >= 0 {
				s.work.End(idx, p.owner, s.now, s.now) // revoking: no longer processed
			}
		}
		s.metrics.Revoked += len(cb.Partitions)
		s.metrics.revocations = append(s.metrics.revocations, timed{s.now, len(cb.Partitions)})
		if s.tl != nil {
			s.tl.revoking(p, s.now)
		}
	case fsm.Lost:
		d = s.draw(p.node.callbacks.OnLost)
		s.metrics.Lost += len(cb.Partitions)
		s.metrics.losses = append(s.metrics.losses, timed{s.now, len(cb.Partitions)})
		end := p.globalOf(cb.Deadline)
		for _, x := range cb.Partitions {
			s.release(p, x, end)
		}
		if s.tl != nil {
			s.tl.lost(p, end, s.now, len(cb.Partitions))
		}
	}
	if s.trace != nil {
		s.tracef(p.name(), "on-%s %s (deadline %s, takes %v)", cb.Kind, fmtParts(cb.Partitions), strings.TrimSpace(fmtTime(p.globalOf(cb.Deadline))), time.Duration(d))
	}
	p.curTok++
	p.curEnd = s.now + d
	s.at(p.curEnd, event{kind: evCallbackEnd, proc: p, tok: p.curTok})
}

// callbackEnd: the running callback returned.
func (s *sim) callbackEnd(p *process, tok uint64) {
	if tok != p.curTok || p.cur == nil || !p.alive {
		return
	}
	cb := *p.cur
	p.cur = nil
	if cb.Kind == fsm.Revoked {
		end := min(s.now, p.globalOf(cb.Deadline))
		for _, x := range cb.Partitions {
			s.release(p, x, end)
		}
		if s.tl != nil {
			s.tl.revoked(p, end)
		}
	}
	s.tracef(p.name(), "on-%s returned", cb.Kind)
	if p.done {
		s.runCallbacks(p)
		if p.cur == nil {
			s.exit(p)
		}
		return
	}
	s.applyMember(p, p.fsm.CallbackDone(p.local(s.now), cb.ID))
}

// own records that p starts owning x.
func (s *sim) own(p *process, x fsm.Partition) {
	idx := p.node.group.partition(x.Topic, x.Partition)
	if idx < 0 {
		s.violate("ownership", "%s was assigned %s/%d, which does not exist", p.name(), x.Topic, x.Partition)
		return
	}
	if err := s.ledger.Start(idx, p.owner, s.now); err != nil {
		s.violate("ownership", "%s was assigned %s/%d, which it already owned", p.name(), x.Topic, x.Partition)
		return
	}
	p.owns[idx] = true
	delete(p.released, idx)
	s.startWork(p, idx)
}

// startWork records that p processes ledger partition idx from now on.
func (s *sim) startWork(p *process, idx int32) {
	if err := s.work.Start(idx, p.owner, s.now); err != nil {
		panic(fmt.Sprintf("simulator: %s: %v: the processing record is out of step with ownership", p.name(), err))
	}
}

// release records that p's ownership of x ended at end. Giving up again
// what it gave up already (OnLost after a revocation whose deadline
// passed) changes nothing.
func (s *sim) release(p *process, x fsm.Partition, end int64) {
	idx := p.node.group.partition(x.Topic, x.Partition)
	if idx >= 0 && p.released[idx] {
		return
	}
	if idx < 0 || !s.ledger.End(idx, p.owner, end, s.now) {
		s.violate("ownership", "%s gave up %s/%d, which it did not own", p.name(), x.Topic, x.Partition)
		return
	}
	s.work.End(idx, p.owner, end, s.now) // false if it was not processing it: paused or revoking
	delete(p.owns, idx)
	p.released[idx] = true
}

// releaseAll ends everything p owns: it crashed or exited. A process
// that crashed during a pause did nothing since the pause began, so its
// ownership ended then. A partition whose revocation was under way (running
// or queued) ended at that revocation's deadline if it came first, and one
// whose loss was queued (an OnLost waiting behind another callback) at the
// end of the lease, OnLost's deadline.
func (s *sim) releaseAll(p *process) {
	end := s.now
	if p.paused() {
		end = p.pausedSince
	}
	endsBy := map[int32]int64{}
	pending := p.queue
	if p.cur != nil {
		pending = append([]fsm.Callback{*p.cur}, pending...)
	}
	for _, cb := range pending {
		if cb.Kind != fsm.Revoked && cb.Kind != fsm.Lost {
			continue
		}
		d := p.globalOf(cb.Deadline)
		for _, x := range cb.Partitions {
			if idx := p.node.group.partition(x.Topic, x.Partition); idx >= 0 {
				if prev, ok := endsBy[idx]; !ok || d < prev {
					endsBy[idx] = d
				}
			}
		}
	}
	for _, idx := range sortedKeys(p.owns) {
		e := end
		if d, ok := endsBy[idx]; ok && d < e {
			e = d
		}
		s.ledger.End(idx, p.owner, e, s.now)
		s.work.End(idx, p.owner, e, s.now)
	}
	clear(p.owns)
}

// exit ends a process whose state machine finished and whose callbacks
// drained; a pending restart starts the next one.
func (s *sim) exit(p *process) {
	if !p.alive {
		return
	}
	s.releaseAll(p)
	p.alive = false
	p.timerTok++
	s.tracef(p.name(), "exited")
	s.gone(p)
}

// crash kills p: it sends nothing more, and whatever it owned it no longer
// owns.
func (s *sim) crash(p *process) {
	s.tracef(p.name(), "crash")
	s.releaseAll(p)
	p.alive = false
	p.queue, p.cur = nil, nil
	p.timerTok++
	p.curTok++
	s.gone(p)
}

// gone detaches a dead process from its node and starts a pending restart.
func (s *sim) gone(p *process) {
	n := p.node
	if n.proc == p {
		n.proc = nil
	}
	if s.tl != nil {
		s.tl.processEnded(p, s.now)
	}
	s.refresh(p)
	if r := n.restart; r != nil {
		n.restart = nil
		s.at(s.now+int64(r.Down), event{kind: evStart, node: n, tok: boolTok(r.NewInstance)})
	}
}

func boolTok(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// stopProcess stops p gracefully (or later, if it is paused: a frozen
// process cannot react until it resumes).
func (s *sim) stopProcess(p *process) {
	if p.paused() {
		p.deferred = append(p.deferred, event{kind: evStop, proc: p})
		return
	}
	if p.stopping || p.done || !p.alive {
		return
	}
	p.stopping = true
	s.tracef(p.name(), "stop")
	s.applyMember(p, p.fsm.Stop(p.local(s.now)))
}

// pause freezes p until now+d; a pause during a pause extends it.
func (s *sim) pause(p *process, d int64) {
	if !p.paused() {
		p.pausedSince = s.now
		if p.cur != nil {
			p.curLeft = p.curEnd - s.now
			p.curTok++
		}
		for _, idx := range sortedKeys(p.owns) {
			s.work.End(idx, p.owner, s.now, s.now) // frozen: processes nothing
		}
	}
	p.pausedUntil = max(p.pausedUntil, s.now+d)
	p.pauseTok++
	s.tracef(p.name(), "pause until %s", strings.TrimSpace(fmtTime(p.pausedUntil)))
	s.at(p.pausedUntil, event{kind: evResume, proc: p, tok: p.pauseTok})
	if s.tl != nil {
		s.tl.paused(p, s.now, p.pausedUntil)
	}
	s.refresh(p)
}

// resume ends a pause: the running callback continues, and what arrived
// meanwhile is handled in the order it arrived.
func (s *sim) resume(p *process, tok uint64) {
	if tok != p.pauseTok || !p.alive || !p.paused() {
		return
	}
	p.pausedUntil = 0
	s.tracef(p.name(), "resume")
	for _, idx := range sortedKeys(p.owns) {
		if !p.revoking(idx) {
			s.startWork(p, idx)
		}
	}
	if p.cur != nil {
		p.curTok++
		p.curEnd = s.now + p.curLeft
		s.at(p.curEnd, event{kind: evCallbackEnd, proc: p, tok: p.curTok})
	}
	deferred := p.deferred
	p.deferred = nil
	for _, e := range deferred {
		if !p.alive || p.paused() {
			break
		}
		s.dispatch(e)
	}
	s.runCallbacks(p)
	s.refresh(p)
}

// refresh recounts p in its group's live and unstable members.
func (s *sim) refresh(p *process) {
	g := p.node.group
	live := p.alive && !p.done && !p.stopping && !p.paused() && !p.node.partitioned
	unstable := live && p.fsm.State() != fsm.Stable
	if live != p.live {
		d := 1
		if !live {
			d = -1
		}
		g.live += d
		for _, t := range p.topics {
			if i, ok := slices.BinarySearch(g.topics, t); ok {
				g.liveSubs[i] += d
			}
		}
		p.live = live
	}
	if unstable != p.unstable {
		if unstable {
			g.unstable++
		} else {
			g.unstable--
		}
		p.unstable = unstable
	}
}

// checkMember checks that the process's generation never goes back and
// that no two members lead one generation. A next-generation member's
// generation is its member epoch: 0 while it joins, again whenever it
// rejoins (fenced or removed), and the epochs it is given never go back;
// it leads nothing.
func (s *sim) checkMember(p *process) {
	gen := p.fsm.Generation()
	classic, ok := p.fsm.(*fsm.Member)
	if gen < 0 || gen == 0 && !ok {
		return
	}
	if gen < p.maxGen {
		s.violate("generation", "%s went back from generation %d to %d", p.name(), p.maxGen, gen)
	}
	p.maxGen = max(p.maxGen, gen)
	if !ok || !classic.Leader() || gen == p.leaderGen {
		return
	}
	p.leaderGen = gen
	who := p.fsm.MemberID()
	if p.instance != "" {
		who = "instance " + p.instance
	}
	k := leaderKey{p.node.group.name, gen}
	if prev, ok := s.leaders[k]; ok && prev != who {
		s.violate("leader", "group %s generation %d has two leaders: %s and %s (%s)", k.group, gen, prev, who, p.name())
		return
	}
	s.leaders[k] = who
}
