package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fdReserve is the part of the open-file limit kept for everything but
// client connections: listeners, the embedded etcd's files and
// connections, the metrics and profiling servers, logs.
const fdReserve = 256

// reportConnections raises the open-file limit to the hard limit (each
// client connection is a file) and logs how many connections the
// coordinator can hold: the limit less fdReserve, and --max-connections
// if lower. A limit below --max-connections is logged as a warning: past
// it, accepting a connection fails instead of waiting in the backlog.
func reportConnections(log hclog.Logger, maxConnections int) {
	soft, was, err := raiseOpenFileLimit()
	if err != nil {
		log.Warn("cannot read or raise the open-file limit; every client connection takes one", "error", err)
		return
	}
	capacity := 0
	if soft > fdReserve {
		capacity = int(min(soft-fdReserve, 1<<31-1))
	}
	fields := []any{"open_files", soft, "was", was, "connections", capacity, "max_connections", maxConnections}
	if maxConnections <= 0 || maxConnections > capacity {
		log.Warn("the open-file limit holds fewer connections than --max-connections allows; raise the hard limit (ulimit -Hn, LimitNOFILE in systemd) or lower --max-connections", fields...)
		return
	}
	log.Info("connections", fields...)
}

// pprofServer serves net/http/pprof on addr, which must be a loopback
// address unless remote is set: profiles show the coordinator's memory,
// and a CPU profile costs it time. It returns the address it listens on
// and a function that stops it.
func pprofServer(addr string, remote bool, log hclog.Logger) (net.Addr, func(), error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--pprof-addr %s: %w", addr, err)
	}
	if !remote && !isLoopback(lis.Addr()) {
		lis.Close()
		return nil, nil, fmt.Errorf("--pprof-addr %s is not a loopback address: profiles expose the coordinator's memory to whoever can reach it; listen on 127.0.0.1, or add --pprof-allow-remote", addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("profiling server stopped", "error", err)
		}
	}()
	log.Info("serving profiles", "address", "http://"+lis.Addr().String()+"/debug/pprof/")
	return lis.Addr(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
