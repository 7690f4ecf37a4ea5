package node

import "fmt"

// CheckAdmitted checks the node's count of members against its groups
// (group.Group.Admitted): the scenario harness runs it after every step.
func CheckAdmitted(n *Node) error {
	sum := 0
	for id, e := range n.groups {
		if e.g != nil && e.admitted != e.g.Admitted() {
			return fmt.Errorf("group %s counts %d members, the node %d", id, e.g.Admitted(), e.admitted)
		}
		sum += e.admitted
	}
	if sum != n.admitted {
		return fmt.Errorf("the node counts %d members, its groups %d", n.admitted, sum)
	}
	return nil
}

// MiscountAdmitted adds d to the node's count of members, for the test
// that shows CheckAdmitted fails.
func MiscountAdmitted(n *Node, d int) { n.admitted += d }
