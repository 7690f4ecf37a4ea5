package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regroup-dev/regroup/coordinator/group"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Column widths of the tables, chosen so that a row fits 80 columns.
const (
	groupWidth    = 20
	protocolWidth = 18
	memberWidth   = 16
	instanceWidth = 14
	hostWidth     = 15
	partsWidth    = 17
	causeWidth    = 40
	headerWidth   = 66
	// shownRebalances is how many of the latest rebalances describe shows
	// in a table; -o json shows every one the coordinator keeps.
	shownRebalances = 10
)

func groupsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "groups",
		Short: "Inspect and steer the groups of a coordinator",
		Long: `Inspect and steer the groups of a running coordinator through its Admin API.

Every subcommand takes --endpoint (the coordinator's gRPC address), -o/--output
(table or json) and --timeout. In json, the output is the RPC's response
message in protobuf's JSON mapping, with the field names of
proto/regroup/v1/admin.proto.`,
		Example: `  regroup groups list
  regroup groups describe orders-consumers
  REGROUP_ENDPOINT=coordinator-1:7070 regroup groups list -o json`,
	}
	c := addClientFlags(cmd)
	cmd.AddCommand(groupsListCmd(c), groupsDescribeCmd(c), groupsRemoveMembersCmd(c), groupsDeleteCmd(c), groupsWatchCmd(c))
	return cmd
}

func groupsListCmd(c *client) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the groups: state, generation, members, protocol",
		Example: `  regroup groups list
  regroup groups list -o json | jq -r '.groups[].group_id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := call(cmd, c, func(ctx context.Context, a regroupv1.AdminClient) (*regroupv1.ListGroupsResponse, error) {
				return a.ListGroups(ctx, &regroupv1.ListGroupsRequest{})
			})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			if len(resp.GetGroups()) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no groups")
				return nil
			}
			t, f := newTable(cmd.OutOrStdout()), c.cells()
			t.row("GROUP", "STATE", "GEN", "MEMBERS", "PROTOCOL")
			for _, g := range resp.GetGroups() {
				protocol := g.GetProtocolName()
				if g.GetGroupProtocol() == "next" {
					protocol = "next/" + protocol // its server-side assignor
				}
				t.row(f.shorten(g.GetGroupId(), groupWidth), stateName(g.GetState()), strconv.Itoa(int(g.GetGeneration())),
					strconv.Itoa(int(g.GetMembers())), f.clip(protocol, protocolWidth))
			}
			return t.Flush()
		},
	}
}

func groupsDescribeCmd(c *client) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group: state, leader, members, assignments, recent rebalances",
		Long: `Show a group: its state, generation, protocol and leader; its members with
