package simulator

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/member/fsm"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// groupState is what the simulator knows of one scenario group: its
// partitions in the ownership ledger and its members' counts.
type groupState struct {
	name     string
	topics   []string           // topics any of its members subscribes to
	parts    map[string][]int32 // topic -> ledger partition per partition number
	tags     []int32            // per topic of topics: its ledger tag
	liveSubs []int              // per topic of topics: live processes subscribing to it
	active   bool               // a member process has started
	live     int                // processes running, not paused, not cut off, not stopping
	unstable int                // live processes whose state machine is not Stable
	maxGen   int32              // the highest generation the group reached
	// durableGen is the highest generation stored: the coordinator's
	// state may run ahead of it (replies wait for the store) but never
	// fall behind it.
	durableGen int32
}

// partition returns the ledger partition of topic/p, or -1.
func (g *groupState) partition(topic string, p int32) int32 {
	ps := g.parts[topic]
	if p < 0 || int(p) >= len(ps) {
		return -1
	}
	return ps[p]
}

// partRef names a ledger partition.
type partRef struct {
	group, topic string
	p            int32
	born         int64
}

// setup builds the coordinator, the groups and the nodes, and schedules
// the scenario's actions.
func (s *sim) setup() error {
	s.topics = map[string]int32{}
	for _, t := range s.sc.Topics {
		s.topics[t.Name] = t.Partitions
	}
	s.ids = &idSource{s: s, used: map[string]bool{}}
	newCluster(s)
	for _, g := range s.sc.Groups {
		gs := &groupState{name: g.Name, parts: map[string][]int32{}, maxGen: -1, durableGen: -1}
		s.groups = append(s.groups, gs)
		s.byGroup[g.Name] = gs
	}
	s.joinConfigs = make([]fsm.Config, len(s.sc.Actions))
	for i, a := range s.sc.Actions {
		s.pending++
		s.at(int64(a.At), event{kind: evAction, idx: i})
		j, ok := a.Do.(scenario.Join)
		if !ok {
			continue
		}
		g := s.byGroup[j.Group]
		if g == nil {
			return fmt.Errorf("regroup: simulator: line %d: join: unknown group %q", a.Line, j.Group)
		}
		for _, t := range j.Config.Topics {
			if !slices.Contains(g.topics, t) {
				g.topics = append(g.topics, t)
			}
		}
		cfg, err := j.Config.Machine(j.Group)
		if err == nil {
			_, err = fsm.NewMachine(cfg) // the state machine's own checks
		}
		if err != nil {
			return fmt.Errorf("regroup: simulator: line %d: join %s: %w", a.Line, j.Member, err)
		}
		s.joinConfigs[i] = cfg
		if s.byName[j.Member] == nil {
			n := &node{name: j.Member, group: g, instance: j.Member}
			s.nodes = append(s.nodes, n)
			s.byName[j.Member] = n
		}
	}
	for _, g := range s.groups {
		slices.Sort(g.topics)
		g.liveSubs = make([]int, len(g.topics))
		for range g.topics {
			g.tags = append(g.tags, s.tags)
			s.tags++
		}
	}
	s.bound = int64(s.sc.LivenessBound())
	if s.pending == 0 {
		s.allDisturbed()
	}
	return nil
}

// activate adds a group's partitions to the ledger when its first member
// starts, and the partitions of topics that grew since.
func (s *sim) activate(g *groupState) {
	g.active = true
	for i, t := range g.topics {
		for p := int32(len(g.parts[t])); p < s.topics[t]; p++ {
			idx := s.ledger.Add(g.tags[i], s.now)
			s.work.Add(g.tags[i], s.now)
			g.parts[t] = append(g.parts[t], idx)
			s.partRefs = append(s.partRefs, partRef{group: g.name, topic: t, p: p, born: s.now})
		}
	}
}

