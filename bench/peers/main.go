// Command peers runs Regroup's sticky and cooperative-sticky assignors and
// franz-go's sticky and cooperative-sticky balancers side by side, in one
// process, on the same groups: equal and unequal subscriptions at 1,000
// members x 10,000 partitions, 2,000 x 100,000 and 2,000 x 1,000,000.
//
// For every group and scenario (fresh, one member leaving, one member
// joining) it prints, per assignor, the median time per round, the rounds
// until nobody revokes, the partitions moved against the fewest that must
// move, and the balance of the final plan. A second table is the churn
// workload of internal/churn (random subscriptions over many topics of
// different sizes, members leaving, joining and changing subscriptions),
// each assignor following its own plans: partitions moved, rounds and
// balance over every rebalance. Progress goes to standard error.
//
//	go run . -runs 5
//	go run . -tables churn -churn.seeds 30
package main

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/internal/churn"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// owned is member -> topic -> partitions.
type owned = map[string]map[string][]int32

// member is one member of a group as both libraries see it.
type member struct {
	id     string
	topics []string // sorted
	owned  map[string][]int32
	gen    int32
}

// group is the state a rebalance starts from.
type group struct {
	topics  map[string]int32
	members []member // sorted by id
	gen     int32
}

// peer is one assignor under test.
type peer struct {
	name        string
	cooperative bool
	assign      func(g *group) (owned, time.Duration)
}

func regroupPeer(name string) peer {
	a, err := assignor.Lookup(name)
	if err != nil {
		panic(err)
	}
	return peer{name: "regroup " + name, cooperative: name == "cooperative-sticky", assign: func(g *group) (owned, time.Duration) {
		in := &assignor.Input{Topics: g.topics, Generation: g.gen}
		for _, m := range g.members {
			am := assignor.Member{ID: m.id, Topics: m.topics, Generation: m.gen}
			for _, t := range slices.Sorted(maps.Keys(m.owned)) {
				am.Owned = append(am.Owned, assignor.TopicPartitions{Topic: t, Partitions: m.owned[t]})
			}
			in.Members = append(in.Members, am)
		}
		runtime.GC() // neither peer pays for the other's garbage
		start := time.Now()
		p, err := a.Assign(in)
		d := time.Since(start)
		if err != nil {
			panic(err)
		}
		return owned(p), d
	}}
}

func franzPeer(name string, b kgo.GroupBalancer) peer {
	return peer{name: "franz-go " + name, cooperative: b.IsCooperative(), assign: func(g *group) (owned, time.Duration) {
		members := make([]kmsg.JoinGroupResponseMember, len(g.members))
		for i, m := range g.members {
			members[i] = kmsg.JoinGroupResponseMember{MemberID: m.id, ProtocolMetadata: b.JoinGroupMetadata(m.topics, m.owned, m.gen)}
		}
		runtime.GC() // neither peer pays for the other's garbage
		start := time.Now()
		mb, _, err := b.MemberBalancer(members)
		if err != nil {
			panic(err)
		}
		into, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(g.topics)
		d := time.Since(start)
		if err != nil {
			panic(err)
		}
		return into.(*kgo.BalancePlan).AsMemberIDMap(), d
	}}
}

// workload builds a fresh group: every member subscribes to every topic
// (equal), or to each topic with probability 1/2 (unequal, at least one).
func workload(members, partitions int, equal bool) *group {
	r := rand.New(rand.NewPCG(uint64(members), uint64(partitions)))
	nt := 50
	if equal {
		nt = 10
	}
	g := &group{topics: map[string]int32{}, gen: 1}
	var names []string
	for t := range nt {
		name := fmt.Sprintf("t%02d", t)
		names = append(names, name)
		g.topics[name] = int32(partitions / nt)
	}
	for i := range members {
		g.members = append(g.members, member{id: fmt.Sprintf("m%05d", i), topics: subscription(r, names, equal), gen: -1})
	}
	return g
}

func subscription(r *rand.Rand, names []string, equal bool) []string {
	if equal {
		return slices.Clone(names)
	}
	var s []string
	for _, t := range names {
		if r.IntN(2) == 0 {
			s = append(s, t)
		}
	}
	if len(s) == 0 {
		s = []string{names[r.IntN(len(names))]}
	}
	return s
}

// report returns g after every member reports p in g's generation.
func report(g *group, p owned) *group {
	out := &group{topics: g.topics, gen: g.gen + 1}
	for _, m := range g.members {
		out.members = append(out.members, member{id: m.id, topics: m.topics, owned: p[m.id], gen: g.gen})
	}
	return out
}

// revokes reports whether some member of g loses a partition in p.
func revokes(g *group, p owned) bool {
	for _, m := range g.members {
		for t, parts := range m.owned {
			now := p[m.id][t]
			for _, q := range parts {
				if !slices.Contains(now, q) {
					return true
				}
			}
		}
	}
	return false
}

