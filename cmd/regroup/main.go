// Command regroup is Regroup's one binary: the coordinator (serve) and the
// operator's tools.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:   "regroup",
		Short: "Regroup: a consumer-group rebalance coordinator",
		Long: `Regroup coordinates consumer groups: members join a group over gRPC, one of
them computes who owns which partition, and the coordinator hands every member
its part, safely (no partition ever has two owners).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), versionCmd())
	root.AddCommand(simCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "regroup:", err)
		os.Exit(1)
	}
}
