package simulator

import (
	"cmp"
	"fmt"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/member/fsm"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// Variant is one combination a comparison runs a scenario under: every
// member offers Assignor, under Protocol, with Membership "static",
// "dynamic" or "" (as the scenario says); with Classic, every member beats
// as Kafka's classic client (no held heartbeats: a rebalance notice waits
// for its next heartbeat), the baseline that shows what held heartbeats
// buy. With GroupProtocol fsm.Next, every member speaks the next-generation
// protocol: the coordinator assigns with Assignor, its server-side
// assignor, and each member converges to its part on its own (Protocol is
// then Cooperative and Classic false).
type Variant struct {
	Protocol      assignor.RebalanceProtocol
	Assignor      string
	Membership    string
	Classic       bool
	GroupProtocol fsm.Protocol
}

// ProtocolName names v's protocol as Variants takes it: "eager",
// "cooperative", "classic-eager", "classic-cooperative" or "next".
func (v Variant) ProtocolName() string {
	if v.GroupProtocol == fsm.Next {
		return "next"
	}
	if v.Classic {
		return "classic-" + v.Protocol.String()
	}
	return v.Protocol.String()
}

// eagerFallback is what a member offers after an assignor that supports
// the cooperative protocol to run it eagerly: a member is cooperative only
// if every assignor it offers supports it (assignor.ProtocolFor), and the
// group selects the assignor every member prefers, so range is never used.
const eagerFallback = "range"

// Assignors returns the assignors every member offers under v: under the
// next-generation protocol, the server-side assignor it asks for.
func (v Variant) Assignors() []string {
	if v.GroupProtocol == fsm.Next {
		return []string{cmp.Or(v.Assignor, fsm.DefaultServerAssignor)}
	}
	a, err := assignor.Lookup(v.Assignor)
	if err == nil && v.Protocol == assignor.Eager && assignor.Supports(a, assignor.Cooperative) {
		return []string{v.Assignor, eagerFallback}
	}
	return []string{v.Assignor}
}

// Apply sets sc's members' group protocol, assignors, membership and
// heartbeats to v's.
func (v Variant) Apply(sc *scenario.Scenario) {
	sc.SetAssignors(v.Assignors())
	sc.SetClassicHeartbeats(v.Classic)
	sc.SetProtocol(v.GroupProtocol)
	switch v.Membership {
	case "static":
		sc.SetStatic(true)
	case "dynamic":
		sc.SetStatic(false)
	}
}

// String names the variant, e.g. "cooperative/cooperative-sticky/static".
func (v Variant) String() string {
	m := v.Membership
	if m == "" {
		m = "as-scenario"
	}
	return fmt.Sprintf("%s/%s/%s", v.ProtocolName(), v.Assignor, m)
}

// Variants returns every combination of protocols ("eager",
// "cooperative", and Kafka's classic client's heartbeats under either,
// "classic-eager" and "classic-cooperative"; "next", the next-generation
// protocol), assignors (registered names) and memberships ("static",
// "dynamic", or "" for the scenario's own), leaving out the combinations an
// assignor cannot run (an eager-only assignor under the cooperative
// protocol), which it lists in skipped. Under "next" the assignor is the
// coordinator's, and every registered one runs: the members converge to
// its plan incrementally whatever protocols it supports.
func Variants(protocols, assignors, memberships []string) (vs []Variant, skipped []string, err error) {
	if len(memberships) == 0 {
		memberships = []string{""}
	}
	for _, m := range memberships {
		if m != "" && m != "static" && m != "dynamic" {
			return nil, nil, fmt.Errorf("regroup: unknown membership %q: want static or dynamic", m)
		}
	}
	for _, p := range protocols {
		var proto assignor.RebalanceProtocol
		classic, group := false, fsm.Classic
		switch p {
		case "eager":
			proto = assignor.Eager
		case "cooperative":
			proto = assignor.Cooperative
		case "classic-eager":
			proto, classic = assignor.Eager, true
		case "classic-cooperative":
			proto, classic = assignor.Cooperative, true
		case "next":
			proto, group = assignor.Cooperative, fsm.Next
		default:
			return nil, nil, fmt.Errorf("regroup: unknown protocol %q: want eager, cooperative, classic-eager or classic-cooperative (Kafka's classic client's heartbeats), or next (the next-generation protocol)", p)
		}
		for _, name := range assignors {
			a, err := assignor.Lookup(name)
			if err != nil {
				return nil, nil, err
			}
			if group == fsm.Classic && !assignor.Supports(a, proto) {
				skipped = append(skipped, fmt.Sprintf("%s/%s (%s supports only %v)", p, name, name, a.Protocols()))
				continue
			}
			for _, m := range memberships {
				vs = append(vs, Variant{Protocol: proto, Assignor: name, Membership: m, Classic: classic, GroupProtocol: group})
			}
		}
	}
	if len(vs) == 0 {
		return nil, skipped, fmt.Errorf("regroup: no combination of protocols %v and assignors %v can run; known assignors: %v", protocols, assignors, assignor.Names())
	}
	return vs, skipped, nil
}
