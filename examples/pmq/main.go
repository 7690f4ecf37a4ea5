// Command pmq is a PMQ-style partitioned queue on MariaDB, consumed through
// Regroup's member library: a table per partition, offsets committed with
// the results in one transaction that a fencing token guards.
//
//	pmq mariadb --dir /tmp/pmq-db --port 3307       # a private MariaDB (or use yours)
//	pmq setup   --dsn 'root@tcp(127.0.0.1:3307)/pmq' --topic orders --partitions 8
//	pmq produce --dsn ... --topic orders --rate 500
//	pmq consume --dsn ... --topic orders --group billing --name c1
//	pmq audit   --dsn ... --topic orders --group billing
//	pmq bench   --dsn ... --endpoints 127.0.0.1:7070
//
// run.sh starts all of it (MariaDB, regroup serve, producers, consumers).
package main

import (
	"fmt"
	"os"
	"sort"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{
	"mariadb": {"run a private MariaDB server on 127.0.0.1 until interrupted", runMariaDB},
	"setup":   {"create the queue's tables (and the topic in Regroup)", runSetup},
	"produce": {"insert messages into a topic's partitions at a given rate", runProduce},
	"consume": {"consume a topic as a member of a Regroup group", runConsume},
	"audit":   {"check a group's consumption from the database alone", runAudit},
	"bench":   {"measure throughput and rebalance pauses (in-process consumers)", runBench},
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "pmq: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := c.run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "pmq %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pmq COMMAND [flags]   (pmq COMMAND --help for its flags)")
	fmt.Fprintln(os.Stderr, "\ncommands:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", n, commands[n].summary)
	}
}
