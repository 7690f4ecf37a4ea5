package assignor

func init() {
	register("roundrobin", func() Assignor { return roundRobin{} })
}

// roundRobin is Kafka's round-robin assignor: the partitions of all
// subscribed topics, in (topic, partition) order, are dealt in turn to the
// members (static members by instance id, then dynamic members by member
// id), skipping members that do not subscribe to the partition's topic.
// Balanced to within one partition when subscriptions are equal.
type roundRobin struct{}

func (roundRobin) Name() string { return "roundrobin" }

func (roundRobin) Protocols() []RebalanceProtocol { return []RebalanceProtocol{Eager} }

func (roundRobin) Assign(in *Input) (Plan, error) {
	pr, err := newProblem(in, byInstance)
	if err != nil {
		return nil, err
	}
	owner := make([]int32, pr.total)
	n := len(pr.members)
	m := 0
	for t := range pr.topics {
		for g := pr.base[t]; g < pr.base[t+1]; g++ {
			for !pr.subscribes(m, int32(t)) {
				m = (m + 1) % n
			}
			owner[g] = int32(m)
			m = (m + 1) % n
		}
	}
	return pr.plan(owner), nil
}