their instance id, host, the time left until their session deadline and the
partitions they own; and its latest rebalances with their cause, duration and
the partitions they moved and revoked. docs/operations.md explains every
field.`,
		Example: `  regroup groups describe orders-consumers
  regroup groups describe orders-consumers -o json | jq '.members[].assignment'`,
		Args: oneArg("GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := call(cmd, c, func(ctx context.Context, a regroupv1.AdminClient) (*regroupv1.DescribeGroupResponse, error) {
				return a.DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: args[0]})
			})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			return printDescription(cmd, resp, time.Now(), c.cells())
		},
	}
}

// printDescription writes a group's description as tables; session
// deadlines are shown relative to now.
func printDescription(cmd *cobra.Command, d *regroupv1.DescribeGroupResponse, now time.Time, f cells) error {
	out := cmd.OutOrStdout()
	t := newTable(out)
	t.row("Group:", f.clip(d.GetGroupId(), headerWidth))
	t.row("State:", stateName(d.GetState()))
	next := d.GetGroupProtocol() == "next"
	if next {
		// The next-generation protocol: a server-side assignor, epochs, no leader.
		t.row("Group protocol:", "next (Reconcile)")
		t.row("Epochs:", fmt.Sprintf("group %d, target assignment %d", d.GetGeneration(), d.GetAssignmentEpoch()))
		t.row("Assignor:", orNone(f.clip(d.GetProtocolName(), headerWidth)))
	} else {
		t.row("Generation:", strconv.Itoa(int(d.GetGeneration())))
		t.row("Protocol:", orNone(f.clip(d.GetProtocolName(), headerWidth)))
		t.row("Leader:", orNone(f.shorten(d.GetLeaderId(), headerWidth)))
	}
	// Unknown topics first: a clipped line must not hide them.
	var topics []string
	for _, u := range d.GetUnknownTopics() {
		topics = append(topics, u+": not in the registry")
	}
	for _, tp := range d.GetTopics() {
		topics = append(topics, fmt.Sprintf("%s (%d)", tp.GetName(), tp.GetPartitions()))
	}
	t.row("Topics:", orNone(f.clip(strings.Join(topics, ", "), headerWidth)))
	members := strconv.Itoa(len(d.GetMembers()))
	if n := len(d.GetPendingMemberIds()); n > 0 {
		members += fmt.Sprintf(" (and %d new member ids not joined yet)", n)
	}
	t.row("Members:", members)
	if waiting := waitingMembers(d, now); waiting != "" {
		t.row("Waiting:", waiting)
	}
	if err := t.Flush(); err != nil {
		return err
	}

	if len(d.GetMembers()) > 0 {
		fmt.Fprintln(out)
		t = newTable(out)
		if next {
			// No host column: the target takes its place (-o json has it).
			t.row("MEMBER", "INSTANCE", "SESSION", "EPOCH", "PARTITIONS", "TARGET")
		} else {
			t.row("MEMBER", "INSTANCE", "HOST", "SESSION", "PARTITIONS")
		}
		for _, m := range d.GetMembers() {
			session := "-"
			if m.GetSessionDeadline() != nil {
				session = timeLeft(m.GetSessionDeadline().AsTime().Sub(now))
			}
			parts := f.partitions(m.GetAssignment().GetPartitions())
			member, instance := f.member(m.GetMemberId(), memberWidth), orDash(f.shorten(m.GetGroupInstanceId(), instanceWidth))
			if !next {
				t.row(member, instance, orDash(f.shorten(m.GetClientHost(), hostWidth)), session, parts)
				continue
			}
			// What it was given so far, what it still gives up, and its part
			// of the target ("same" once it has converged).
			if n, _ := summarize(&regroupv1.Assignment{Partitions: m.GetRevoking()}); n > 0 {
				parts += fmt.Sprintf(" (revoking %d)", n)
			}
			target := f.partitions(m.GetTarget())
			if target == f.partitions(m.GetAssignment().GetPartitions()) && len(m.GetRevoking()) == 0 {
				target = "same"
			}
			t.row(member, instance, session, strconv.Itoa(int(m.GetMemberEpoch())), parts, target)
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}

	if rs := d.GetRebalances(); len(rs) > 0 {
		fmt.Fprintln(out)
		if len(rs) > shownRebalances {
			fmt.Fprintf(out, "Last %d of %d rebalances (-o json shows all):\n", shownRebalances, len(rs))
			rs = rs[len(rs)-shownRebalances:]
		}
		t = newTable(out)
		t.row("GEN", "DURATION", "MOVED", "REVOKED", "LOST", "CAUSE")
		for _, r := range rs {
			gen, duration := strconv.Itoa(int(r.GetGeneration())), "running"
			switch {
			case r.GetNoRebalance():
				duration = "none"
			case r.GetEnd() != nil && r.GetStart() != nil:
				duration = humanDuration(r.GetEnd().AsTime().Sub(r.GetStart().AsTime()))
			case r.GetAssignmentAccepted() != nil:
				duration = "waiting" // for a lease: see the Waiting line
			default:
				gen = "-"
			}
			t.row(gen, duration, strconv.Itoa(int(r.GetPartitionsMoved())), strconv.Itoa(int(r.GetPartitionsRevoked())),
				strconv.Itoa(int(r.GetPartitionsLost())), f.clip(f.abbreviate(group.Sanitize(r.GetCause())), causeWidth))
		}
		return t.Flush()
	}
	return nil
}

// waitingMembers says which members' assignments wait for the lease of a
// member removed without releasing their partitions, and until when: "2
// members, until a removed member's lease ends in 8.2s"; "" if none.
func waitingMembers(d *regroupv1.DescribeGroupResponse, now time.Time) string {
	n := 0
	var until time.Time
	for _, m := range d.GetMembers() {
		if w := m.GetAssignmentWaitsUntil(); w != nil {
			n++
			if w.AsTime().After(until) {
				until = w.AsTime()
			}
		}
	}
	if n == 0 {
		return ""
	}
	who := "1 member"
	if n > 1 {
		who = fmt.Sprintf("%d members", n)
	}
	if left := until.Sub(now); left > 0 {
		return fmt.Sprintf("%s, until a removed member's lease ends in %s", who, humanDuration(left))
	}
	return who + ", for a removed member's lease, which has ended"
}

// timeLeft says when a session deadline d from now comes: "in 4.2s".
func timeLeft(d time.Duration) string {
	if d <= 0 {
		return "expired"
	}
	return "in " + humanDuration(d)
}

// summarize returns the number of partitions of an assignment and a compact
// list of them: "orders:0-7,12 payments:3".
// partitions is a member's partitions as the members table shows them:
// their count and, clipped, their ranges.
func (f cells) partitions(tps []*regroupv1.TopicPartitions) string {
	n, summary := summarize(&regroupv1.Assignment{Partitions: tps})
	if n == 0 {
		return "0"
	}
	return f.clip(strconv.Itoa(n)+" "+summary, partsWidth)
}

func summarize(a *regroupv1.Assignment) (int, string) {
	n := 0
	var topics []string
	for _, tp := range a.GetPartitions() {
		ps := tp.GetPartitions()
		n += len(ps)
		var ranges []string
		for i := 0; i < len(ps); {
			j := i
			for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
				j++
			}
			if j == i {
				ranges = append(ranges, strconv.Itoa(int(ps[i])))
			} else {
				ranges = append(ranges, fmt.Sprintf("%d-%d", ps[i], ps[j]))
			}
			i = j + 1
		}
		topics = append(topics, tp.GetTopic()+":"+strings.Join(ranges, ","))
	}
	return n, strings.Join(topics, " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func groupsRemoveMembersCmd(c *client) *cobra.Command {
	var instances []string
	var reason string
	cmd := &cobra.Command{
		Use:   "remove-members GROUP --instance ID...",
		Short: "Remove static members by instance id",
		Long: `Remove static members by instance id, for instance a member whose process is
