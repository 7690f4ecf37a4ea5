package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/prommetrics"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// healthInterval is how often the health service re-reads whether the
// coordinator leads: a change shows within this long.
const healthInterval = 250 * time.Millisecond

// observability is what operators' tools see of `regroup serve` besides the
// Admin API: Prometheus metrics over HTTP, the standard gRPC health service,
// and server reflection.
type observability struct {
	registry *prometheus.Registry
	metrics  *prommetrics.Metrics // nil when metrics are disabled
	http     *http.Server         // nil when metrics are disabled
	health   *health.Server
	stopPoll chan struct{}
}

// startObservability creates the metrics and, unless addr is empty, serves
// them over HTTP on addr at /metrics.
func startObservability(addr string, log hclog.Logger) (*observability, error) {
	o := &observability{health: health.NewServer(), stopPoll: make(chan struct{})}
	if addr == "" {
		log.Info("metrics disabled (--metrics-addr is empty)")
		return o, nil
	}
	o.registry = prometheus.NewRegistry()
	m, err := prommetrics.New(o.registry)
	if err != nil {
		return nil, err
	}
	o.metrics = m
	o.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serving metrics on %s: %w (choose another address with --metrics-addr, or disable metrics with --metrics-addr '')", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(o.registry, promhttp.HandlerOpts{Registry: o.registry}))
	o.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := o.http.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed; metrics are no longer served", "error", err)
		}
	}()
	log.Info("serving metrics", "address", lis.Addr().String(), "path", "/metrics")
	return o, nil
}

// coordinatorMetrics returns what coordinator.Config.Metrics should be.
func (o *observability) coordinatorMetrics() coordinator.Metrics {
	if o.metrics == nil {
		return nil
	}
	return o.metrics
}

// attach registers the health and reflection services on gs, and the
// gauges read from srv at every scrape, with series of their own for at
// most maxGroups groups. Call it before gs serves.
func (o *observability) attach(gs *grpc.Server, srv prommetrics.Server, maxGroups int) error {
	if o.registry != nil {
		if err := prommetrics.RegisterServer(o.registry, srv, maxGroups); err != nil {
			return err
		}
	}
	healthpb.RegisterHealthServer(gs, o.health)
	reflection.Register(gs)
	leading := srv.Leading()
	setHealth(o.health, leading)
	go followLeadership(o.health, srv.Leading, leading, healthInterval, o.stopPoll)
	return nil
}

// stop reports every service NOT_SERVING for good and stops serving
// metrics. Call it once.
func (o *observability) stop() {
	close(o.stopPoll)
	o.health.Shutdown()
	if o.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = o.http.Shutdown(ctx)
	}
}

// healthServices are the services whose health follows leadership: the
// server as a whole ("") and each regroup service.
var healthServices = []string{"", regroupv1.Coordinator_ServiceDesc.ServiceName, regroupv1.Admin_ServiceDesc.ServiceName}

// setHealth reports every service SERVING if leading, else NOT_SERVING.
func setHealth(hs *health.Server, leading bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if leading {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, svc := range healthServices {
		hs.SetServingStatus(svc, st)
	}
}

// followLeadership reads leading every interval and updates the health
// service when it differs from was, the value last reported, until stop is
// closed.
func followLeadership(hs *health.Server, leading func() bool, was bool, every time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if now := leading(); now != was {
				setHealth(hs, now)
				was = now
			}
		}
	}
}
