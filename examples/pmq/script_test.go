package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/regroup-dev/regroup/examples/pmq/internal/mariadb"
)

// TestRunScript runs `run.sh demo` as a person would (on free ports) and
// checks that the demo's audit passes and counts the frozen consumer's
// refused commit.
func TestRunScript(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo runs about 50 s; skipped with -short")
	}
	if _, err := mariadb.Binary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	regroup := freeAddr(t)
	db := freeAddr(t)
	cmd := exec.Command("./run.sh", "demo")
	cmd.Env = append(os.Environ(), "PMQ_STATE="+t.TempDir(), "PMQ_REGROUP="+regroup,
		"PMQ_DB_PORT="+db[strings.LastIndex(db, ":")+1:])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run.sh demo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OK: every message processed") {
		t.Fatalf("run.sh demo's audit did not pass:\n%s", out)
	}
	// The frozen consumer's commit was refused, and the audit counts it.
	if !strings.Contains(string(out), "commit refused by the fence") || !strings.Contains(string(out), "refused commits from c2/") {
		t.Fatalf("run.sh demo showed no refused commit from c2, or its audit did not count one:\n%s", out)
	}
	t.Logf("run.sh demo:\n%s", out)
}