gone for good. The group rebalances once. The partitions a removed member
owned go to others only once its session could have ended (its lease), in
case the process still runs. Prints one result per instance id; the exit
status is 1 if any removal failed.`,
		Example: `  regroup groups remove-members orders-consumers --instance orders-3
  regroup groups remove-members orders-consumers --instance orders-3 --instance orders-4 --reason "host retired"`,
		Args: oneArg("GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := call(cmd, c, func(ctx context.Context, a regroupv1.AdminClient) (*regroupv1.RemoveMembersResponse, error) {
				return a.RemoveMembers(ctx, &regroupv1.RemoveMembersRequest{GroupId: args[0], GroupInstanceIds: instances, Reason: reason})
			})
			if err != nil {
				return err
			}
			failed := 0
			for _, m := range resp.GetMembers() {
				if m.GetErrorReason() != "" {
					failed++
				}
			}
			if c.output == "json" {
				err = printJSON(cmd.OutOrStdout(), resp)
			} else {
				t := newTable(cmd.OutOrStdout())
				t.row("INSTANCE", "RESULT")
				for _, m := range resp.GetMembers() {
					result := "removed"
					if m.GetErrorReason() != "" {
						result = m.GetErrorReason() + ": " + m.GetErrorMessage()
					}
					t.row(m.GetGroupInstanceId(), result)
				}
				err = t.Flush()
			}
			if err == nil && failed > 0 {
				err = fmt.Errorf("%d of %d members could not be removed from group %q", failed, len(resp.GetMembers()), args[0])
			}
			return err
		},
	}
	cmd.Flags().StringArrayVar(&instances, "instance", nil, "instance id of a static member to remove; repeat for several")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the group's rebalance history (it says \"removed by an administrator\" in any case)")
	_ = cmd.MarkFlagRequired("instance")
	return cmd
}

func groupsDeleteCmd(c *client) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP",
		Short: "Delete an Empty group and its stored record",
		Long: `Delete a group that has no members (state Empty) and its stored record. A
group with members is refused with GROUP_NOT_EMPTY: stop its members, or
remove them, first. Empty groups are also deleted on their own after
--empty-group-retention.`,
		Example: `  regroup groups delete old-consumers`,
		Args:    oneArg("GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := call(cmd, c, func(ctx context.Context, a regroupv1.AdminClient) (*regroupv1.DeleteGroupResponse, error) {
				return a.DeleteGroup(ctx, &regroupv1.DeleteGroupRequest{GroupId: args[0]})
			})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted group %q\n", args[0])
			return nil
		},
	}
}
