package assignor

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Ownership states of a partition in problem.claims, besides a member index.
const (
	// unclaimed: no member of the group reports owning the partition.
	unclaimed int32 = -1
	// contested: members report owning it but none owns it validly: the
	// highest generation among the valid claims is claimed twice, or only
	// members that no longer subscribe to its topic claim it.
	contested int32 = -2
	// staleClaim is contested while claims are being resolved: claimed only
	// by members that do not subscribe to the topic; a valid claim replaces
	// it.
	staleClaim int32 = -3
)

// problem is an Input in the numbered form the assignors work on. Members
// are numbered in the order the assignor chose; topics (the subscribed ones
// that exist) are numbered in name order; partition p of topic t has the
// global number base[t]+p, so global numbers follow (topic name, partition).
type problem struct {
	in      *Input
	members []*Member
	topics  []string
	topicIx map[string]int32
	count   []int32 // partitions of each topic
	base    []int32 // global number of each topic's partition 0; base[len(topics)] = total
	total   int32
	subOff  []int32 // member m subscribes to subs[subOff[m]:subOff[m+1]]
	subs    []int32 // topic numbers, ascending, without duplicates
}

// newProblem numbers the input. less orders the members; it must be a total
// order (break ties by member id). It fails if two members share an id.
func newProblem(in *Input, less func(a, b *Member) int) (*problem, error) {
	pr := &problem{in: in, members: make([]*Member, len(in.Members))}
	for i := range in.Members {
		pr.members[i] = &in.Members[i]
	}
	slices.SortFunc(pr.members, func(a, b *Member) int { return strings.Compare(a.ID, b.ID) })
	for i := 1; i < len(pr.members); i++ {
		if pr.members[i].ID == pr.members[i-1].ID {
			return nil, fmt.Errorf("assignor: two members with id %q", pr.members[i].ID)
		}
	}
	if less != nil {
		slices.SortFunc(pr.members, less)
	}

	pr.topicIx = make(map[string]int32)
	for _, m := range pr.members {
		for _, t := range m.Topics {
			if _, seen := pr.topicIx[t]; seen {
				continue
			}
			if in.Topics[t] > 0 {
				pr.topicIx[t] = 0
				pr.topics = append(pr.topics, t)
			}
		}
	}
	slices.Sort(pr.topics)
	pr.count = make([]int32, len(pr.topics))
	pr.base = make([]int32, len(pr.topics)+1)
	var total int64
	for i, t := range pr.topics {
		pr.topicIx[t] = int32(i)
		pr.count[i] = in.Topics[t]
		pr.base[i] = int32(total)
		total += int64(pr.count[i])
		if total > math.MaxInt32 {
			return nil, fmt.Errorf("assignor: the subscribed topics have more than %d partitions", math.MaxInt32)
		}
	}
	pr.total = int32(total)
	pr.base[len(pr.topics)] = pr.total

	pr.subOff = make([]int32, len(pr.members)+1)
	for i, m := range pr.members {
		start := len(pr.subs)
		for _, t := range m.Topics {
			if ix, ok := pr.topicIx[t]; ok {
				pr.subs = append(pr.subs, ix)
			}
		}
		own := pr.subs[start:]
		slices.Sort(own)
		pr.subs = pr.subs[:start+len(slices.Compact(own))]
		pr.subOff[i+1] = int32(len(pr.subs))
	}
	return pr, nil
}

// byID orders members by member id.
func byID(a, b *Member) int { return strings.Compare(a.ID, b.ID) }

// byInstance orders static members by instance id before dynamic members by
// member id, so that a restarted static member keeps its place.
func byInstance(a, b *Member) int {
	switch {
	case a.InstanceID != "" && b.InstanceID != "":
		if c := strings.Compare(a.InstanceID, b.InstanceID); c != 0 {
			return c
		}
	case a.InstanceID != "":
		return -1
	case b.InstanceID != "":
		return 1
	}
	return strings.Compare(a.ID, b.ID)
}

// memberSubs returns the topics member m subscribes to.
func (pr *problem) memberSubs(m int) []int32 {
	return pr.subs[pr.subOff[m]:pr.subOff[m+1]]
}

// subscribes reports whether member m subscribes to topic t.
func (pr *problem) subscribes(m int, t int32) bool {
	_, ok := slices.BinarySearch(pr.memberSubs(m), t)
	return ok
}

// equalSubscriptions reports whether every member subscribes to the same
// existing topics.
func (pr *problem) equalSubscriptions() bool {
	if len(pr.members) == 0 {
		return true
	}
	first := pr.memberSubs(0)
	for m := 1; m < len(pr.members); m++ {
		if !slices.Equal(first, pr.memberSubs(m)) {
			return false
		}
	}
	return true
}

// subscribers returns, for each topic, the members that subscribe to it in
// member order, as offsets into one flat slice.
func (pr *problem) subscribers() (off []int32, flat []int32) {
	off = make([]int32, len(pr.topics)+1)
	for _, t := range pr.subs {
		off[t+1]++
	}
	for t := range pr.topics {
		off[t+1] += off[t]
	}
	flat = make([]int32, len(pr.subs))
	next := slices.Clone(off[:len(pr.topics)])
	for m := range pr.members {
		for _, t := range pr.memberSubs(m) {
			flat[next[t]] = int32(m)
			next[t]++
		}
	}
	return off, flat
}

