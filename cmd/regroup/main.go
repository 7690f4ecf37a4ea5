// Command regroup is Regroup's one binary: the coordinator (serve) and the
// operator's tools (groups, topics).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process's exit status: 0,
// or 1 after a one-line error on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "regroup:", strings.Join(strings.Fields(err.Error()), " "))
		return 1
	}
	return 0
}

// newRoot returns the command tree.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "regroup",
		Short: "Regroup: a consumer-group rebalance coordinator",
		Long: `Regroup coordinates consumer groups: members join a group over gRPC, one of
them computes who owns which partition, and the coordinator hands every member
its part, safely (no partition ever has two owners).`,
		Example: `  regroup serve
  regroup groups list
  regroup groups describe orders-consumers`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), versionCmd(), groupsCmd(), topicsCmd(), clusterCmd(), simCmd())
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes every command that only groups others
// (regroup groups, regroup topics...) fail on a word that is none of its
// subcommands, with a did-you-mean, instead of printing its help and
// exiting 0; alone, it still prints its help. Cobra does this for the root
// command only.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if cmd.HasParent() && cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil {
		cmd.Args = cobra.ArbitraryArgs
		cmd.SuggestionsMinimumDistance = 2 // cobra sets it on the root only
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean %q?", s[0])
			}
			return fmt.Errorf("%s (run %s --help for the commands)", msg, cmd.CommandPath())
		}
	}
}
