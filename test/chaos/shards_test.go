package chaos

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

const (
	// shardCount and shardGroups size TestShardsJoinKillLeave.
	shardCount  = 16
	shardGroups = 300
	// shardTopic is its topic, small: 300 groups share it.
	shardTopic      = "sharded"
	shardPartitions = 4
)

// TestShardsJoinKillLeave runs three coordinators with 16 shards on a
// three-node etcd, every process real, and 300 groups of two members (two
// member processes of 300 members each). Each coordinator leads about a
// third of the shards; a fourth joins and takes its share (four shards
// move, the fewest) with no member losing a partition and no group
// rebalancing; then one of the first three is SIGKILLed, and then the
// fourth leaves (SIGTERM): each time only its shards change leader, and
// again no member loses a partition and no group rebalances.
func TestShardsJoinKillLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	serve := []string{"--shards", fmt.Sprint(shardCount)}
	c := newCluster(t, serve...)
	before := c.shardLeaders(t, 0, 1, 2)
	waitfor.Until(t, "the topic is created", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: shardTopic, Partitions: shardPartitions}})
		return err
	})
	for _, name := range []string{"ma", "mb"} {
		args := []string{"chaosmember", "-endpoints", strings.Join(c.fronts(0, 1, 2), ","), "-log", filepath.Join(c.dir, name+".events"),
			"-group", "g", "-groups", fmt.Sprint(shardGroups), "-topic", shardTopic, "-work-every", "500ms"}
		p := &proc{t: t, name: "members " + name, out: filepath.Join(c.dir, name+".log"), args: args}
		p.start()
		c.members[name] = p
	}
	gens := c.shardedGroups(t, time.Time{})

	joined := time.Now()
	c.addCoordinator(freePorts(t, 1)[0], serve...)
	after := c.shardLeaders(t, 0, 1, 2, 3)
	if moved := movedShards(before, after); len(moved) != shardCount/4 {
		t.Errorf("%d shards moved when a fourth coordinator joined (%v), want %d", len(moved), moved, shardCount/4)
	}
	c.sameGenerations(t, gens, c.shardedGroups(t, joined))
	c.noLoss(t, "a coordinator joined", joined)

	final := c.goes(t, "killed", after, gens, 1, func() { c.coords[1].kill() }, 0, 2, 3)
	// One leaves gracefully (SIGTERM): it hands its shards over.
	c.goes(t, "left", final, gens, 3, func() { c.coords[3].stop() }, 0, 2)
}

// goes ends coordinator i (end), which leaves the shards to the
// coordinators rest, and checks that only its shards moved (leaders were
// the shards' leaders before) and, once every member heartbeated its
// coordinator again, that no group rebalanced since gens and no partition
// was lost or moved. It returns the shards' leaders after.
func (c *cluster) goes(t *testing.T, how string, leaders []string, gens map[string]int32, i int, end func(), rest ...int) []string {
	t.Helper()
	at := time.Now()
	end()
	now := c.shardLeaders(t, rest...)
	gone := c.fronts(i)[0]
	for s := range now {
		if leaders[s] != gone && now[s] != leaders[s] {
			t.Errorf("shard %d moved from %s to %s, but only the %s coordinator's shards should", s, leaders[s], now[s], how)
		}
	}
	c.sameGenerations(t, gens, c.shardedGroups(t, at))
	c.noLoss(t, "a coordinator "+how, at)
	return now
}

