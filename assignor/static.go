package assignor

import "fmt"

func init() {
	register("static", func() Assignor { return static{} })
}

// static is the "static" assignor: the plan depends only on the members'
// keys (the instance id, or the member id of a dynamic member), their
// subscriptions and the topics, never on member ids of static members or on
// what members own. A group whose members all restart with the same
// instance ids gets the same plan back.
//
// Algorithm: capped rendezvous hashing, drafted by rank. For each topic of
// P partitions and S subscribers, every subscriber's key (hashed with the
// topic name) picks a pseudo-random permutation of the partitions, an
// arithmetic progression (offset + j*step) mod P with step coprime to P.
// Position j in a member's permutation is that member's rank for the
// partition. Ranks are then drafted in order: in round j every subscriber
// that still has room claims the partition at its rank j if it is free. A
// subscriber has room while it holds fewer than floor(P/S) partitions, or
// exactly floor(P/S) while fewer than P mod S subscribers have taken one
// more. So every subscriber ends with floor(P/S) or ceil(P/S) partitions of
// the topic, and the larger quotas go to the members whose partitions came
// first, not to a fixed set: when a member joins, those that lost a
// partition to it are the ones that drop to the smaller quota, and when a
// member leaves, its partitions go to the members that rank them next. The
// draft costs about P·ln P probes per topic, independent of S.
//
// Each partition is a ranked ballot over members, as in rendezvous (highest
// random weight) hashing, so a joining member takes partitions from members
// spread uniformly over the group rather than from a few neighbours on a
// ring; that is what keeps the moves on a join or leave close to the
// minimum (docs/benchmarks.md records them). Consistent hashing with bounded
// loads was the alternative; with loads capped at exactly ceil(P/S) its
// overflow cascades along the ring move more.
//
// With several topics, per-topic quotas can add up unevenly, and with
// unequal subscriptions the balance rule may not hold; the same balancer as
// the general sticky path then moves partitions (highest-numbered first)
// from the most- to the least-loaded subscribers until it holds.
//
// Under the cooperative protocol the plan withholds, as cooperative-sticky
// does, every partition that another member still claims; the follow-up
// round, computing the same target, hands them over. Eager members report
// no owned partitions, so for them the plan is the target.
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
	withholdTransfers(owner, pr.claims())
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
