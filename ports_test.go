package regroup

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// defaultPorts are the ports of the README's coordinator (gRPC, metrics,
// embedded etcd's clients and peers): a user may be running it while
// running the tests, so no test may bind them, or even name them.
var defaultPorts = regexp.MustCompile(`\b(7070|7071|7379|7380)\b`)

// namesDefaultPort returns the first line of src that names a default
// port, and its number (from 1), or 0.
func namesDefaultPort(src string) (string, int) {
	for i, line := range strings.Split(src, "\n") {
		if defaultPorts.MatchString(line) {
			return line, i + 1
		}
	}
	return "", 0
}

func TestNoTestNamesADefaultPort(t *testing.T) {
	// The sample is built at run time, so that this file names no port.
	bad := fmt.Sprintf("lis, err := net.Listen(\"tcp\", \"127.0.0.1:%d\")", 7000+71)
	if _, n := namesDefaultPort(bad); n == 0 {
		t.Fatalf("the check misses a test that binds a default port: %s", bad)
	}
	if _, n := namesDefaultPort("port := freePort(t) // 17070 is not a default"); n != 0 {
		t.Fatal("the check flags a port that only contains a default one")
	}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		// This file lists the ports to look for; it binds none.
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") || path == "ports_test.go" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if line, n := namesDefaultPort(string(b)); n != 0 {
			t.Errorf("%s:%d names a default port; tests pick free ports (127.0.0.1:0):\n%s", path, n, strings.TrimSpace(line))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
