// Package spdlab_test checks the dependency rules of DESIGN.md ("Layout")
// on the non-test Go files of the module.
package spdlab_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/spdlab/spdlab/"

// imports maps each package directory to the spdlab packages its non-test
// files import, as module-relative paths.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, module) {
				out[dir] = append(out[dir], strings.TrimPrefix(p, module))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func under(p, root string) bool { return p == root || strings.HasPrefix(p, root+"/") }

func TestDependenciesPointOneWay(t *testing.T) {
	for dir, deps := range imports(t) {
		for _, dep := range deps {
			switch {
			case (under(dir, "reference") || under(dir, "rigs") || under(dir, "emulator")) &&
				(under(dep, "scenarios") || under(dep, "reports")):
				t.Errorf("%s imports %s: rigs, emulator and reference never import scenarios or reports", dir, dep)
			case under(dir, "reference") && (under(dep, "rigs") || under(dep, "emulator")):
				t.Errorf("%s imports %s: reference imports neither rigs nor emulator", dir, dep)
			case under(dir, "rigs") && !under(dir, "rigs/dut") && under(dep, "emulator"):
				t.Errorf("%s imports %s: a rig reaches a device through the OS interface, never an emulator", dir, dep)
			case under(dir, "emulator") && under(dep, "rigs"):
				t.Errorf("%s imports %s: an emulator imports no rig; a wire format both sides speak lives in reference/wire", dir, dep)
			case under(dir, "reference/wire") && !under(dep, "reference/wire"):
				t.Errorf("%s imports %s: a wire codec has no transport and imports only other wire codecs", dir, dep)
			case dir == "rigs/link":
				t.Errorf("rigs/link imports %s: it is a leaf", dep)
			}
		}
	}
}
