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
	documentEnv(cmd.Flags())
	prev := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if err := setFromEnv(cmd.Flags(), cmd.Flags()); err != nil || prev == nil {
			return err
		}
		return prev(cmd, args)
	}
}

// bindPersistentEnv is bindEnv for cmd's persistent flags: they get their
// twins whichever subcommand of cmd runs.
func bindPersistentEnv(cmd *cobra.Command) {
	documentEnv(cmd.PersistentFlags())
	prev := cmd.PersistentPreRunE
	cmd.PersistentPreRunE = func(run *cobra.Command, args []string) error {
		if err := setFromEnv(run.Flags(), cmd.PersistentFlags()); err != nil || prev == nil {
			return err
		}
		return prev(run, args)
	}
}

// documentEnv appends each flag's environment twin to its usage.
func documentEnv(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			f.Usage += fmt.Sprintf(" [$%s]", envName(f.Name))
		}
	})
}

// setFromEnv sets, through parsed (the flag set the command line was
// parsed into), each flag of twins that was not given on the command line
// and whose environment twin is set.
func setFromEnv(parsed, twins *pflag.FlagSet) error {
	var err error
	twins.VisitAll(func(f *pflag.Flag) {
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok || f.Changed || err != nil {
			return
		}
		if serr := parsed.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("$%s=%q: %w", envName(f.Name), v, serr)
		}
	})
	return err
}