// claims resolves the owned partitions that members report into one owner
// per partition: the member index, unclaimed, or contested. A claim is valid
// only for an existing partition of a topic the member subscribes to. Among
// valid claims the highest generation wins; two valid claims in the highest
// generation leave the partition contested. Claims by members that no longer
// subscribe to the topic do not compete with valid claims, but alone they
// leave the partition contested: the member may still be consuming it.
func (pr *problem) claims() []int32 {
	owner := make([]int32, pr.total)
	for i := range owner {
		owner[i] = unclaimed
	}
	order := make([]int32, 0, len(pr.members))
	for m, mem := range pr.members {
		if len(mem.Owned) > 0 {
			order = append(order, int32(m))
		}
	}
	// Held claims first, then highest generation first: a later valid claim
	// then wins only against a stale claim or one that is not held, and ties
	// with an earlier one of its kind in its own generation.
	slices.SortStableFunc(order, func(a, b int32) int {
		na, nb := pr.members[a].NotHeld, pr.members[b].NotHeld
		if na != nb {
			if nb {
				return -1
			}
			return 1
		}
		ga, gb := pr.members[a].Generation, pr.members[b].Generation
		switch {
		case ga > gb:
			return -1
		case ga < gb:
			return 1
		}
		return 0
	})
	mark := make([]int32, len(pr.topics))
	for i := range mark {
		mark[i] = -1
	}
	for _, m := range order {
		for _, t := range pr.memberSubs(int(m)) {
			mark[t] = m
		}
		gen := pr.members[m].Generation
		for _, tp := range pr.members[m].Owned {
			t, ok := pr.topicIx[tp.Topic]
			if !ok {
				continue
			}
			valid := mark[t] == m
			base, n := pr.base[t], pr.count[t]
			for _, p := range tp.Partitions {
				if p < 0 || p >= n {
					continue
				}
				g := base + p
				cur := owner[g]
				switch {
				case !valid:
					if cur == unclaimed {
						owner[g] = staleClaim
					}
				case cur == unclaimed || cur == staleClaim && !pr.members[m].NotHeld:
					// A claim that is not held never displaces one that is,
					// even a stale one: its holder has to revoke it first.
					owner[g] = m
				case cur >= 0 && cur != m && pr.members[cur].Generation == gen && pr.members[cur].NotHeld == pr.members[m].NotHeld:
					owner[g] = contested
				}
			}
		}
	}
	for g, o := range owner {
		if o == staleClaim {
			owner[g] = contested
		}
	}
	return owner
}

// holders returns the owners in claims that are members, and unowned
// otherwise: the ownership an eager assignor may keep.
func holders(claims []int32) []int32 {
	owner := make([]int32, len(claims))
	for g, o := range claims {
		if o < 0 {
			o = unclaimed
		}
		owner[g] = o
	}
	return owner
}

// withholdTransfers applies the cooperative rule to a target: a partition
// that a member of the group still holds goes to nobody in this round
// unless the target leaves it with its valid owner. The claimant revokes it,
// and the follow-up round, in which nobody claims it, hands it over. A
// claim that is not held (Member.NotHeld) is kept only for stickiness: its
// partition moves at once.
func (pr *problem) withholdTransfers(target, claims []int32) {
	for g, o := range target {
		c := claims[g]
		if c == unclaimed || c == o || (c >= 0 && pr.members[c].NotHeld) {
			continue
		}
		target[g] = unclaimed
	}
}

// plan turns an owner per global partition (a member index, or negative for
// none) into a Plan. All partition lists share one backing array, each
// capped at its length so that appending to one cannot change another.
func (pr *problem) plan(owner []int32) Plan {
	n := len(pr.members)
	cnt := make([]int32, n+1)
	segs := make([]int32, n)
	last := make([]int32, n)
	for i := range last {
		last[i] = -1
	}
	for t := range pr.topics {
		for _, m := range owner[pr.base[t]:pr.base[t+1]] {
			if m < 0 {
				continue
			}
			cnt[m+1]++
			if last[m] != int32(t) {
				last[m] = int32(t)
				segs[m]++
			}
		}
	}
	for m := 0; m < n; m++ {
		cnt[m+1] += cnt[m]
	}
	buf := make([]int32, cnt[n])
	pos := cnt[:n]
	start := make([]int32, n)
	for i := range last {
		last[i] = -1
	}
	maps := make([]map[string][]int32, n)
	out := make(Plan, n)
	for m, mem := range pr.members {
		maps[m] = make(map[string][]int32, segs[m])
		out[mem.ID] = maps[m]
	}
	for t := range pr.topics {
		base := pr.base[t]
		for p, m := range owner[base:pr.base[t+1]] {
			if m < 0 {
				continue
			}
			if last[m] != int32(t) {
				if last[m] >= 0 {
					maps[m][pr.topics[last[m]]] = buf[start[m]:pos[m]:pos[m]]
				}
				last[m] = int32(t)
				start[m] = pos[m]
			}
			buf[pos[m]] = int32(p)
			pos[m]++
		}
	}
	for m := range maps {
		if last[m] >= 0 {
			maps[m][pr.topics[last[m]]] = buf[start[m]:pos[m]:pos[m]]
		}
	}
	return out
}