// run rebalances g with p until nobody revokes (one round for an eager
// peer) and returns the final plan and the time of each round.
func run(p peer, g *group) (owned, []time.Duration) {
	var times []time.Duration
	for {
		plan, d := p.assign(g)
		times = append(times, d)
		if !p.cooperative || !revokes(g, plan) || len(times) == 5 {
			return plan, times
		}
		g = report(g, plan)
	}
}

// ownerOf maps topic/partition to member.
func ownerOf(p owned) map[string]string {
	o := map[string]string{}
	for id, m := range p {
		for t, parts := range m {
			for _, q := range parts {
				o[fmt.Sprintf("%s/%d", t, q)] = id
			}
		}
	}
	return o
}

// movedBetween counts the partitions owned in before that after gives to
// another member or to nobody.
func movedBetween(before, after owned) int {
	now := ownerOf(after)
	n := 0
	for k, id := range ownerOf(before) {
		if now[k] != id {
			n++
		}
	}
	return n
}

// balance returns max-min of the members' partition counts and whether
// the plan keeps Kafka's rule (assignor.Balanced).
func balance(g *group, p owned) (int, bool) {
	lo, hi := -1, 0
	in := &assignor.Input{Topics: g.topics}
	for _, m := range g.members {
		n := 0
		for _, parts := range p[m.id] {
			n += len(parts)
		}
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
		in.Members = append(in.Members, assignor.Member{ID: m.id, Topics: m.topics})
	}
	plan := assignor.Plan{}
	for _, m := range g.members {
		plan[m.id] = p[m.id]
		if plan[m.id] == nil {
			plan[m.id] = map[string][]int32{}
		}
	}
	return hi - lo, assignor.Balanced(in, plan) == nil
}