// shardLeaders waits until the coordinators at the given indexes agree on
// a leader for every shard, each of them leading its share (shardCount/k,
// or one more), and returns each shard's leader's advertised address.
func (c *cluster) shardLeaders(t *testing.T, coords ...int) []string {
	t.Helper()
	fronts := c.fronts(coords...)
	var leaders []string
	waitfor.Until(t, fmt.Sprintf("coordinators %v agree on the leaders of %d shards, each leading its share", coords, shardCount), func() error {
		leaders = nil
		for _, i := range coords {
			d, err := describeCluster(c.addrs[i])
			if err != nil {
				return fmt.Errorf("coordinator c%d: %w", i, err)
			}
			var seen []string
			for _, s := range d.GetShards() {
				seen = append(seen, s.GetLeaderAddress())
			}
			if len(seen) != shardCount {
				return fmt.Errorf("coordinator c%d describes %d shards", i, len(seen))
			}
			if leaders != nil && !slices.Equal(leaders, seen) {
				return fmt.Errorf("coordinators disagree on the shards' leaders: %v and %v", leaders, seen)
			}
			leaders = seen
		}
		for _, f := range fronts {
			n := 0
			for _, l := range leaders {
				if l == f {
					n++
				}
			}
			if k := len(fronts); n < shardCount/k || n > (shardCount+k-1)/k {
				return fmt.Errorf("%s leads %d shards: %v", f, n, leaders)
			}
		}
		return nil
	})
	return leaders
}

// describeCluster asks the coordinator at addr directly.
func describeCluster(addr string) (*regroupv1.DescribeClusterResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return regroupv1.NewAdminClient(conn).DescribeCluster(ctx, &regroupv1.DescribeClusterRequest{})
}

func movedShards(before, after []string) []int {
	var moved []int
	for i := range before {
		if before[i] != after[i] {
			moved = append(moved, i)
		}
	}
	return moved
}

// shardedGroups waits until all shardGroups groups are Stable with their
// two members owning every partition, each member having heartbeated its
// coordinator after since, and returns their generations. It asks about
// each group until it is so, four times a second at most: 300 groups
// asked every 20 ms would load the coordinators more than the members do.
func (c *cluster) shardedGroups(t *testing.T, since time.Time) map[string]int32 {
	t.Helper()
	gens := map[string]int32{}
	waitfor.Until(t, fmt.Sprintf("%d groups are Stable, their members heartbeating since %s", shardGroups, since.Format(time.StampMilli)), func() error {
		defer time.Sleep(250 * time.Millisecond)
		for i := range shardGroups {
			id := fmt.Sprint("g-", i)
			if _, ok := gens[id]; ok {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			d, err := c.admin.DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: id})
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			owned := 0
			for _, m := range d.GetMembers() {
				for _, tp := range m.GetAssignment().GetPartitions() {
					owned += len(tp.GetPartitions())
				}
				session := time.Duration(m.GetSessionTimeoutMs()) * time.Millisecond
				if !m.GetSessionDeadline().AsTime().After(since.Add(session)) {
					return fmt.Errorf("%s: member %s has not heartbeated its coordinator since %s", id, m.GetMemberId(), since.Format(time.StampMilli))
				}
			}
			if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != 2 || owned != shardPartitions {
				return fmt.Errorf("%s is %v with %d members owning %d partitions", id, d.GetState(), len(d.GetMembers()), owned)
			}
			gens[id] = d.GetGeneration()
		}
		return nil
	})
	return gens
}

// sameGenerations reports the groups whose generation changed: they
// rebalanced.
func (c *cluster) sameGenerations(t *testing.T, before, now map[string]int32) {
	t.Helper()
	var changed []string
	for id, g := range before {
		if now[id] != g {
			changed = append(changed, fmt.Sprintf("%s %d->%d", id, g, now[id]))
		}
	}
	if len(changed) > 0 {
		slices.Sort(changed)
		t.Errorf("%d groups rebalanced: %v", len(changed), changed)
	}
}

// noLoss checks every member's log: no two owners at once, no partition
// lost or moved since from; it logs the longest a partition went without
// work.
func (c *cluster) noLoss(t *testing.T, when string, from time.Time) {
	t.Helper()
	r := Check(c.events())
	for _, v := range r.Violations {
		t.Errorf("%s: %s", when, v)
	}
	w := r.Window(from, time.Now())
	if w.Lost > 0 || w.Moved > 0 {
		t.Errorf("%s: members lost %d partitions, %d moved", when, w.Lost, w.Moved)
	}
	t.Logf("%s: the longest a partition went without work since %s: %v (%s)", when, from.Format(time.StampMilli), w.LongestIdle, w.Idlest)
}
