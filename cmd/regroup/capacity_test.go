package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestPprofServer checks that --pprof-addr serves the profiles on a
// loopback address and refuses any other address without
// --pprof-allow-remote.
func TestPprofServer(t *testing.T) {
	log := hclog.NewNullLogger()
	if _, _, err := pprofServer("0.0.0.0:0", false, log); err == nil || !strings.Contains(err.Error(), "--pprof-allow-remote") {
		t.Fatalf("a wildcard address without --pprof-allow-remote: got %v, want a refusal naming the flag", err)
	}
	addr, stop, err := pprofServer("127.0.0.1:0", false, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get("http://" + addr.String() + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatalf("GET /debug/pprof/cmdline: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("GET /debug/pprof/cmdline: %s with %d bytes, want 200 with the command line", resp.Status, len(body))
	}
}
