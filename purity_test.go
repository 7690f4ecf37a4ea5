package regroup_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pureCores are the packages that make protocol decisions. They take time as
// an input and must not reach for a clock, timers, the network, gRPC, etcd,
// the OS, or a global random source (DESIGN.md, "pure cores, thin drivers").
var pureCores = []string{"coordinator/group", "member/fsm", "assignor"}

// forbiddenImports are import paths (or prefixes ending in "/") that a pure
// core's non-test files may not import.
var forbiddenImports = []string{
	"net", "net/", "os", "os/", "syscall", "math/rand", "math/rand/v2", "crypto/rand",
	"google.golang.org/grpc", "google.golang.org/grpc/", "go.etcd.io/", "github.com/hashicorp/go-hclog",
}

// forbiddenCalls are functions of package time that read the clock or start
// timers.
var forbiddenCalls = map[string]bool{
	"Now": true, "Sleep": true, "After": true, "AfterFunc": true, "NewTimer": true,
	"NewTicker": true, "Tick": true, "Since": true, "Until": true,
}

func TestPureCoresAreDeterministic(t *testing.T) {
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
			checkPure(t, f)
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no pure core source found: run the test from the module root")
	}
}

func checkPure(t *testing.T, path string) {
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	timeName := ""
	for _, imp := range file.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		for _, bad := range forbiddenImports {
			if p == bad || (strings.HasSuffix(bad, "/") && strings.HasPrefix(p, bad)) {
				t.Errorf("%s imports %q: pure cores must not use the network, the OS, gRPC, etcd, logging or global randomness", fset.Position(imp.Pos()), p)
			}
		}
		if p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	if timeName == "" {
		return
	}
	ast.Inspect(file, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == timeName && forbiddenCalls[sel.Sel.Name] {
			t.Errorf("%s uses time.%s: pure cores take the time as an input", fset.Position(sel.Pos()), sel.Sel.Name)
		}
		return true
	})
}
