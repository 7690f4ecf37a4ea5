package main

import (
	"fmt"

	"github.com/regroup-dev/regroup/examples/pmq/internal/mariadb"
)

func runMariaDB(args []string) error {
	fs := newFlags("mariadb", "Run a private MariaDB server on 127.0.0.1 (its own data directory, socket\n"+
		"and port; never the system service) until SIGINT or SIGTERM, then stop it.\n"+
		"The data directory is created on first use and kept.")
	dir := fs.String("dir", "pmq-db", "directory for the data, socket, pid file and error log")
	port := fs.Int("port", 3307, "TCP port on 127.0.0.1 (0 picks a free one)")
	database := fs.String("database", "pmq", "database to create")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := signalContext() // before Start: a signal during it stops the server after
	defer stop()
	s, err := mariadb.Start(*dir, *port, *database)
	if err != nil {
		return err
	}
	fmt.Printf("MariaDB ready: --dsn '%s' (data in %s)\n", s.DSN(*database), s.Dir)
	exited := make(chan error, 1)
	go func() { exited <- s.Wait() }()
	select {
	case <-ctx.Done():
		s.Stop()
		return nil
	case err := <-exited:
		return fmt.Errorf("mariadbd exited on its own (%v); see %s/error.log", err, s.Dir)
	}
}
