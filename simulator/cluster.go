package simulator

import (
	"fmt"
	"slices"
	"strings"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/shard"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// cluster is the simulated coordinator processes and the shards they
// lead. Each shard is one simulated coordinator service (coordinator: its
// leaders, each the real node core, over its own part of the store); a
// group belongs to the shard its id hashes to (shard.Of), and the shards
// are placed on the live processes by shard.Plan, as regroup serve places
// them. A process is a slot (c1, c2, ...): one killed or deposed is
// replaced at once by a new process in its slot, as a supervisor restarts
// it, and that one leads the slot's shards once the old lease has ended,
// so a kill moves no shard to another slot. Adding or removing a process
// moves the shards Plan says, each by a graceful handoff.
type cluster struct {
	s      *sim
	shards []*coordinator
	live   []string // the slots running, in the order they started
	// leader is each shard's slot: the one that leads it, or will once its
	// next leader serves.
	leader []string
}

func newCluster(s *sim) *cluster {
	cl := &cluster{s: s}
	s.cl = cl
	n := max(s.sc.Coordinator.Shards, 1)
	s.metrics.Shards = n
	for i := range max(s.sc.Coordinator.Coordinators, 1) {
		cl.live = append(cl.live, scenario.CoordinatorName(i))
	}
	cl.leader = shard.Plan(n, cl.live, nil)
	for i := range n {
		name := "coord"
		if n > 1 {
			name = fmt.Sprintf("coord/%d", i)
		}
		cl.shards = append(cl.shards, newCoordinator(s, i, name))
	}
	if n > 1 {
		s.tracef("coord", "%d shards on %s", n, cl.placement())
	}
	for _, c := range cl.shards {
		c.takeOver()
	}
	return cl
}

// of returns the shard service of group id.
func (cl *cluster) of(id string) *coordinator {
	return cl.shards[shard.Of(id, len(cl.shards))]
}

// up reports whether every shard has a leader serving calls now.
func (cl *cluster) up() bool {
	for _, c := range cl.shards {
		if !c.up() {
			return false
		}
	}
	return true
}

// down says which shards have no leader serving calls now.
func (cl *cluster) down() string {
	var down []string
	for _, c := range cl.shards {
		if !c.up() {
			down = append(down, c.name)
		}
	}
	return strings.Join(down, ", ")
}

// slot returns the process a coordinator action is about: name, or the
// slot that leads the first group's shard if "".
func (cl *cluster) slot(name string) string {
	if name != "" {
		return name
	}
	return cl.leader[shard.Of(cl.s.sc.Groups[0].Name, len(cl.shards))]
}

// serving returns the shards slot leads whose leader serves calls now
// (not deposed, with no next leader being elected).
func (cl *cluster) serving(slot string) []*coordinator {
	var out []*coordinator
	for i, c := range cl.shards {
		if cl.leader[i] == slot && c.up() && !c.electing {
			out = append(out, c)
		}
	}
	return out
}

// add starts a process in slot name and hands it its shards.
func (cl *cluster) add(name string) {
	cl.live = append(cl.live, name)
	n := cl.place()
	cl.s.tracef("coord", "%s joins: %s move to it; %s", name, plural(n, "shard"), cl.placement())
}

// remove stops the process in slot name gracefully: it hands its shards
// off to the others.
func (cl *cluster) remove(name string) {
	cl.live = slices.DeleteFunc(cl.live, func(l string) bool { return l == name })
	n := cl.place()
	cl.s.tracef("coord", "%s leaves: %s move off it; %s", name, plural(n, "shard"), cl.placement())
}

// woke places the shards again once a frozen process woke, for the moves
// it held up.
func (cl *cluster) woke() {
	if n := cl.place(); n > 0 {
		cl.s.tracef("coord", "a frozen coordinator woke: %s move; %s", plural(n, "shard"), cl.placement())
	}
}

// place computes the placement of the shards on the live slots
// (shard.Plan) and moves each shard it places elsewhere: by a graceful
// handoff if its leader serves; a shard between leaders just gets its new
// slot; a shard whose leader is frozen stays until that process wakes
// (wake places again), since a frozen process hands nothing off.
// It returns how many shards moved.
func (cl *cluster) place() int {
	leaders := slices.Clone(cl.leader)
	for i, l := range leaders {
		if !slices.Contains(cl.live, l) {
			leaders[i] = ""
		}
	}
	plan := shard.Plan(len(cl.shards), cl.live, leaders)
	moved := 0
	for i, c := range cl.shards {
		to := plan[i]
		if to == cl.leader[i] {
			continue
		}
		from := cl.leader[i]
		switch {
		case c.lead == nil || c.electing:
			cl.leader[i] = to
			moved++
			cl.s.tracef(c.name, "its next leader is %s", to)
			continue
		case c.lead.pausedAt >= 0:
			continue // until it wakes
		}
		cl.leader[i] = to
		moved++
		cl.s.pending++ // until the new leader serves
		c.handoff(fmt.Sprintf("%s hands it off to %s", from, to))
	}
	return moved
}

// plural formats n things: "1 shard", "3 shards".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// placement describes which slot leads how many shards.
func (cl *cluster) placement() string {
	count := map[string]int{}
	for _, l := range cl.leader {
		count[l]++
	}
	var parts []string
	for _, l := range cl.live {
		parts = append(parts, fmt.Sprintf("%s %d", l, count[l]))
	}
	return strings.Join(parts, ", ")
}

// errHandoff is what a shard's calls hear between a graceful handoff's
// old leader and its new one: the old one answers NOT_COORDINATOR, the new
// one COORDINATOR_NOT_AVAILABLE while it loads; both are retried.
var errHandoff = regroup.Errorf(regroup.CodeCoordinatorNotAvailable,
	"this coordinator is changing roles (a shard handed off: elected and loading the groups); retry shortly")

// handoffGap is how long a graceful handoff leaves a shard without a
// leader: the old one resigns at once, so only the new one's election and
// load, Election.
func (cl *cluster) handoffGap() int64 { return int64(cl.s.sc.Coordinator.Election) }
