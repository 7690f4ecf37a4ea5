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
	root.AddCommand(serveCmd(), versionCmd(), groupsCmd(), topicsCmd(), simCmd())
	return root
}
