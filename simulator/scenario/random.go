package scenario

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Random returns the text of a random scenario drawn from seed, for sweeps
// (Parse reads it; the same seed gives the same text). Sizes are bounded:
// 2 to 10 members at the start and up to 3 more joining, one or two topics
// of 1 to 40 partitions, one assignor for everyone (any built-in), static
// or dynamic membership, session timeouts of 6 to 15 s, callbacks of up to
// half a second, network delays of up to 30 ms with up to 2% loss, clock
// drift of up to 1%, and 1 to 8 disturbances between 10 s and 2 min: joins,
// leaves, crashes, restarts, pauses and partitions shorter or longer than
// the session timeout, failovers (the gap follows from a lease TTL of 2 to
// 6 s and an election of 0.1 to 1 s), coordinator pauses shorter or longer
// than the lease (a deposed leader that wakes), store faults (failed
// writes, lost acknowledgements, slow writes), topic growth, slow
// revocations and network changes (a lossy network becomes reliable again
// after the last disturbance). Store writes take 0 to 5 ms. A third of the
// seeds also run 2 to 4 coordinators over 1 to 16 shards, with a second
// group and coordinators joining, leaving, killed and frozen
// (shardedActions). The run lasts until the liveness bound after the last
// disturbance; its seed is seed.
func Random(seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 0xc0ffee))
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	dur := func(lo, hi time.Duration) time.Duration {
		d := lo + time.Duration(r.Int64N(int64(hi-lo)+1))
		return d.Round(time.Millisecond)
	}

	line("# Random scenario %d (regroup sim run --random %d).", seed, seed)
	line("seed %d", seed)
	ttl := dur(2*time.Second, 6*time.Second).Round(100 * time.Millisecond)
	// A third of the seeds run several coordinators over shards. They are
	// drawn from a second source, so that the rest of each scenario is
	// what it was before shards existed.
	r2 := rand.New(rand.NewPCG(seed, 0x5ba2d))
	sharded := r2.IntN(3) == 0
	cluster := ""
	coords := 1
	if sharded {
		coords = 2 + r2.IntN(3)
		cluster = fmt.Sprintf(" coordinators=%d shards=%d", coords, 1+r2.IntN(16))
	}
	line("coordinator initial-delay=%v lease-ttl=%v election=%v write-latency=0s..%v%s", dur(0, 3*time.Second), ttl,
		dur(100*time.Millisecond, time.Second), dur(0, 5*time.Millisecond), cluster)
	loss, lossy := "0", false
	if r.IntN(10) < 3 {
		lossy = true
		loss = fmt.Sprintf("%.1f%%", 0.1+r.Float64()*1.9)
	}
	line("network delay=1ms..%v loss=%s", dur(time.Millisecond, 30*time.Millisecond), loss)
	topics := []string{"orders"}
	if r.IntN(2) == 0 {
		topics = append(topics, "audit")
	}
	counts := map[string]int{}
	for _, t := range topics {
		counts[t] = 1 + r.IntN(40)
		line("topic %s partitions=%d", t, counts[t])
	}
	assignors := []string{"cooperative-sticky", "sticky", "range", "roundrobin", "static"}
	session := dur(6*time.Second, 15*time.Second).Round(time.Second)
	membership := "dynamic"
	if r.IntN(2) == 0 {
		membership = "static"
	}
	drift := ""
	if r.IntN(2) == 0 {
		drift = fmt.Sprintf(" drift=%.2f%%", r.Float64())
	}
	line("group g assignors=%s %s session=%v rebalance=%v on-assigned=0s..%v on-revoked=0s..%v%s",
		assignors[r.IntN(len(assignors))], membership, session, dur(10*time.Second, 40*time.Second).Round(time.Second),
		dur(0, 100*time.Millisecond), dur(0, 500*time.Millisecond), drift)

	n := 2 + r.IntN(9)
	line("at 0s join m1..m%d stagger=%v", n, dur(0, 500*time.Millisecond))
	members := n
	times := make([]time.Duration, 1+r.IntN(8))
	for i := range times {
		times[i] = dur(10*time.Second, 120*time.Second).Round(100 * time.Millisecond)
	}
	slices.Sort(times)
	for _, at := range times {
		m := fmt.Sprintf("m%d", 1+r.IntN(members))
		switch k := r.IntN(15); k {
		case 0:
			if members < n+3 {
				members++
				line("at %v join m%d", at, members)
			}
		case 1:
			line("at %v leave %s", at, m)
		case 2:
			line("at %v crash %s", at, m)
		case 3:
			flags := ""
			if r.IntN(2) == 0 {
				flags += " crash"
			}
			if r.IntN(4) == 0 {
				flags += " new-instance"
			}
			line("at %v restart %s down=%v%s", at, m, dur(0, 2*session), flags)
		case 4:
			line("at %v pause %s for=%v", at, m, dur(time.Second, 2*session))
		case 5:
			line("at %v partition %s for=%v", at, m, dur(time.Second, 2*session))
		case 6:
			line("at %v failover", at)
		case 7:
			t := topics[r.IntN(len(topics))]
			counts[t] += 1 + r.IntN(16)
			line("at %v topic %s partitions=%d", at, t, counts[t])
		case 8:
			line("at %v slow %s on-revoked=%v", at, m, dur(time.Second, 20*time.Second))
		case 9:
			lossy = true
			line("at %v network loss=%.1f%%", at, r.Float64()*2)
		case 10:
			line("at %v restart %s down=%v repeat=%d every=%v", at, m, dur(0, 3*time.Second), 2+r.IntN(3), dur(5*time.Second, 20*time.Second))
		case 11:
			line("at %v store fail for=%v", at, dur(50*time.Millisecond, 5*time.Second))
		case 12:
			line("at %v store lose-acks for=%v", at, dur(50*time.Millisecond, 5*time.Second))
		case 13:
			line("at %v store slow latency=10ms..%v for=%v", at, dur(10*time.Millisecond, 3*time.Second), dur(time.Second, 20*time.Second))
		case 14:
			line("at %v pause-coordinator for=%v", at, dur(100*time.Millisecond, 3*ttl))
		}
	}
	if sharded {
		shardedActions(r2, line, coords, ttl)
	}
	if lossy {
		// Loss is a fault that never ends: end it, so that liveness can be
		// checked.
		line("at %v network loss=0", times[len(times)-1]+time.Second)
	}
	line("expect violations=0")
	return b.String()
}

