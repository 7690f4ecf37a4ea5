package assignor

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// tp names one partition.
type tp struct {
	topic string
	p     int32
}

func (x tp) String() string { return fmt.Sprintf("%s-%d", x.topic, x.p) }

// mustLookup returns the built-in assignor called name.
func mustLookup(t testing.TB, name string) Assignor {
	t.Helper()
	a, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// cloneInput deep-copies in.
func cloneInput(in *Input) *Input {
	out := &Input{Generation: in.Generation, Topics: map[string]int32{}}
	for t, n := range in.Topics {
		out.Topics[t] = n
	}
	if in.PartitionRacks != nil {
		out.PartitionRacks = map[string][][]string{}
		for t, rs := range in.PartitionRacks {
			cp := make([][]string, len(rs))
			for i, r := range rs {
				cp[i] = slices.Clone(r)
			}
			out.PartitionRacks[t] = cp
		}
	}
	for _, m := range in.Members {
		c := m
		c.Topics = slices.Clone(m.Topics)
		c.UserData = slices.Clone(m.UserData)
		c.Owned = nil
		for _, o := range m.Owned {
			c.Owned = append(c.Owned, TopicPartitions{Topic: o.Topic, Partitions: slices.Clone(o.Partitions)})
		}
		out.Members = append(out.Members, c)
	}
	return out
}

// member returns the member with this id.
func member(in *Input, id string) *Member {
	for i := range in.Members {
		if in.Members[i].ID == id {
			return &in.Members[i]
		}
	}
	return nil
}

// ownedOf lists the partitions of p for one member.
func ownedOf(p map[string][]int32) []TopicPartitions {
	topics := make([]string, 0, len(p))
	for t := range p {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	var out []TopicPartitions
	for _, t := range topics {
		if len(p[t]) > 0 {
			out = append(out, TopicPartitions{Topic: t, Partitions: slices.Clone(p[t])})
		}
	}
	return out
}

// feedBack returns the input of the next round: every member reports what p
// gave it, in generation gen.
func feedBack(in *Input, p Plan, gen int32) *Input {
	out := cloneInput(in)
	out.Generation = gen + 1
	for i := range out.Members {
		m := &out.Members[i]
		m.Owned = ownedOf(p[m.ID])
		m.Generation = gen
		m.NotHeld = false
	}
	return out
}

// ownerMap returns partition -> member of a plan.
func ownerMap(p Plan) map[tp]string {
	o := map[tp]string{}
	for id, m := range p {
		for t, parts := range m {
			for _, q := range parts {
				o[tp{t, q}] = id
			}
		}
	}
	return o
}

// counts returns the number of partitions of every member of p.
func counts(p Plan) map[string]int {
	c := map[string]int{}
	for id, m := range p {
		c[id] = 0
		for _, parts := range m {
			c[id] += len(parts)
		}
	}
	return c
}

// spread returns max-min of the members' partition counts.
func spread(p Plan) int {
	lo, hi := -1, -1
	for _, n := range counts(p) {
		if lo < 0 || n < lo {
			lo = n
		}
		if n > hi {
			hi = n
		}
	}
	return hi - lo
}

// validOwners resolves the owned partitions of in independently of the
// package: a claim is valid for an existing partition of a topic the member
// subscribes to; a held claim outranks one that is not (Member.NotHeld);
// among claims of one kind the unique highest generation wins.
func validOwners(in *Input) map[tp]string {
	type claim struct {
		held bool
		gen  int32
		ids  map[string]bool
	}
	best := map[tp]*claim{}
	for _, m := range in.Members {
		subs := map[string]bool{}
		for _, t := range m.Topics {
			subs[t] = true
		}
		for _, o := range m.Owned {
			n := in.Topics[o.Topic]
			if !subs[o.Topic] || n <= 0 {
				continue
			}
			for _, q := range o.Partitions {
				if q < 0 || q >= n {
					continue
				}
				k := tp{o.Topic, q}
				c := best[k]
				held := !m.NotHeld
				switch {
				case c == nil || held && !c.held || held == c.held && m.Generation > c.gen:
					best[k] = &claim{held, m.Generation, map[string]bool{m.ID: true}}
				case held == c.held && m.Generation == c.gen:
					c.ids[m.ID] = true
				}
			}
		}
	}
	out := map[tp]string{}
	for k, c := range best {
		if len(c.ids) == 1 {
			for id := range c.ids {
				out[k] = id
			}
		}
	}
	return out
}

// moved counts the validly owned partitions of in that p gives to another
// member (or to nobody).
func moved(in *Input, p Plan) int {
	now := ownerMap(p)
	n := 0
	for k, id := range validOwners(in) {
		if now[k] != id {
			n++
		}
	}
	return n
}

// equalSubs reports whether all members subscribe to the same existing
// topics.
func equalSubs(in *Input) bool {
	var first []string
	for i, m := range in.Members {
		var s []string
		for _, t := range m.Topics {
			if in.Topics[t] > 0 {
				s = append(s, t)
			}
		}
		slices.Sort(s)
		s = slices.Compact(s)
		if i == 0 {
			first = s
		} else if !slices.Equal(first, s) {
			return false
		}
	}
	return true
}

// minMoves is the fewest validly owned partitions that a balanced plan must
// move, for members with equal subscriptions: each member keeps at most
// floor(P/N) partitions, and P mod N of them one more.
func minMoves(in *Input) int {
	n := len(in.Members)
	if n == 0 {
		return 0
	}
	subs := map[string]bool{}
	for _, t := range in.Members[0].Topics {
		subs[t] = true
	}
	total := 0
	for t := range subs {
		if in.Topics[t] > 0 {
			total += int(in.Topics[t])
		}
	}
	own := map[string]int{}
	valid := validOwners(in)
	for _, id := range valid {
		own[id]++
	}
	minQ, extra := total/n, total%n
	kept, atMax := 0, 0
	for _, c := range own {
		kept += min(c, minQ)
		if c > minQ {
			atMax++
		}
	}
	kept += min(extra, atMax)
	return len(valid) - kept
}

// shuffled returns a copy of in with members, topics, owned lists and
// partitions in random order and some topics and owned partitions listed
// twice: an equivalent input.
func shuffled(r *rand.Rand, in *Input) *Input {
	out := cloneInput(in)
	r.Shuffle(len(out.Members), func(i, j int) { out.Members[i], out.Members[j] = out.Members[j], out.Members[i] })
	for i := range out.Members {
		m := &out.Members[i]
		if len(m.Topics) > 0 && r.IntN(3) == 0 {
			m.Topics = append(m.Topics, m.Topics[r.IntN(len(m.Topics))])
		}
		r.Shuffle(len(m.Topics), func(a, b int) { m.Topics[a], m.Topics[b] = m.Topics[b], m.Topics[a] })
		for k := range m.Owned {
			ps := m.Owned[k].Partitions
			if len(ps) > 0 && r.IntN(3) == 0 {
				ps = append(ps, ps[r.IntN(len(ps))])
			}
			r.Shuffle(len(ps), func(a, b int) { ps[a], ps[b] = ps[b], ps[a] })
			m.Owned[k].Partitions = ps
		}
		r.Shuffle(len(m.Owned), func(a, b int) { m.Owned[a], m.Owned[b] = m.Owned[b], m.Owned[a] })
	}
	return out
}

// uniform returns n members "c0000".. subscribing to topics, each with
// count partitions, owning nothing.
func uniform(n int, count int32, topics ...string) *Input {
	in := &Input{Topics: map[string]int32{}, Generation: 1}
	for _, t := range topics {
		in.Topics[t] = count
	}
	for i := 0; i < n; i++ {
		in.Members = append(in.Members, Member{ID: fmt.Sprintf("c%04d", i), Topics: slices.Clone(topics), Generation: -1})
	}
	return in
}

// genOptions bounds a random input.
type genOptions struct {
	members, topics, partitions int
	equal                       bool // every member subscribes to every topic
	instances                   bool // members have instance ids
	racks                       bool // members and partitions have racks
}

// randomInput returns a random fresh input (nobody owns anything).
func randomInput(r *rand.Rand, o genOptions) *Input {
	in := &Input{Topics: map[string]int32{}, Generation: 1}
	nt := 1 + r.IntN(o.topics)
	var topics []string
	for i := 0; i < nt; i++ {
		name := fmt.Sprintf("t%02d", i)
		topics = append(topics, name)
		in.Topics[name] = int32(1 + r.IntN(o.partitions))
	}
	if o.racks {
		in.PartitionRacks = map[string][][]string{}
		for _, t := range topics {
			rs := make([][]string, in.Topics[t])
			for p := range rs {
				rs[p] = []string{fmt.Sprintf("r%d", r.IntN(3)), fmt.Sprintf("r%d", r.IntN(3))}
			}
			in.PartitionRacks[t] = rs
		}
	}
	nm := 1 + r.IntN(o.members)
	for i := 0; i < nm; i++ {
		in.Members = append(in.Members, randomMember(r, o, topics, i))
	}
	return in
}

func randomMember(r *rand.Rand, o genOptions, topics []string, i int) Member {
	m := Member{ID: fmt.Sprintf("m%03d-%d", i, r.IntN(1000)), Generation: -1}
	if o.instances && r.IntN(4) > 0 {
		m.InstanceID = fmt.Sprintf("i%03d", i)
	}
	if o.equal {
		m.Topics = slices.Clone(topics)
	} else {
		for _, t := range topics {
			if r.IntN(2) == 0 {
				m.Topics = append(m.Topics, t)
			}
		}
		if r.IntN(8) == 0 {
			m.Topics = append(m.Topics, "deleted")
		}
	}
	if o.racks {
		m.Rack = fmt.Sprintf("r%d", r.IntN(4))
	}
	return m
}

// evolve returns the next round's input after plan p: members report p (in
// the input's generation), then random changes: members leave and join,
// subscriptions and partition counts change, and some members report stale
// or conflicting ownership.
func evolve(r *rand.Rand, in *Input, p Plan, o genOptions) *Input {
	next := feedBack(in, p, in.Generation)
	var topics []string
	for t := range next.Topics {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	var keep []Member
	for _, m := range next.Members {
		if r.IntN(8) > 0 || len(next.Members) == 1 {
			keep = append(keep, m)
		}
	}
	next.Members = keep
	for i := r.IntN(3); i > 0 && len(next.Members) < o.members; i-- {
		next.Members = append(next.Members, randomMember(r, o, topics, 500+r.IntN(500)))
	}
	slices.SortFunc(next.Members, func(a, b Member) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	next.Members = slices.CompactFunc(next.Members, func(a, b Member) bool { return a.ID == b.ID })
	for i := range next.Members {
		m := &next.Members[i]
		switch r.IntN(10) {
		case 0:
			if !o.equal {
				m.Topics = randomMember(r, o, topics, i).Topics
			}
		case 1:
			m.Generation -= int32(1 + r.IntN(2))
		case 2:
			if len(next.Members) > 1 {
				other := next.Members[r.IntN(len(next.Members))]
				m.Owned = append(m.Owned, other.Owned...)
			}
		case 3:
			m.Owned = append(m.Owned, TopicPartitions{Topic: "gone", Partitions: []int32{0, 1}},
				TopicPartitions{Topic: topics[0], Partitions: []int32{-1, 1 << 20}})
		case 4:
			// A member that restarted, or an eager one: it holds nothing
			// and is shown with its last assignment.
			m.NotHeld = true
		}
	}
	if r.IntN(6) == 0 {
		t := topics[r.IntN(len(topics))]
		if r.IntN(2) == 0 && len(topics) > 1 {
			delete(next.Topics, t)
			delete(next.PartitionRacks, t)
		} else {
			next.Topics[t] = int32(1 + r.IntN(o.partitions))
			delete(next.PartitionRacks, t)
		}
	}
	return next
}
