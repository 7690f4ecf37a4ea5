package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/regroup-dev/regroup/examples/pmq/internal/queue"
)

// defaultDSN is the database run.sh starts.
const defaultDSN = "root@tcp(127.0.0.1:3307)/pmq"

// newFlags returns a flag set for command that prints summary before the
// flags on --help.
func newFlags(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("pmq "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: pmq %s [flags]\n\n%s\n\nflags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// dsnFlag defines --dsn, the database every command uses.
func dsnFlag(fs *flag.FlagSet) *string {
	return fs.String("dsn", defaultDSN, "database, as user@tcp(host:port)/database")
}

// endpointsFlag defines --endpoints, the coordinators, with a default and a
// note added to its help.
func endpointsFlag(fs *flag.FlagSet, def, note string) *string {
	return fs.String("endpoints", def, "Regroup coordinator addresses, comma-separated"+note)
}

// parse parses args, turning --help into a clean exit.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == flag.ErrHelp {
		os.Exit(0)
	}
	if err == nil && fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags only; see --help)", fs.Args())
	}
	return err
}

// openDB opens dsn and checks that the server answers.
func openDB(ctx context.Context, dsn string) (*sql.DB, error) {
	db, err := queue.Open(dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot reach the database at --dsn %q: %v (is MariaDB running? `pmq mariadb` or run.sh start starts one)", dsn, err)
	}
	return db, nil
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// parsePartitions reads "" (all of n), "3", "0-3" or "0,2,5-7".
func parsePartitions(s string, n int32) ([]int32, error) {
	var ps []int32
	if s == "" {
		for p := int32(0); p < n; p++ {
			ps = append(ps, p)
		}
		return ps, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("--partitions %q: %q is not a number", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("--partitions %q: %q is not a number", s, hi)
			}
		}
		for p := a; p <= b; p++ {
			if p < 0 || int32(p) >= n {
				return nil, fmt.Errorf("--partitions %q: partition %d does not exist (the topic has %d)", s, p, n)
			}
			ps = append(ps, int32(p))
		}
	}
	return ps, nil
}
