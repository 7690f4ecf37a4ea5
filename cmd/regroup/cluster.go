package main

import (
	"context"
	"fmt"
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
		Short: "Show the coordinator called: its role, the leader, every coordinator, the leader's lease",
		Long: `Show the coordinator at --endpoint as it sees itself and the election: its
role (leader or follower), the leader's address, every coordinator taking
part in the election (the leader first) and, when it leads, its election
key and revision (which fence its writes) and its lease: id, TTL and how
long it certainly still holds it. The call is answered by the coordinator
called, never forwarded: ask each coordinator to compare their views.`,
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
			t.row("Leader:", orNone(d.GetLeaderAddress()))
			t.row("Coordinators:", orNone(strings.Join(d.GetCoordinators(), ", ")))
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
