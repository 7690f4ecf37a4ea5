package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func clusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the coordinators",
		Long: `Inspect the coordinators that share a store: which one leads, which take
part in the election, and how long the leader's lease has left.

Every subcommand takes --endpoint, -o/--output (table or json) and --timeout,
as the groups commands do.`,
		Example: `  regroup cluster describe
  regroup cluster describe --endpoint 10.0.0.2:7070 -o json`,
	}
	c := addClientFlags(cmd)
	cmd.AddCommand(clusterDescribeCmd(c))
	return cmd
}

func clusterDescribeCmd(c *client) *cobra.Command {
	return &cobra.Command{
		Use:   "describe",
		Short: "Show the coordinator called: its role, the leader, every coordinator, the leader's lease or the shards",
		Long: `Show the coordinator at --endpoint as it sees itself and the election: its
role (leader or follower), the leader's address, every coordinator taking
part in the election (the leader first) and, when it leads, its election
key and revision (which fence its writes) and its lease: id, TTL and how
long it certainly still holds it. The call is answered by the coordinator
called, never forwarded: ask each coordinator to compare their views.

In a cluster of several shards (every cluster made by this version) it shows
every live coordinator with the number of shards each leads, and every shard
with its leader, its groups and their members: the coordinator called asks
every other shard leader for them. Should one not answer (a shard without a
leader, a handover under way), it shows "-" for the shards it does not lead
itself.`,
		Example: `  regroup cluster describe
  regroup cluster describe -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := call(cmd, c, func(ctx context.Context, a regroupv1.AdminClient) (*regroupv1.DescribeClusterResponse, error) {
				return a.DescribeCluster(ctx, &regroupv1.DescribeClusterRequest{})
			})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(cmd.OutOrStdout(), d)
			}
			t := newTable(cmd.OutOrStdout())
			role := "follower"
			if d.GetRole() == regroupv1.CoordinatorRole_COORDINATOR_ROLE_LEADER {
				role = "leader"
			}
			t.row("Coordinator:", orDash(d.GetAddress()))
			t.row("Role:", role)
			if len(d.GetShards()) == 0 {
				t.row("Leader:", orNone(d.GetLeaderAddress()))
			}
			t.row("Coordinators:", orNone(strings.Join(d.GetCoordinators(), ", ")))
			if len(d.GetShards()) > 0 {
				return describeShards(cmd.OutOrStdout(), t, d)
			}
			if role == "leader" {
				t.row("Leading since:", d.GetLeadingSince().AsTime().Local().Format(time.DateTime))
				if d.GetElectionKey() != "" {
					t.row("Election key:", fmt.Sprintf("%s (revision %d)", d.GetElectionKey(), d.GetElectionRevision()))
					t.row("Lease:", fmt.Sprintf("%x, TTL %v, %v left", d.GetLeaseId(),
						time.Duration(d.GetLeaseTtlMs())*time.Millisecond, humanDuration(time.Duration(d.GetLeaseRemainingMs())*time.Millisecond)))
				}
			}
			return t.Flush()
		},
	}
}

// describeShards writes the shards of a cluster of several shards: how
// many each coordinator leads, and each shard's leader and groups.
func describeShards(w io.Writer, t table, d *regroupv1.DescribeClusterResponse) error {
	led := map[string]int{}
	for _, sh := range d.GetShards() {
		led[sh.GetLeaderAddress()]++
	}
	t.row("Shards:", fmt.Sprintf("%d, %d led here", len(d.GetShards()), led[d.GetAddress()]))
	for _, c := range d.GetCoordinators() {
		t.row("", fmt.Sprintf("%s leads %d", c, led[c]))
	}
	if n := led[""]; n > 0 {
		t.row("", fmt.Sprintf("%d without a leader (an election or a handover under way)", n))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	st := newTable(w)
	st.row("SHARD", "LEADER", "GROUPS", "MEMBERS")
	for _, sh := range d.GetShards() {
		groups, members := "-", "-"
		if sh.GetCounted() {
			groups, members = fmt.Sprint(sh.GetGroups()), fmt.Sprint(sh.GetMembers())
		}
		st.row(fmt.Sprint(sh.GetShard()), orNone(sh.GetLeaderAddress()), groups, members)
	}
	return st.Flush()
}
