package regroup

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// TestCodeTable checks that every Code constant declared in errors.go is in
// the table of codes (and nothing else is), that Fatal and Advice agree
// with it, and that exactly the fatal codes carry advice.
func TestCodeTable(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	declared := map[Code]string{}
	for _, d := range file.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			v := spec.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for i, name := range v.Names {
				lit, ok := v.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s: want a string literal", name.Name)
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				declared[Code(s)] = name.Name
			}
		}
	}
	if len(declared) == 0 {
		t.Fatal("no Code constants found in errors.go")
	}
	for c, name := range declared {
		info, ok := codes[c]
		if !ok {
			t.Errorf("%s (%s) is not in the table of codes", name, c)
			continue
		}
		if c.Fatal() != info.fatal {
			t.Errorf("%s.Fatal() = %v, the table says %v", name, c.Fatal(), info.fatal)
		}
		if c.Advice() != info.advice {
			t.Errorf("%s.Advice() = %q, the table says %q", name, c.Advice(), info.advice)
		}
		if info.fatal != (info.advice != "") {
			t.Errorf("%s: fatal %v but advice %q; fatal codes need advice, retriable ones none", name, info.fatal, info.advice)
		}
	}
	for c := range codes {
		if _, ok := declared[c]; !ok {
			t.Errorf("the table has %s, which is not a declared Code constant", c)
		}
	}
	for _, c := range []Code{"", "NO_SUCH_CODE"} {
		if c.Fatal() || c.Advice() != "" {
			t.Errorf("unknown code %q: Fatal %v, Advice %q; want not fatal, no advice", c, c.Fatal(), c.Advice())
		}
	}
}