// dispatch runs one event.
func (s *sim) dispatch(e event) {
	p := e.proc
	switch e.kind {
	case evAction:
		s.disturbance()
		s.action(e.idx)
	case evToCoord:
		if p.node.partitioned {
			return // lost in flight
		}
		s.cl.of(p.node.group.name).receive(p, e.tok, e.msg, e.dur)
	case evCoordTick, evLoadDone:
		e.lead.c.input(e.lead, e)
	case evWriteDone:
		e.lead.c.writeDone(e.lead, e.write, e.outcome)
	case evCoordWake:
		e.lead.c.wake(e.lead)
		s.disturbed()
	case evTopic:
		s.cl.shards[e.idx].putTopic(e.name)
	case evStoreHeal:
		s.tracef("coord", "store: the fault is over")
		s.disturbed()
	case evToMember, evMemberTimer, evStop, evSend:
		if !p.alive {
			return
		}
		if e.kind == evToMember && p.node.partitioned {
			return
		}
		if p.paused() {
			p.deferred = append(p.deferred, e)
			return
		}
		switch e.kind {
		case evToMember:
			s.reply(p, e.tok, e.msg, e.err)
		case evMemberTimer:
			s.memberTimer(p, e.tok)
		case evStop:
			s.stopProcess(p)
		case evSend:
			if !p.done {
				s.sendRequest(p, fsm.Request{ID: e.tok, Msg: e.msg, Timeout: time.Duration(e.dur)})
			}
		}
	case evCallbackEnd:
		s.callbackEnd(p, e.tok)
	case evResume:
		s.resume(p, e.tok)
		s.disturbed()
	case evHeal:
		if e.tok == e.node.partTok {
			s.heal(e.node)
		}
		s.disturbed()
	case evLeader:
		c := s.cl.shards[e.idx]
		s.tracef(c.name, "a new coordinator takes over and loads the groups from the store")
		c.takeOver()
		s.disturbed()
	case evStart:
		n := e.node
		if n.proc != nil {
			s.tracef(n.name, "restart skipped: a process is running")
		} else {
			if e.tok == 1 {
				n.instances++
				n.instance = fmt.Sprintf("%s-%d", n.name, n.instances)
			}
			s.startProcess(n)
		}
		s.disturbed()
	case evChurn:
		s.disturbance()
		s.churn(e.idx)
	case evLiveness:
		// afterEvent checks liveness from now on.
	}
}

// action runs scenario action i.
func (s *sim) action(i int) {
	a := s.sc.Actions[i]
	var n *node
	var p *process
	if m := a.Member(); m != "" {
		n = s.byName[m]
		p = n.proc
	}
	skip := func(why string) { s.tracef(n.name, "%s skipped: %s", a.Verb(), why) }
	switch c := a.Do.(type) {
	case scenario.Join:
		if p != nil {
			skip("it is running")
			break
		}
		n.cfg, n.machine, n.callbacks = c.Config, s.joinConfigs[i], c.Config.Callbacks
		s.startProcess(n)
	case scenario.Leave:
		if p == nil {
			skip("it is not running")
			break
		}
		s.stopProcess(p)
	case scenario.Crash:
		if p == nil {
			skip("it is not running")
			break
		}
		s.crash(p)
	case scenario.Restart:
		s.restartNode(n, c)
	case scenario.Pause:
		if p == nil {
			skip("it is not running")
			break
		}
		s.pending++
		s.pause(p, int64(c.For))
	case scenario.Partition:
		s.cut(n, int64(c.For))
	case scenario.Heal:
		s.heal(n)
	case scenario.Slow:
		cb := &n.callbacks
		for _, x := range []struct {
			d   *scenario.Dist
			dst *scenario.Dist
		}{{c.OnAssigned, &cb.OnAssigned}, {c.OnRevoked, &cb.OnRevoked}, {c.OnLost, &cb.OnLost}} {
			if x.d != nil {
				*x.dst = *x.d
			}
		}
		s.tracef(n.name, "callbacks now take: on-assigned %s, on-revoked %s, on-lost %s", fmtDist(cb.OnAssigned), fmtDist(cb.OnRevoked), fmtDist(cb.OnLost))
	case scenario.Failover:
		slot := s.cl.slot(c.Coordinator)
		shards := s.cl.serving(slot)
		switch {
		case len(shards) == 0 && len(s.cl.shards) == 1:
			s.tracef("coord", "failover skipped: no coordinator is serving")
		case len(shards) == 0:
			s.tracef("coord", "failover of %s skipped: it leads no shard that is serving", slot)
		case len(s.cl.shards) == 1:
			s.tracef("coord", "failover: the leader's process is killed; a new one takes over in %v", c.Gap)
		default:
			s.tracef("coord", "failover: %s's process is killed; a new one takes over its %d shards in %v", slot, len(shards), c.Gap)
		}
		for _, sh := range shards {
			sh.failover(int64(c.Gap))
			s.pending++
		}
		if s.tl != nil && len(shards) > 0 {
			s.tl.Failovers = append(s.tl.Failovers, Span{From: time.Duration(s.now), To: time.Duration(s.now) + c.Gap})
		}
	case scenario.PauseCoordinator:
		slot := s.cl.slot(c.Coordinator)
		shards := s.cl.serving(slot)
		switch {
		case len(shards) == 0 && len(s.cl.shards) == 1:
			s.tracef("coord", "pause-coordinator skipped: no coordinator is serving")
		case len(shards) == 0:
			s.tracef("coord", "pause-coordinator of %s skipped: it leads no shard that is serving", slot)
		case len(s.cl.shards) > 1:
			s.tracef("coord", "%s's process freezes for %v: its %d shards with it", slot, c.For, len(shards))
		}
		for _, sh := range shards {
			s.pending++
			sh.pause(int64(c.For))
		}
		if s.tl != nil && len(shards) > 0 {
			s.tl.Failovers = append(s.tl.Failovers, Span{From: time.Duration(s.now), To: time.Duration(s.now) + c.For})
		}
	case scenario.AddCoordinator:
		s.cl.add(c.Name)
	case scenario.RemoveCoordinator:
		s.cl.remove(c.Name)
	case scenario.StoreFault:
		s.tracef("coord", "store: %s for %v", c.Kind, c.For)
		for _, sh := range s.cl.shards {
			sh.setFault(c)
		}
		s.pending++
		s.at(s.now+int64(c.For), event{kind: evStoreHeal})
	case scenario.SetTopic:
		s.tracef("coord", "topic %s: %d partitions", c.Topic.Name, c.Topic.Partitions)
		s.topics[c.Topic.Name] = c.Topic.Partitions
		for _, sh := range s.cl.shards {
			sh.putTopic(c.Topic.Name)
		}
		for _, g := range s.groups {
			if g.active {
				s.activate(g)
			}
		}
	case scenario.SetNetwork:
		if c.Delay != nil {
			s.net.delay = *c.Delay
		}
		if c.Loss != nil {
			s.net.loss = *c.Loss
		}
		s.tracef("net", "delay %s, loss %g", fmtDist(s.net.delay), s.net.loss)
	case scenario.Churn:
		s.pending++
		s.at(s.now, event{kind: evChurn, idx: i})
	}
	s.disturbed()
}

