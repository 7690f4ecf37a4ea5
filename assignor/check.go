package assignor

import (
	"fmt"
	"slices"
	"sort"
)

// Check reports the first way in which p is not a valid plan for in: a
// member of in without an entry, an entry for an id that is not a member, a
// topic that does not exist or that the member does not subscribe to, a
// partition outside its topic's count, a partition list that is not sorted
// ascending without duplicates, or a partition given to two members. It does
// not require every partition to be assigned (see Complete). Errors name the
// members, topics and partitions concerned; a nil error means p is valid.
func Check(in *Input, p Plan) error {
	subscribed := make(map[string]map[string]bool, len(in.Members))
	for i := range in.Members {
		m := &in.Members[i]
		if _, dup := subscribed[m.ID]; dup {
			return fmt.Errorf("assignor: two members with id %q", m.ID)
		}
		set := make(map[string]bool, len(m.Topics))
		for _, t := range m.Topics {
			set[t] = true
		}
		subscribed[m.ID] = set
		if _, ok := p[m.ID]; !ok {
			return fmt.Errorf("assignor: plan has no entry for member %q", m.ID)
		}
	}
	ids := make([]string, 0, len(p))
	for id := range p {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	owners := make(map[string][]int32)
	for idx, id := range ids {
		set, ok := subscribed[id]
		if !ok {
			return fmt.Errorf("assignor: plan assigns to %q, which is not a member", id)
		}
		topics := make([]string, 0, len(p[id]))
		for t := range p[id] {
			topics = append(topics, t)
		}
		sort.Strings(topics)
		for _, t := range topics {
			n := in.Topics[t]
			if n <= 0 {
				return fmt.Errorf("assignor: plan gives member %q partitions of topic %q, which does not exist", id, t)
			}
			if !set[t] {
				return fmt.Errorf("assignor: plan gives member %q partitions of topic %q, to which it does not subscribe", id, t)
			}
			own := owners[t]
			if own == nil {
				own = make([]int32, n)
				owners[t] = own
			}
			for i, q := range p[id][t] {
				if q < 0 || q >= n {
					return fmt.Errorf("assignor: plan gives member %q partition %d of topic %q, which has %d partitions", id, q, t, n)
				}
				if i > 0 && q <= p[id][t][i-1] {
					return fmt.Errorf("assignor: plan's partitions of topic %q for member %q are not ascending without duplicates: %d after %d", t, id, q, p[id][t][i-1])
				}
				if prev := own[q]; prev != 0 {
					return fmt.Errorf("assignor: plan gives partition %d of topic %q to both %q and %q", q, t, ids[prev-1], id)
				}
				own[q] = int32(idx + 1)
			}
		}
	}
	return nil
}

// Complete reports partitions of subscribed, existing topics that p assigns
// to nobody. It assumes Check(in, p) passed.
func Complete(in *Input, p Plan) error {
	topics := map[string]bool{}
	for i := range in.Members {
		for _, t := range in.Members[i].Topics {
			if in.Topics[t] > 0 {
				topics[t] = true
			}
		}
	}
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		var assigned int64
		seen := make([]bool, in.Topics[t])
		for _, m := range p {
			for _, q := range m[t] {
				if q >= 0 && q < in.Topics[t] && !seen[q] {
					seen[q] = true
					assigned++
				}
			}
		}
		if missing := int64(in.Topics[t]) - assigned; missing > 0 {
			first := slices.Index(seen, false)
			return fmt.Errorf("assignor: plan leaves %d partitions of topic %q unassigned, the first is %d", missing, t, first)
		}
	}
	return nil
}

// Balanced reports whether p breaks the balance rule of the sticky
// assignors: when one member holds two or more partitions more than another,
// the larger holds no partition of a topic that the smaller subscribes to
// (else moving one would improve balance). With equal subscriptions this
// means the members' partition counts differ by at most one. It assumes
// Check(in, p) passed.
func Balanced(in *Input, p Plan) error {
	type extreme struct {
		id string
		n  int
	}
	minSub := map[string]extreme{}
	maxHold := map[string]extreme{}
	ids := make([]string, 0, len(in.Members))
	for i := range in.Members {
		ids = append(ids, in.Members[i].ID)
	}
	sort.Strings(ids)
	byID := make(map[string]*Member, len(in.Members))
	for i := range in.Members {
		byID[in.Members[i].ID] = &in.Members[i]
	}
	for _, id := range ids {
		n := 0
		for _, parts := range p[id] {
			n += len(parts)
		}
		for _, t := range byID[id].Topics {
			if in.Topics[t] <= 0 {
				continue
			}
			if e, ok := minSub[t]; !ok || n < e.n {
				minSub[t] = extreme{id, n}
			}
		}
		for t, parts := range p[id] {
			if len(parts) == 0 {
				continue
			}
			if e, ok := maxHold[t]; !ok || n > e.n {
				maxHold[t] = extreme{id, n}
			}
		}
	}
	topics := make([]string, 0, len(maxHold))
	for t := range maxHold {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		hi, lo := maxHold[t], minSub[t]
		if hi.n > lo.n+1 {
			return fmt.Errorf("assignor: unbalanced: member %q holds %d partitions, some of topic %q, while member %q, which subscribes to %q, holds %d",
				hi.id, hi.n, t, lo.id, t, lo.n)
		}
	}
	return nil
}