// shardedActions adds to a random scenario with coords coordinators a
// second group, h, of 2 to 4 members (so that the groups may sit on
// different shards), and 1 to 4 coordinator changes between 10 s and
// 2 min, drawn from r: coordinators joining, leaving gracefully, killed
// or frozen (for up to 3 lease TTLs), each naming a coordinator that runs
// at that time.
func shardedActions(r *rand.Rand, line func(string, ...any), coords int, ttl time.Duration) {
	dur := func(lo, hi time.Duration) time.Duration {
		return (lo + time.Duration(r.Int64N(int64(hi-lo)+1))).Round(time.Millisecond)
	}
	line("group h")
	line("at 0s join h1..h%d group=h", 2+r.IntN(3))
	live := make([]string, coords)
	for i := range live {
		live[i] = CoordinatorName(i)
	}
	times := make([]time.Duration, 1+r.IntN(4))
	for i := range times {
		times[i] = dur(10*time.Second, 120*time.Second).Round(100 * time.Millisecond)
	}
	slices.Sort(times)
	for _, at := range times {
		c := live[r.IntN(len(live))]
		switch k := r.IntN(4); {
		case k == 0:
			live = append(live, CoordinatorName(coords))
			coords++
			line("at %v add-coordinator", at)
		case k == 1 && len(live) > 1:
			live = slices.DeleteFunc(live, func(l string) bool { return l == c })
			line("at %v remove-coordinator %s", at, c)
		case k == 2:
			line("at %v pause-coordinator for=%v coordinator=%s", at, dur(100*time.Millisecond, 3*ttl), c)
		default:
			line("at %v failover coordinator=%s", at, c)
		}
	}
}
