package regroup_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pureCores are the packages that make protocol decisions. They take time as
// an input and must not reach for a clock, timers, goroutines, locks, the
// network, gRPC, etcd, the OS, or a global random source (DESIGN.md, "pure
// cores, thin drivers").
var pureCores = []string{"coordinator/group", "coordinator/node", "coordinator/shard", "member/fsm", "assignor"}

// forbiddenImports are import paths (or prefixes ending in "/") that a pure
// core may not import, directly or through any package of this module or
// a third party that it imports.
var forbiddenImports = []string{
	"net", "net/", "os", "os/", "syscall", "math/rand", "math/rand/v2", "crypto/rand", "sync", "sync/",
	"google.golang.org/grpc", "google.golang.org/grpc/", "go.etcd.io/", "github.com/hashicorp/go-hclog",
}

// forbiddenCalls are functions of package time that read the clock or start
// timers.
var forbiddenCalls = map[string]bool{
	"Now": true, "Sleep": true, "After": true, "AfterFunc": true, "NewTimer": true,
	"NewTicker": true, "Tick": true, "Since": true, "Until": true,
}

func TestPureCoresAreDeterministic(t *testing.T) {
	for _, dir := range pureCores {
		for _, p := range transitiveProblems(t, dir) {
			t.Error(p)
		}
	}
	checked := 0
	for _, dir := range pureCores {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			for _, p := range fileProblems(t, f) {
				t.Error(p)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no pure core source found: run the test from the module root")
	}
}

// TestPurityCheckCatches shows that both checks fail on bad input: a file
// that starts a goroutine, takes a lock and reads the clock, and a core
// that reaches the network through a package of the module.
func TestPurityCheckCatches(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.go")
	src := "package core\n\nimport (\n\t\"sync\"\n\tclock \"time\"\n)\n\nvar mu sync.Mutex\n\nfunc f() clock.Time { go f(); return clock.Now() }\n"
	if err := os.WriteFile(bad, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(fileProblems(t, bad), "\n")
	for _, want := range []string{"starts a goroutine", `imports "sync"`, "uses time.Now"} {
		if !strings.Contains(got, want) {
			t.Errorf("the file check missed %q; it said:\n%s", want, got)
		}
	}
	graph := map[string][]string{
		"example.com/core":   {"example.com/helper", generatedAPI},
		"example.com/helper": {"net/http"},
		generatedAPI:         {"google.golang.org/grpc", "sync"},
	}
	got = strings.Join(reach("core", "example.com/core", graph, map[string]bool{"net/http": true}), "\n")
	if !strings.Contains(got, "reaches net/http (imported by example.com/helper)") || strings.Contains(got, "grpc") || strings.Contains(got, "sync") {
		t.Errorf("the import walk said:\n%s\nwant net/http through example.com/helper, and nothing through the generated API", got)
	}
}

// generatedAPI is the package of the generated API: the cores use its
// messages, and its gRPC service stubs import gRPC, which the cores never
// call. The walk does not follow that package's gRPC imports.
const generatedAPI = "github.com/regroup-dev/regroup/proto/regroup/v1"

// generatedProto prefixes every generated package; their sync import only
// guards the descriptors' one-time initialisation.
const generatedProto = "github.com/regroup-dev/regroup/proto/"

// transitiveProblems walks the import graph of a core (go list -deps) and
// reports every forbidden package it reaches, except through the standard
// library's and protobuf's own internals and the generated API's gRPC
// stubs.
func transitiveProblems(t *testing.T, dir string) []string {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{join .Imports \" \"}}", "./"+dir).Output()
	if err != nil {
		t.Fatalf("go list -deps ./%s: %v", dir, err)
	}
	imports := map[string][]string{}
	standard := map[string]bool{}
	root := ""
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[f[0]] = f[2:]
		standard[f[0]] = f[1] == "true"
		root = f[0] // go list prints the named package last
	}
	return reach(dir, root, imports, standard)
}

// reach walks the import graph from root and reports the forbidden
// packages it reaches.
func reach(dir, root string, imports map[string][]string, standard map[string]bool) []string {
	var problems []string
	seen := map[string]bool{root: true}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if standard[p] || strings.HasPrefix(p, "google.golang.org/protobuf/") {
			continue // their internals are theirs
		}
		for _, q := range imports[p] {
			if p == generatedAPI && strings.HasPrefix(q, "google.golang.org/grpc") {
				continue
			}
			if strings.HasPrefix(p, generatedProto) && q == "sync" {
				continue // protoc-gen-go's descriptor initialisation
			}
			if seen[q] {
				continue
			}
			seen[q] = true
			if forbidden(q) {
				problems = append(problems, fmt.Sprintf("%s reaches %s (imported by %s): pure cores must not use the network, the OS, locks, gRPC, etcd, logging or global randomness, even indirectly", dir, q, p))
			}
			queue = append(queue, q)
		}
	}
	return problems
}

// forbidden reports whether a pure core may not import p.
func forbidden(p string) bool {
	for _, bad := range forbiddenImports {
		if p == bad || (strings.HasSuffix(bad, "/") && strings.HasPrefix(p, bad)) {
			return true
		}
	}
	return false
}

// fileProblems reports what in one source file a pure core may not do.
func fileProblems(t *testing.T, path string) []string {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(file, func(n ast.Node) bool {
		if g, ok := n.(*ast.GoStmt); ok {
			report("%s starts a goroutine: pure cores run only when stepped", fset.Position(g.Pos()))
		}
		return true
	})
	timeName := ""
	for _, imp := range file.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if forbidden(p) {
			report("%s imports %q: pure cores must not use the network, the OS, locks, gRPC, etcd, logging or global randomness", fset.Position(imp.Pos()), p)
		}
		if p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	if timeName == "" {
		return problems
	}
	ast.Inspect(file, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == timeName && forbiddenCalls[sel.Sel.Name] {
			report("%s uses time.%s: pure cores take the time as an input", fset.Position(sel.Pos()), sel.Sel.Name)
		}
		return true
	})
	return problems
}
