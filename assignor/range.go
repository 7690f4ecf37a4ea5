package assignor

func init() {
	register("range", func() Assignor { return rangeAssignor{} })
}

// rangeAssignor is Kafka's range assignor: topic by topic, the subscribers
// in order (static members by instance id, then dynamic members by member
// id) get consecutive ranges of partitions, the first P mod N of them one
// partition more. Balanced per topic only; with many topics the first
// members get the extra partitions of every topic.
type rangeAssignor struct{}

func (rangeAssignor) Name() string { return "range" }

func (rangeAssignor) Protocols() []RebalanceProtocol { return []RebalanceProtocol{Eager} }

func (rangeAssignor) Assign(in *Input) (Plan, error) {
	pr, err := newProblem(in, byInstance)
	if err != nil {
		return nil, err
	}
	owner := make([]int32, pr.total)
	off, flat := pr.subscribers()
	for t := range pr.topics {
		subs := flat[off[t]:off[t+1]]
		s := int32(len(subs))
		per, extra := pr.count[t]/s, pr.count[t]%s
		g := pr.base[t]
		for i, m := range subs {
			k := per
			if int32(i) < extra {
				k++
			}
			for end := g + k; g < end; g++ {
				owner[g] = m
			}
		}
	}
	return pr.plan(owner), nil
}
