// Package churn generates the random-subscription churn workload of the
// assignor tests and of bench/peers: a group of members subscribing to
// random subsets of many topics of different sizes, going through
// rebalance after rebalance in which members leave, join and change their
// subscriptions (the shape of Kafka's own random-subscription assignor
// tests). It knows nothing of assignors: the caller keeps what each member
// owns.
package churn

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Member is one member of the group: its id and subscribed topics.
type Member struct {
	ID     string
	Topics []string
}

// Group is the group's state between rebalances.
type Group struct {
	// Topics is the partition count of every topic.
	Topics map[string]int32
	// Members are the current members, in the order they joined.
	Members []Member

	r     *rand.Rand
	names []string
	next  int // number of the next member to join
}

// New returns the group of seed: 5 to 29 members over 10 to 39 topics,
// most of 1 to 8 partitions and a quarter of 8 to 63.
func New(seed uint64) *Group {
	r := rand.New(rand.NewPCG(seed, 17))
	g := &Group{r: r, Topics: map[string]int32{}}
	for i := range 10 + r.IntN(30) {
		name := fmt.Sprintf("t%02d", i)
		n := 1 + r.IntN(8)
		if r.IntN(4) == 0 {
			n = 8 + r.IntN(56)
		}
		g.Topics[name] = int32(n)
		g.names = append(g.names, name)
	}
	for range 5 + r.IntN(25) {
		g.join()
	}
	return g
}

// subscription returns a random subset of the topics, each taken with one
// probability between 0.1 and 0.7, and never empty.
func (g *Group) subscription() []string {
	p := 0.1 + 0.6*g.r.Float64()
	var subs []string
	for _, t := range g.names {
		if g.r.Float64() < p {
			subs = append(subs, t)
		}
	}
	if len(subs) == 0 {
		subs = []string{g.names[g.r.IntN(len(g.names))]}
	}
	return subs
}

func (g *Group) join() {
	g.Members = append(g.Members, Member{ID: fmt.Sprintf("m%04d", g.next), Topics: g.subscription()})
	g.next++
}

// Advance makes the changes before the next rebalance: up to two members
// leave, up to two join (with no partitions) and up to two change their
// subscriptions. A Member's Topics slice is replaced, never modified.
func (g *Group) Advance() {
	for k := g.r.IntN(3); k > 0 && len(g.Members) > 1; k-- {
		i := g.r.IntN(len(g.Members))
		g.Members = slices.Delete(g.Members, i, i+1)
	}
	for k := g.r.IntN(3); k > 0; k-- {
		g.join()
	}
	for k := g.r.IntN(3); k > 0; k-- {
		g.Members[g.r.IntN(len(g.Members))].Topics = g.subscription()
	}
}
