package chaos

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

var (
	rounds  = flag.Int("chaos.rounds", 1, "leader kills and leader hangs to run (docs/benchmarks.md uses 10)")
	session = flag.Duration("chaos.session", 0, "the members' session timeout (0: the member library's default)")
)

// partitions is the topic's size; leaseTTL is regroup serve's default.
const (
	partitions = 64
	leaseTTL   = 5 * time.Second
)

// TestChaos runs real processes: a 3-node etcd cluster, 3 coordinators
// (regroup serve) and 8 members (4 static, 4 dynamic) built on the member
// library, all with default settings, and does to them what production
// does: it kills the leading coordinator (SIGKILL), freezes it (SIGSTOP)
// past its lease, silences its network past its lease, kills the etcd
// leader, takes etcd's quorum away for 10 s, restarts static members (a
// crash and a clean stop), freezes a member past its session, and kills a
// member.
// It checks from the members' logs alone that no partition ever had two
// owners and no fencing token went backwards, and that a leader's death,
// hang or silence and etcd's faults cost no member its lease: no OnLost,
// no rebalance, no partition moved, and no partition without work for
// longer than the lease TTL plus 2 s.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes for minutes")
	}
	c := newCluster(t)
	waitfor.Until(t, "a coordinator leads", func() error {
		if c.leader() < 0 {
			return errors.New("no coordinator says it leads")
		}
		return nil
	})
	waitfor.Until(t, "the topic is created", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: partitions}})
		return err
	})
	// The static members know every coordinator; each dynamic one is given
	// one and learns the others.
	live := []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"}
	all := c.fronts(0, 1, 2)
	for i, name := range live {
		if i < 4 {
			c.startMember(name, true, all)
		} else {
			c.startMember(name, false, c.fronts(i%3))
		}
	}
	c.settle(t, len(live))

	var kills, hangs, holes []Window
	for round := range *rounds {
		kills = append(kills, c.leaderFault(t, fmt.Sprintf("kill %d", round+1), func(i int) {
			c.coords[i].kill()
		}, func(i int) { c.coords[i].start() }))
		hangs = append(hangs, c.leaderFault(t, fmt.Sprintf("hang %d", round+1), func(i int) {
			c.coords[i].signal(syscall.SIGSTOP)
		}, func(i int) {
			time.Sleep(3 * leaseTTL) // frozen well past its lease, as a frozen VM
			c.coords[i].cont()
		}))
		// The leader's network goes silent, to etcd and to the members:
		// connections are accepted and nothing is answered. The leader
		// itself runs on, sees its lease run out and steps down.
		holes = append(holes, c.leaderFault(t, fmt.Sprintf("blackhole %d", round+1), func(i int) {
			c.silence(i, true)
		}, func(i int) {
			time.Sleep(3 * leaseTTL)
			c.silence(i, false)
		}))
	}

	// The etcd cluster loses its leader (the process killed, then back),
	// and then its quorum for 10 s (two nodes frozen): the members keep
	// their leases, and a coordinator leads again as soon as etcd is back.
	etcdKill, _ := c.etcdFault(t, "the etcd leader killed", func() {
		var l int
		waitfor.Until(t, "an etcd node leads", func() error {
			if l = c.etcdLeader(); l < 0 {
				return errors.New("no etcd node says it leads")
			}
			return nil
		})
		c.etcd[l].kill()
		time.Sleep(5 * time.Second)
		c.etcd[l].start()
	})
	t.Logf("the etcd leader killed and restarted: lost %d, moved %d, generation changes %d, longest without work %v",
		etcdKill.Lost, etcdKill.Moved, etcdKill.Generations, etcdKill.LongestIdle.Round(time.Millisecond))
	c.expectFree(t, "the etcd leader killed", etcdKill)
	quorum, back := c.etcdFault(t, "etcd quorum lost for 10 s", func() {
		c.etcd[1].signal(syscall.SIGSTOP)
		c.etcd[2].signal(syscall.SIGSTOP)
		time.Sleep(10 * time.Second)
		c.etcd[1].cont()
		c.etcd[2].cont()
	})
	t.Logf("etcd quorum lost for 10 s: a coordinator led %v after quorum returned; lost %d, moved %d, generation changes %d, longest without work %v",
		back.Round(time.Millisecond), quorum.Lost, quorum.Moved, quorum.Generations, quorum.LongestIdle.Round(time.Millisecond))
	// Every lease of the outage was revoked once etcd answered (or had
	// expired): no coordinator waits a TTL for a key nobody holds.
	if back > leaseTTL {
		t.Errorf("a coordinator led only %v after quorum returned, more than the lease TTL %v", back, leaseTTL)
	}
	c.expectFree(t, "etcd quorum lost for 10 s", quorum)

	// Static members restart: one crashes and comes back, one stops and
	// comes back; the dynamic ones are not part of this.
	c.killMember("m1")
	c.startMember("m1", true, all)
	c.members["m2"].stop()
	c.startMember("m2", true, all)
	c.settle(t, len(live))

	// A member frozen past its session: the group gives its partitions to
	// others only after its lease; when it thaws it finds them lost.
	c.members["m5"].signal(syscall.SIGSTOP)
	time.Sleep(25 * time.Second)
	c.members["m5"].cont()
	c.settle(t, len(live))
	// A member killed: its partitions move after its session.
	c.killMember("m6")
	live = slices.DeleteFunc(live, func(s string) bool { return s == "m6" })
	c.settle(t, len(live))
	time.Sleep(2 * time.Second) // a few work lines from every owner

	r := Check(c.events())
	for _, v := range r.Violations {
		t.Error(v)
	}
	for i, w := range kills {
		t.Logf("leader kill %d: lost %d, moved %d, generation changes %d, longest without work %v (%s)", i+1, w.Lost, w.Moved, w.Generations, w.LongestIdle, w.Idlest)
		c.expectFree(t, fmt.Sprintf("leader kill %d", i+1), w)
	}
	for i, w := range hangs {
		t.Logf("leader hang %d: lost %d, moved %d, generation changes %d, longest without work %v (%s)", i+1, w.Lost, w.Moved, w.Generations, w.LongestIdle, w.Idlest)
		c.expectFree(t, fmt.Sprintf("leader hang %d", i+1), w)
	}
	for i, w := range holes {
		t.Logf("leader blackhole %d: lost %d, moved %d, generation changes %d, longest without work %v (%s)", i+1, w.Lost, w.Moved, w.Generations, w.LongestIdle, w.Idlest)
		c.expectFree(t, fmt.Sprintf("leader blackhole %d", i+1), w)
	}
	t.Logf("zombie work lines (after a frozen member's lease, refused downstream by their token): %d", r.Zombie)
}