// restartNode stops n's process (gracefully, or by a crash) and starts a
// new one r.Down after it is gone.
func (s *sim) restartNode(n *node, r scenario.Restart) {
	if n.restart != nil {
		s.tracef(n.name, "restart skipped: a restart is already under way")
		return
	}
	s.pending++ // until the new process starts
	p := n.proc
	switch {
	case p == nil:
		s.at(s.now+int64(r.Down), event{kind: evStart, node: n, tok: boolTok(r.NewInstance)})
	case r.Crash:
		n.restart = &r
		s.crash(p)
	default:
		n.restart = &r
		s.stopProcess(p)
	}
}

// cut partitions n from the coordinator, for d if positive.
func (s *sim) cut(n *node, d int64) {
	n.partitioned = true
	n.partTok++
	what := "until healed"
	if d > 0 {
		s.pending++
		s.at(s.now+d, event{kind: evHeal, node: n, tok: n.partTok})
		what = "for " + time.Duration(d).String()
	}
	s.tracef(n.name, "cut off from the coordinator %s", what)
	if s.tl != nil {
		s.tl.cut(n.name, s.now)
	}
	if n.proc != nil {
		s.refresh(n.proc)
	}
}

func (s *sim) heal(n *node) {
	if !n.partitioned {
		return
	}
	n.partitioned = false
	n.partTok++
	s.tracef(n.name, "reconnected to the coordinator")
	if s.tl != nil {
		s.tl.healed(n.name, s.now)
	}
	if n.proc != nil {
		s.refresh(n.proc)
	}
}