// result is one peer's measurement of one scenario.
type result struct {
	perRound, all time.Duration // medians
	rounds        int
	moved, min    int
	spread        int
	balanced      bool
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// measure runs scenario kind of the fresh group base for p, runs times.
func measure(p peer, base *group, kind string, runs int, equal bool) result {
	start := base
	var before owned
	var res result
	if kind != "fresh" {
		plan, _ := run(p, base)
		before = plan
		stable := report(base, plan)
		// A settled group: every member owns its part of the balanced plan.
		settled, _ := run(p, stable)
		before = settled
		stable = report(stable, settled)
		switch kind {
		case "leave":
			i := len(stable.members) / 2
			for _, parts := range settled[stable.members[i].id] {
				res.min += len(parts)
			}
			stable.members = slices.Delete(slices.Clone(stable.members), i, i+1)
		case "join":
			r := rand.New(rand.NewPCG(7, 7))
			names := slices.Sorted(maps.Keys(base.topics))
			stable.members = append(slices.Clone(stable.members), member{id: "zz-new", topics: subscription(r, names, equal), gen: -1})
		}
		start = stable
	}
	var perRound, all []time.Duration
	var final owned
	for range runs {
		plan, times := run(p, start)
		final = plan
		var sum time.Duration
		for _, d := range times {
			sum += d
		}
		res.rounds = len(times)
		perRound = append(perRound, sum/time.Duration(len(times)))
		all = append(all, sum)
	}
	res.perRound, res.all = median(perRound), median(all)
	if before != nil {
		res.moved = movedBetween(before, final)
		if kind == "join" {
			for _, parts := range final["zz-new"] {
				res.min += len(parts)
			}
		}
	}
	res.spread, res.balanced = balance(start, final)
	return res
}

func main() {
	runs := flag.Int("runs", 5, "runs per case; times are medians")
	only := flag.String("only", "", "run only cases whose name contains this")
	tables := flag.String("tables", "sizes,churn", "tables to print: sizes (the sizes table), churn (the churn workload), or both")
	seeds := flag.Int("churn.seeds", 30, "seeds of the churn workload")
	steps := flag.Int("churn.steps", 57, "rebalances per seed of the churn workload")
	flag.Parse()
	peers := []peer{
		regroupPeer("sticky"), franzPeer("sticky", kgo.StickyBalancer()),
		regroupPeer("cooperative-sticky"), franzPeer("cooperative-sticky", kgo.CooperativeStickyBalancer()),
	}
	if strings.Contains(*tables, "sizes") {
		sizesTable(peers, *runs, *only)
	}
	if strings.Contains(*tables, "churn") {
		if strings.Contains(*tables, "sizes") {
			fmt.Println()
		}
		churnTable(peers, *seeds, *steps)
	}
}

// sizesTable prints the table of equal and unequal subscriptions at every
// size and scenario.
func sizesTable(peers []peer, runs int, only string) {
	sizes := []struct{ members, partitions int }{{1_000, 10_000}, {2_000, 100_000}, {2_000, 1_000_000}}
	fmt.Println("| subscriptions / scenario / members x partitions | assignor | ms per round | ms all rounds | rounds | moved | min | max-min | Kafka-balanced | time vs franz-go | moved vs franz-go |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
	for _, equal := range []bool{true, false} {
		subs := "unequal"
		if equal {
			subs = "equal"
		}
		for _, size := range sizes {
			base := workload(size.members, size.partitions, equal)
			for _, kind := range []string{"fresh", "leave", "join"} {
				name := fmt.Sprintf("%s/%s/%dx%d", subs, kind, size.members, size.partitions)
				if !strings.Contains(name, only) {
					continue
				}
				results := make([]result, len(peers))
				for i, p := range peers {
					fmt.Fprintf(os.Stderr, "%s %s ...", name, p.name)
					t0 := time.Now()
					results[i] = measure(p, base, kind, runs, equal)
					fmt.Fprintf(os.Stderr, " %.1f ms per round (%s)\n", ms(results[i].perRound), time.Since(t0).Round(time.Millisecond))
				}
				for i, p := range peers {
					r := results[i]
					tv, mv := "", ""
					if strings.HasPrefix(p.name, "regroup") {
						f := results[i+1]
						tv = fmt.Sprintf("%.2f", float64(r.all)/float64(f.all))
						if kind != "fresh" && f.moved > 0 {
							mv = fmt.Sprintf("%.2f", float64(r.moved)/float64(f.moved))
						}
					}
					moved, min := "", ""
					if kind != "fresh" {
						moved, min = fmt.Sprint(r.moved), fmt.Sprint(r.min)
					}
					fmt.Printf("| %s | %s | %.3f | %.3f | %d | %s | %s | %d | %v | %s | %s |\n",
						name, p.name, ms(r.perRound), ms(r.all), r.rounds, moved, min, r.spread, r.balanced, tv, mv)
				}
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// churnRow is one peer's totals over the churn workload.
type churnRow struct {
	rebalances, moved   int
	twoRounds, more     int // rebalances of two rounds, of more than two
	maxRounds, balanced int
	elapsed             time.Duration // in the assignor, all rounds
}

// churnInput is cg's group for the next rebalance: the members that prev
// (of generation gen-1) had report what it gave them, the others are new.
func churnInput(cg *churn.Group, prev owned, gen int32) *group {
	g := &group{topics: cg.Topics, gen: gen}
	for _, m := range cg.Members {
		gm := member{id: m.ID, topics: slices.Sorted(slices.Values(m.Topics)), gen: -1}
		if p, ok := prev[m.ID]; ok {
			gm.owned, gm.gen = p, gen-1
		}
		g.members = append(g.members, gm)
	}
	slices.SortFunc(g.members, func(a, b member) int { return strings.Compare(a.id, b.id) })
	return g
}

// movedValid counts the partitions that members of g own validly (of a
// topic they still subscribe to) and that p gives to another member.
func movedValid(g *group, p owned) int {
	now := ownerOf(p)
	n := 0
	for _, m := range g.members {
		for t, parts := range m.owned {
			if !slices.Contains(m.topics, t) {
				continue
			}
			for _, q := range parts {
				if now[fmt.Sprintf("%s/%d", t, q)] != m.id {
					n++
				}
			}
		}
	}
	return n
}

// churnRun runs p over the churn workload: seeds groups of steps
// rebalances, each starting from p's own previous plan.
func churnRun(p peer, seeds, steps int) churnRow {
	var row churnRow
	for seed := 1; seed <= seeds; seed++ {
		cg := churn.New(uint64(seed))
		var prev owned
		gen := int32(1)
		for step := range steps {
			if step > 0 {
				cg.Advance()
			}
			g := churnInput(cg, prev, gen)
			plan, times := run(p, g)
			row.rebalances++
			row.moved += movedValid(g, plan)
			switch rounds := len(times); {
			case rounds == 2:
				row.twoRounds++
			case rounds > 2:
				row.more++
			}
			row.maxRounds = max(row.maxRounds, len(times))
			if _, ok := balance(g, plan); ok {
				row.balanced++
			}
			for _, d := range times {
				row.elapsed += d
			}
			prev, gen = plan, gen+int32(len(times))
		}
	}
	return row
}

// churnTable prints the churn workload's totals per peer.
func churnTable(peers []peer, seeds, steps int) {
	rows := make([]churnRow, len(peers))
	for i, p := range peers {
		fmt.Fprintf(os.Stderr, "churn %s ...", p.name)
		rows[i] = churnRun(p, seeds, steps)
		fmt.Fprintf(os.Stderr, " %d moved\n", rows[i].moved)
	}
	fmt.Printf("Churn workload (internal/churn): %d seeds x %d rebalances, random subscriptions, each assignor following its own plans\n\n", seeds, steps)
	fmt.Println("| assignor | rebalances | partitions moved | moved vs franz-go | two rounds | more than two | most rounds | Kafka-balanced | ms in the assignor |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, p := range peers {
		r := rows[i]
		mv := ""
		if strings.HasPrefix(p.name, "regroup") && rows[i+1].moved > 0 {
			mv = fmt.Sprintf("%.3f", float64(r.moved)/float64(rows[i+1].moved))
		}
		fmt.Printf("| %s | %d | %d | %s | %d | %d | %d | %d of %d | %.1f |\n",
			p.name, r.rebalances, r.moved, mv, r.twoRounds, r.more, r.maxRounds, r.balanced, r.rebalances, ms(r.elapsed))
	}
}
