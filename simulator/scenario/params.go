package scenario

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Params are the parameters Set changes, for sweeps.
var Params = []string{"session", "heartbeat", "members", "partitions", "pause", "failover-gap", "write-latency", "assign-time"}

// Set changes one parameter of the whole scenario, as a sweep does; value
// is a duration, or a whole number for members and partitions:
//
//   - session: every member's session timeout; the heartbeat interval,
//     safety margin and retry backoff return to the defaults that follow
//     from it (min(3s, session/3), session/10, 100ms..min(5s, session/3)).
//   - heartbeat: every member's heartbeat interval (at most a third of its
//     session timeout).
//   - members: the members that join at 0s become m1 to mN, with the first
//     one's group and configuration (an error if another action names a
//     member that no longer joins).
//   - partitions: every topic's partitions at 0s.
//   - pause: the length of every pause.
//   - failover-gap: the gap of every failover (and the coordinator's
//     default).
//   - write-latency: how long every store write takes.
//   - assign-time: how long every member's assignor takes to compute a
//     plan when it leads.
//
// It returns an error for an unknown parameter, a bad value, a scenario
// without what the parameter changes, or a member configuration the member
// state machine refuses.
func (s *Scenario) Set(param, value string) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("regroup: %s=%s: %s", param, value, fmt.Sprintf(format, args...))
	}
	var d time.Duration
	var n int
	switch param {
	case "members", "partitions":
		v, err := strconv.Atoi(value)
		if err != nil || v < 1 {
			return fail("want a whole number of at least 1")
		}
		n = v
	case "session", "heartbeat", "pause", "failover-gap", "write-latency", "assign-time":
		v, err := parseDuration(value)
		if err != nil {
			return fail("%v", err)
		}
		d = v
	default:
		return fmt.Errorf("regroup: unknown parameter %q; parameters: %s", param, strings.Join(Params, ", "))
	}
	switch param {
	case "session", "heartbeat":
		return s.eachMember(func(c *MemberConfig, group string) error {
			if param == "session" {
				c.SessionTimeout = d
				c.HeartbeatInterval, c.Margin, c.MinBackoff, c.MaxBackoff = 0, 0, 0, 0
			} else {
				c.HeartbeatInterval = d
			}
			if err := complete(c, group); err != nil {
				return fail("%v", err)
			}
			return nil
		})
	case "members":
		return s.setMembers(n, fail)
	case "partitions":
		for i := range s.Topics {
			s.Topics[i].Partitions = int32(n)
		}
	case "pause":
		found := false
		for i, a := range s.Actions {
			if p, ok := a.Do.(Pause); ok {
				p.For, found = d, true
				s.Actions[i].Do = p
			}
		}
		if !found {
			return fail("the scenario has no pause")
		}
	case "failover-gap":
		s.Coordinator.FailoverGap = d
		for i, a := range s.Actions {
			if f, ok := a.Do.(Failover); ok {
				f.Gap = d
				s.Actions[i].Do = f
			}
		}
	case "write-latency":
		s.Coordinator.WriteLatency = Dist{Min: d, Max: d}
	case "assign-time":
		return s.eachMember(func(c *MemberConfig, _ string) error {
			c.AssignTime = Dist{Min: d, Max: d}
			return nil
		})
	}
	return nil
}

// eachMember calls f with every member configuration: each group's and
// each join's.
func (s *Scenario) eachMember(f func(c *MemberConfig, group string) error) error {
	for i := range s.Groups {
		if err := f(&s.Groups[i].Member, s.Groups[i].Name); err != nil {
			return err
		}
	}
	for i, a := range s.Actions {
		if j, ok := a.Do.(Join); ok {
			if err := f(&j.Config, j.Group); err != nil {
				return err
			}
			s.Actions[i].Do = j
		}
	}
	return nil
}

// setMembers replaces the joins at 0s with n joins, m1 to mn, like the
// first of them.
func (s *Scenario) setMembers(n int, fail func(string, ...any) error) error {
	first := slices.IndexFunc(s.Actions, func(a Action) bool {
		_, ok := a.Do.(Join)
		return ok && a.At == 0
	})
	if first < 0 {
		return fail("the scenario has no join at 0s")
	}
	proto := s.Actions[first]
	j := proto.Do.(Join)
	var joins []Action
	for k := 1; k <= n; k++ {
		j.Member = fmt.Sprintf("m%d", k)
		joins = append(joins, Action{Line: proto.Line, At: 0, Do: j})
	}
	rest := slices.DeleteFunc(slices.Clone(s.Actions), func(a Action) bool {
		_, ok := a.Do.(Join)
		return ok && a.At == 0
	})
	joined := map[string]bool{}
	for _, a := range append(joins, rest...) {
		if j, ok := a.Do.(Join); ok {
			joined[j.Member] = true
		}
	}
	for _, a := range rest {
		if m := a.Member(); m != "" && !joined[m] {
			return fail("line %d names %s, which no longer joins: give more members", a.Line, m)
		}
	}
	s.Actions = append(joins, rest...)
	return nil
}