// churn runs one churn event of action i and schedules the next.
func (s *sim) churn(i int) {
	a := s.sc.Actions[i]
	c := a.Do.(scenario.Churn)
	kind := c.Kinds[s.rng.IntN(len(c.Kinds))]
	var cands []*node
	for _, n := range s.nodes {
		p := n.proc
		if p != nil && p.alive && !p.stopping && !p.done && !p.paused() && n.restart == nil && (c.Group == "" || n.group.name == c.Group) {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		s.tracef("churn", "no running member to %s", kind)
	} else {
		n := cands[s.rng.IntN(len(cands))]
		s.tracef("churn", "%s %s", kind, n.name)
		switch kind {
		case scenario.ChurnRestart:
			s.restartNode(n, scenario.Restart{Member: n.name, Down: c.Down})
		case scenario.ChurnCrash:
			s.restartNode(n, scenario.Restart{Member: n.name, Down: c.Down, Crash: true})
		case scenario.ChurnPause:
			s.pending++
			s.pause(n.proc, s.draw(c.Pause))
		}
	}
	if next := s.now + int64(c.Every); next <= int64(a.At+c.For) {
		s.at(next, event{kind: evChurn, idx: i})
		return
	}
	s.disturbed()
}

// disturbed notes the end of a disturbance; once none is under way or to
// come, the liveness deadline is known.
func (s *sim) disturbed() {
	s.pending--
	s.lastDisturbance = s.now
	if s.pending == 0 {
		s.allDisturbed()
	}
}

func (s *sim) allDisturbed() {
	s.livenessAt = s.lastDisturbance + s.bound
	s.at(s.livenessAt, event{kind: evLiveness})
}

// afterEvent runs the checks after every event.
func (s *sim) afterEvent() {
	s.overlaps()
	if s.settled() {
		if s.settledSince < 0 {
			s.settledSince = s.now
		}
		return
	}
	s.settledSince = -1
	if s.livenessAt >= 0 && s.now >= s.livenessAt && s.net.loss == 0 && !s.livenessBroken {
		s.livenessBroken = true
		last := strings.TrimSpace(fmtTime(s.lastDisturbance))
		if s.now == s.livenessAt {
			s.violate("liveness", "not settled within the liveness bound (%v) after the last disturbance at %s: %s",
				time.Duration(s.bound).Round(time.Millisecond), last, s.unsettled())
		} else {
			s.violate("liveness", "unsettled again %v after the last disturbance at %s, with none since: %s",
				time.Duration(s.now-s.lastDisturbance).Round(time.Millisecond), last, s.unsettled())
		}
	}
}

// overlaps reports every overlap the ledger decided.
func (s *sim) overlaps() {
	for _, o := range s.ledger.Overlaps() {
		r := s.partRefs[o.P]
		s.violate("two-owners", "group %s partition %s/%d owned by %s and %s at once from %s to %s",
			r.group, r.topic, r.p, s.procs[o.A].name(), s.procs[o.B].name(),
			strings.TrimSpace(fmtTime(o.From)), strings.TrimSpace(fmtTime(o.To)))
	}
}

// settled reports whether a coordinator serves and every group with live
// members is Stable, with every live member Stable and every partition of
// every topic a live member subscribes to owned.
func (s *sim) settled() bool {
	if !s.cl.up() {
		return false
	}
	for _, g := range s.groups {
		if g.live == 0 {
			continue
		}
		if g.unstable > 0 {
			return false
		}
		if gr := s.cl.of(g.name).group(g.name); gr == nil || gr.State() != group.Stable {
			return false
		}
		for i := range g.topics {
			if owned, all := s.ledger.Owned(g.tags[i]); g.liveSubs[i] > 0 && owned < all {
				return false
			}
		}
	}
	return true
}

// unsettled says why the groups are not settled.
func (s *sim) unsettled() string {
	if !s.cl.up() {
		return "no coordinator is serving " + s.cl.down()
	}
	var why []string
	for _, g := range s.groups {
		if g.live == 0 {
			continue
		}
		if gr := s.cl.of(g.name).group(g.name); gr == nil {
			why = append(why, fmt.Sprintf("group %s does not exist or cannot serve", g.name))
		} else if st := gr.State(); st != group.Stable {
			why = append(why, fmt.Sprintf("group %s is %v in generation %d", g.name, st, gr.Generation()))
		}
		for i, t := range g.topics {
			if owned, all := s.ledger.Owned(g.tags[i]); g.liveSubs[i] > 0 && owned < all {
				why = append(why, fmt.Sprintf("group %s: %d of %d partitions of %s have no owner", g.name, all-owned, all, t))
			}
		}
		var busy []string
		for _, n := range s.nodes {
			if p := n.proc; p != nil && p.unstable && n.group == g {
				busy = append(busy, fmt.Sprintf("%s %v", p.name(), p.fsm.State()))
			}
		}
		if len(busy) > 0 {
			why = append(why, fmt.Sprintf("group %s members not Stable: %s", g.name, strings.Join(busy, ", ")))
		}
	}
	return strings.Join(why, "; ")
}

// finish closes the books at the end of the run.
func (s *sim) finish() {
	s.ledger.Close(s.now)
	s.work.Close(s.now)
	s.overlaps()
	m := &s.metrics
	m.Simulated = time.Duration(s.end)
	s.partitionSeconds()
	for _, g := range s.groups {
		m.Generation = max(m.Generation, g.maxGen)
	}
	m.RebalanceMedian, m.RebalanceMax = durations(m.RebalanceLog)
	m.LastDisturbance = time.Duration(s.lastDisturbance)
	m.LivenessChecked = s.livenessAt >= 0 && s.livenessAt <= s.end && s.net.loss == 0
	m.Stable = s.settledSince >= 0
	m.TimeToStable = -1
	if m.Stable && s.livenessAt >= 0 {
		m.TimeToStable = time.Duration(max(s.settledSince-s.lastDisturbance, 0))
	}
	if s.tl != nil {
		s.tl.finish(s)
	}
}

func fmtDist(d scenario.Dist) string {
	if d.Min == d.Max {
		return d.Min.String()
	}
	return d.Min.String() + ".." + d.Max.String()
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }
