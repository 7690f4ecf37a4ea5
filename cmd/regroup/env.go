package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envName is the environment variable twin of a flag: --max-group-size is
// REGROUP_MAX_GROUP_SIZE.
func envName(flag string) string {
	return "REGROUP_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv documents every flag's environment twin in its usage, and, before
// the command runs, sets each flag that was not given on the command line
// from its twin.
func bindEnv(cmd *cobra.Command) {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			f.Usage += fmt.Sprintf(" [$%s]", envName(f.Name))
		}
	})
	prev := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		var err error
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			v, ok := os.LookupEnv(envName(f.Name))
			if !ok || f.Changed || err != nil {
				return
			}
			if serr := cmd.Flags().Set(f.Name, v); serr != nil {
				err = fmt.Errorf("$%s=%q: %w", envName(f.Name), v, serr)
			}
		})
		if err != nil || prev == nil {
			return err
		}
		return prev(cmd, args)
	}
}
