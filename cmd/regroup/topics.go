package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func topicsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "Manage the coordinator's topic registry",
		Long: `Manage the coordinator's topic registry: the topics and their partition
counts that assignors divide among members. Changing a topic rebalances every
group subscribed to it.

Every subcommand takes --endpoint, -o/--output (table or json) and --timeout,
as the groups commands do.`,
		Example: `  regroup topics put orders --partitions 64
  regroup topics list`,
	}
	c := addClientFlags(cmd)
	cmd.AddCommand(topicsPutCmd(c), topicsListCmd(c), topicsDeleteCmd(c))
	return cmd
}

func topicsPutCmd(c *client) *cobra.Command {
	var partitions int32
	cmd := &cobra.Command{
		Use:   "put NAME --partitions N",
		Short: "Create a topic or change its partition count",
		Long: `Create a topic or change its partition count. A change rebalances every group
subscribed to the topic; the command lists them.`,
		Example: `  regroup topics put orders --partitions 64`,
		Args:    oneArg("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := call(cmd, c, func(ctx context.Context, a regroupv1.AdminClient) (*regroupv1.PutTopicResponse, error) {
				return a.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: args[0], Partitions: partitions}})
			})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			out := cmd.OutOrStdout()
			switch prev := resp.GetPreviousPartitions(); prev {
			case 0:
				fmt.Fprintf(out, "created topic %q with %d partitions\n", args[0], partitions)
			case partitions:
				fmt.Fprintf(out, "topic %q already has %d partitions\n", args[0], partitions)
			default:
				fmt.Fprintf(out, "topic %q now has %d partitions (was %d)\n", args[0], partitions, prev)
			}
			printRebalanced(cmd, resp.GetRebalancedGroups())
			return nil
		},
	}
	cmd.Flags().Int32Var(&partitions, "partitions", 0, "the topic's partition count, at least 1")
	_ = cmd.MarkFlagRequired("partitions")
	return cmd
}

func topicsListCmd(c *client) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the topics and their partition counts",
		Example: `  regroup topics list -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := call(cmd, c, func(ctx context.Context, a regroupv1.AdminClient) (*regroupv1.ListTopicsResponse, error) {
				return a.ListTopics(ctx, &regroupv1.ListTopicsRequest{})
			})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			if len(resp.GetTopics()) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no topics")
				return nil
			}
			t := newTable(cmd.OutOrStdout())
			t.row("TOPIC", "PARTITIONS")
			for _, tp := range resp.GetTopics() {
				t.row(c.cells().clip(tp.GetName(), 66), strconv.Itoa(int(tp.GetPartitions())))
			}
			return t.Flush()
		},
	}
}

func topicsDeleteCmd(c *client) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic",
		Long: `Delete a topic. The groups subscribed to it rebalance and no longer get its
partitions; the command lists them.`,
		Example: `  regroup topics delete orders-old`,
		Args:    oneArg("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := call(cmd, c, func(ctx context.Context, a regroupv1.AdminClient) (*regroupv1.DeleteTopicResponse, error) {
				return a.DeleteTopic(ctx, &regroupv1.DeleteTopicRequest{Name: args[0]})
			})
			if err != nil {
				return err
			}
			if c.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %q\n", args[0])
			printRebalanced(cmd, resp.GetRebalancedGroups())
			return nil
		},
	}
}

// printRebalanced lists the groups a topic change rebalances.
func printRebalanced(cmd *cobra.Command, groups []string) {
	if len(groups) > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "rebalancing groups: %s\n", strings.Join(groups, ", "))
	}
}
