package assignor

import "fmt"

func init() {
	register("static", func() Assignor { return static{} })
}

// static is the "static" assignor: the plan depends only on the members'
// keys (the instance id, or the member id of a dynamic member), their
// subscriptions and the topics, never on the member ids of static members
// or on what members own. A group whose members all restart with the same
// instance ids gets the same plan back.
//
// Algorithm: capped rendezvous hashing, run as a ranked draft. Each member's
// key (hashed with FNV-1a and mixed with SplitMix64) picks a pseudo-random
// permutation of the P partitions: an arithmetic progression
// (offset + j*step) mod P with step coprime to P. Position j in a member's
// permutation is the member's rank for that partition, so every partition
// holds a ranked ballot over the members, as in rendezvous (highest random
// weight) hashing. The draft goes through the ranks in order: in round j
// every member (in key order) that still has room claims the partition at
// its rank j if nobody holds it yet. A member has room while it holds fewer
// than floor(P/N) partitions, or exactly floor(P/N) while fewer than P mod N
// members have taken one more. Every member thus ends with floor(P/N) or
// ceil(P/N) partitions, and the larger quotas go to the members that fill
// first rather than to a fixed set: on a join, the members that lost a
// partition to the newcomer fill later and tend to drop to the smaller
// quota. The draft costs about P·ln P probes, whatever N.
//
// With equal subscriptions the draft runs once over all partitions of all
// topics (in topic name order), so the balance is within one partition
// overall. With unequal subscriptions it runs per topic over the topic's
// subscribers, and the balancer of the general sticky path then moves
// partitions (highest-numbered first) from the most- to the least-loaded
// subscribers until the balance rule of Balanced holds.
//
// Why rendezvous and not a ring: a stateless plan balanced to within one
// partition leaves no slack when N divides P, so every quota change on a
// join or leave is passed along a chain of members. Ballots spread over all
// members let a newcomer take one partition from each of many members, as
// the minimum requires; a ring with few virtual nodes takes runs from a few
// neighbours, and consistent hashing with bounded loads, whose extra moves
// grow as 1/eps^2 for a bound of (1+eps)·P/N, has no bound left at eps = 0.
// Measured on one topic (docs/benchmarks.md): with 100 or more partitions
// per member and up to 100 members a join or leave moves 1.1 to 2 times
// the minimum; with 10 per member it moves 1.3 to 6 times the minimum,
// growing with N. Exact rendezvous hashing with the same caps (O(N·P)) and
// a Maglev table measured no better.
//
// Under the cooperative protocol the plan withholds, as cooperative-sticky
// does, every partition that another member still claims; the follow-up
// round, computing the same target, hands them over. Eager members report
// no owned partitions, so for them the plan is the target in one round.
type static struct{}

func (static) Name() string { return "static" }

func (static) Protocols() []RebalanceProtocol { return []RebalanceProtocol{Eager, Cooperative} }

func (static) Assign(in *Input) (Plan, error) {
	pr, err := newProblem(in, byInstance)
	if err != nil {
		return nil, err
	}
	keys := make([]uint64, len(pr.members))
	for m, mem := range pr.members {
		if mem.InstanceID != "" {
			keys[m] = fnv1a('i', mem.InstanceID)
		} else {
			keys[m] = fnv1a('m', mem.ID)
		}
	}
	owner := make([]int32, pr.total)
	for g := range owner {
		owner[g] = unclaimed
	}
	load := make([]int32, len(pr.members))
	b := pr.newBalancer(owner, nil, load)
	if pr.equalSubscriptions() {
		all := make([]int32, len(pr.members))
		for m := range all {
			all[m] = int32(m)
		}
		draft(owner, load, all, keys, 0)
	} else {
		for t := range pr.topics {
			t := int32(t)
			draft(owner[pr.base[t]:pr.base[t+1]], load, b.subscribers(t), keys, fnv1a('t', pr.topics[t]))
		}
	}
	b.run()
	pr.withholdTransfers(owner, pr.claims())
	return pr.plan(owner), nil
}

// draft assigns the partitions owner[0:n] to the members subs by ranked
// draft (see static), adding to load. salt varies the members'
// permutations between drafts.
func draft(owner, load, subs []int32, keys []uint64, salt uint64) {
	n := int32(len(owner))
	s := int32(len(subs))
	if n == 0 || s == 0 {
		return
	}
	floor, extra := n/s, n%s
	type cursor struct{ pos, step, held, member int32 }
	active := make([]cursor, s)
	for i, m := range subs {
		h := mix64(keys[m] ^ salt)
		c := cursor{pos: int32(h % uint64(n)), step: 1, member: m}
		if n > 2 {
			c.step = 1 + int32((h>>32)%uint64(n-1))
			for gcd(c.step, n) != 1 {
				c.step++
			}
		}
		active[i] = c
	}
	taken := make([]uint64, (n+63)/64)
	for left := n; left > 0; {
		if len(active) == 0 {
			panic(fmt.Sprintf("assignor: static draft stalled with %d of %d partitions left", left, n))
		}
		k := 0
		for _, c := range active {
			if c.held > floor || c.held == floor && extra == 0 {
				continue
			}
			if w, bit := c.pos>>6, uint64(1)<<(c.pos&63); taken[w]&bit == 0 {
				taken[w] |= bit
				owner[c.pos] = c.member
				load[c.member]++
				left--
				c.held++
				if c.held == floor+1 {
					extra--
				}
			}
			c.pos += c.step
			if c.pos >= n {
				c.pos -= n
			}
			active[k] = c
			k++
		}
		active = active[:k]
	}
}

func gcd(a, b int32) int32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// fnv1a hashes a kind byte and s with 64-bit FNV-1a.
func fnv1a(kind byte, s string) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	h = (h ^ uint64(kind)) * prime
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * prime
	}
	return h
}

// mix64 is the SplitMix64 finalizer: a bijection that spreads every input
// bit over the output.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