// leaderFault does fault to the leading coordinator (by index), waits for
// another to lead and the group to settle, then has heal bring the old one
// back, and returns what the members' logs show of that time.
func (c *cluster) leaderFault(t *testing.T, name string, fault, heal func(int)) Window {
	var l int
	waitfor.Until(t, name+": a coordinator leads", func() error {
		if l = c.leader(); l < 0 {
			return errors.New("no coordinator says it leads")
		}
		return nil
	})
	from := time.Now()
	fault(l)
	waitfor.Until(t, name+": another coordinator leads", func() error {
		if n := c.leader(); n < 0 || n == l {
			return fmt.Errorf("leader %d", n)
		}
		return nil
	})
	heal(l)
	c.settle(t, len(c.live()))
	// Let every member reach the new leader (a held heartbeat's hold, 3 s,
	// and more) before the next fault: each fault is tested alone.
	time.Sleep(5 * time.Second)
	return Check(c.events()).Window(from, time.Now())
}

// etcdFault does something to etcd, waits for the group to settle and
// returns what the members' logs show of that time, and how long after
// fault returned (etcd whole again) a coordinator led.
func (c *cluster) etcdFault(t *testing.T, name string, fault func()) (Window, time.Duration) {
	from := time.Now()
	fault()
	healed := time.Now()
	waitfor.Until(t, name+": a coordinator leads", func() error {
		if c.leader() < 0 {
			return errors.New("no coordinator says it leads")
		}
		return nil
	})
	led := time.Since(healed)
	c.settle(t, len(c.live()))
	time.Sleep(2 * time.Second)
	return Check(c.events()).Window(from, time.Now()), led
}

// live returns the members running.
func (c *cluster) live() []string {
	var out []string
	for name, p := range c.members {
		select {
		case <-p.done:
		default:
			out = append(out, name)
		}
	}
	return out
}

// expectFree checks that a coordinator fault cost the members nothing.
func (c *cluster) expectFree(t *testing.T, name string, w Window) {
	t.Helper()
	if w.Lost > 0 || w.Moved > 0 || w.Generations > 0 {
		t.Errorf("%s: %d partitions lost, %d moved, %d generation changes; want none", name, w.Lost, w.Moved, w.Generations)
	}
	if w.LongestIdle > leaseTTL+2*time.Second {
		t.Errorf("%s: %s went %v without work, more than the lease TTL plus 2 s", name, w.Idlest, w.LongestIdle)
	}
}

// settle waits until the group is Stable with n members that own every
// partition between them.
func (c *cluster) settle(t *testing.T, n int) {
	t.Helper()
	waitfor.Until(t, fmt.Sprintf("the group settles with %d members", n), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		d, err := c.admin.DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: "chaos"})
		if err != nil {
			return err
		}
		owned := 0
		for _, m := range d.GetMembers() {
			for _, tp := range m.GetAssignment().GetPartitions() {
				owned += len(tp.GetPartitions())
			}
		}
		if d.GetState() != regroupv1.GroupState_GROUP_STATE_STABLE || len(d.GetMembers()) != n || owned != partitions {
			return fmt.Errorf("%v with %d members owning %d partitions", d.GetState(), len(d.GetMembers()), owned)
		}
		return nil
	})
}
