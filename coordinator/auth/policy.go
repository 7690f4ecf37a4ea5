package auth

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Right is what a policy grants an identity.
type Right string

// The rights a policy grants.
const (
	// Consume: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, Reconcile and
	// FindCoordinator on the matching groups.
	Consume Right = "consume"
	// Describe: DescribeGroup and WatchGroup on the matching groups;
	// ListGroups shows only those. Any describe line also allows
	// ListTopics, DescribeCluster and server reflection.
	Describe Right = "describe"
	// Admin: RemoveMembers and DeleteGroup on the matching groups, PutTopic
	// and DeleteTopic on the matching topics.
	Admin Right = "admin"
	// Coordinator: the identity is another coordinator, trusted to forward
	// Admin calls on behalf of the identities it authenticated. It takes
	// no resources.
	Coordinator Right = "coordinator"
)

// Policy is a parsed policy file: which identities may do what on which
// groups and topics. A call is allowed when some line allows it; nothing
// else is. Its methods are safe for concurrent use.
//
// The file has one grant per line:
//
//	<identity pattern>  <right>[,<right>...]  [group:<pattern>] [topic:<pattern>] ...
//
// for example
//
//	# members of the billing groups, authenticated as billing-<something>
//	billing-*       consume,describe  group:billing-*
//	# operators
//	ops             describe,admin    group:* topic:*
//	# the coordinators themselves (their certificates' names)
//	coordinator-*   coordinator
//
// Patterns match whole names; * matches any run of characters, nothing
// else is special. Rights are consume, describe, admin and coordinator;
// consume and describe need a group: resource on their line, admin a
// group: or topic: one, and coordinator none. Blank lines and lines
// starting with # are ignored.
type Policy struct {
	grants []grant
}

type grant struct {
	identity string
	rights   map[Right]bool
	groups   []string
	topics   []string
}

// LoadPolicy reads and parses a policy file.
func LoadPolicy(file string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("regroup: policy file: %w", err)
	}
	return ParsePolicy(file, data)
}

// ParsePolicy parses a policy file's content (see Policy). Errors name file
// and line, and say what was expected.
func ParsePolicy(file string, data []byte) (*Policy, error) {
	p := &Policy{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		g, err := parseGrant(line)
		if err != nil {
			return nil, fmt.Errorf("regroup: policy file %s:%d: %w", file, n, err)
		}
		p.grants = append(p.grants, g)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("regroup: policy file %s: %w", file, err)
	}
	return p, nil
}

func parseGrant(line string) (grant, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return grant{}, fmt.Errorf("want \"<identity pattern> <rights> [group:<pattern>] [topic:<pattern>]...\", e.g. \"billing-* consume group:billing-*\"")
	}
	g := grant{identity: f[0], rights: map[Right]bool{}}
	for _, r := range strings.Split(f[1], ",") {
		switch Right(r) {
		case Consume, Describe, Admin, Coordinator:
			g.rights[Right(r)] = true
		default:
			return grant{}, fmt.Errorf("unknown right %q: want consume, describe, admin or coordinator, separated by commas without spaces", r)
		}
	}
	for _, res := range f[2:] {
		kind, pattern, ok := strings.Cut(res, ":")
		if !ok || pattern == "" || (kind != "group" && kind != "topic") {
			return grant{}, fmt.Errorf("resource %q: want group:<pattern> or topic:<pattern>", res)
		}
		if kind == "group" {
			g.groups = append(g.groups, pattern)
		} else {
			g.topics = append(g.topics, pattern)
		}
	}
	switch {
	case g.rights[Coordinator] && len(f) > 2:
		return grant{}, fmt.Errorf("coordinator takes no resources; put it on a line of its own, e.g. %q", g.identity+" coordinator")
	case (g.rights[Consume] || g.rights[Describe]) && len(g.groups) == 0:
		return grant{}, fmt.Errorf("consume and describe need a group:<pattern> resource on the same line")
	case g.rights[Admin] && len(g.groups)+len(g.topics) == 0:
		return grant{}, fmt.Errorf("admin needs a group:<pattern> or topic:<pattern> resource on the same line")
	}
	return g, nil
}

// AllowsGroup reports whether identity has right r on group.
func (p *Policy) AllowsGroup(identity string, r Right, group string) bool {
	for _, g := range p.grants {
		if g.rights[r] && Match(g.identity, identity) && matchAny(g.groups, group) {
			return true
		}
	}
	return false
}

// AllowsTopic reports whether identity has right r on topic.
func (p *Policy) AllowsTopic(identity string, r Right, topic string) bool {
	for _, g := range p.grants {
		if g.rights[r] && Match(g.identity, identity) && matchAny(g.topics, topic) {
			return true
		}
	}
	return false
}

// Grants reports whether identity has right r on anything.
func (p *Policy) Grants(identity string, r Right) bool {
	for _, g := range p.grants {
		if g.rights[r] && Match(g.identity, identity) {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if Match(p, name) {
			return true
		}
	}
	return false
}

// Match reports whether name matches pattern as a whole, * matching any run
// of characters (the empty one included) and every other character itself.
func Match(pattern, name string) bool {
	// Greedy matching with backtracking to the last *: linear in practice,
	// O(len(pattern)*len(name)) at worst.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
