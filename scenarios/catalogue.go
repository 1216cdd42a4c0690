package scenarios

import (
	"embed"
	"go/ast"
	"go/parser"
	"go/token"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// FeaturesOf returns the optional ICS features a case with these labels
// needs because of the requirements it cites (the map Define applies
// before every case), each once, in the order of Features.
func FeaturesOf(labels []string) []Capability {
	cited := map[Capability]bool{}
	for _, f := range featuresCited(labels) {
		cited[f] = true
	}
	var out []Capability
	for _, f := range Features {
		if cited[f] {
			out = append(out, f)
		}
	}
	return out
}

// The suite's own source, read by SourceNeeds: what a case asks of the
// DUT at run time (need, needFresh) is written in its body, so the
// catalogue reads it there, as Kubernetes reads its conformance cases'
// source for conformance.yaml, instead of running anything.
//
//go:embed *.go
var source embed.FS

// SourceNeeds returns the capabilities the source of the case defined at
// file:line (a spec's code location; file may be a full path) asks for
// before or while it runs: need(d, X) and needFresh(d) in its body, in the
// functions and closures it calls, and in the BeforeEach and BeforeAll
// of its containers. A case that checks a capability only to choose what
// to do (d.Profile().Has) does not need it. The result is sorted: ICS
// features first in the order of Features, then rig abilities.
func SourceNeeds(file string, line int) []Capability {
	sourceOnce.Do(readSource)
	var best *specSource
	for i := range sourceSpecs {
		s := &sourceSpecs[i]
		if s.file == path.Base(file) && s.from <= line && line <= s.to && (best == nil || s.to-s.from < best.to-best.from) {
			best = s
		}
	}
	if best == nil {
		return nil
	}
	return best.needs
}

// specSource is one It call of the suite's source and what it needs.
type specSource struct {
	file     string
	from, to int
	needs    []Capability
}

var (
	sourceOnce  sync.Once
	sourceSpecs []specSource
)

// capabilityConsts maps the names of the Capability constants of the
// source to their values.
var capabilityConsts = map[string]Capability{}

// readCapabilityConsts fills capabilityConsts from f's declarations.
func readCapabilityConsts(f *ast.File) {
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, sp := range gd.Specs {
			vs, ok := sp.(*ast.ValueSpec)
			if !ok {
				continue
			}
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Capability" {
				continue
			}
			for i, name := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if v, err := strconv.Unquote(lit.Value); err == nil {
							capabilityConsts[name.Name] = Capability(v)
						}
					}
				}
			}
		}
	}
}

func readSource() {
	fset := token.NewFileSet()
	entries, err := source.ReadDir(".")
	if err != nil {
		return
	}
	var files []*ast.File
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		b, err := source.ReadFile(e.Name())
		if err != nil {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), b, 0)
		if err != nil {
			continue
		}
		files = append(files, f)
		readCapabilityConsts(f)
	}
	// Package functions and methods by name (methods: any receiver).
	funcs := map[string][]ast.Node{}
	for _, f := range files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				funcs[fd.Name.Name] = append(funcs[fd.Name.Name], fd.Body)
			}
		}
	}
	a := &needAnalysis{funcs: funcs, memo: map[ast.Node]map[Capability]bool{}}
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			// Closures assigned to local names, callable from the cases
			// defined in the same function.
			locals := map[string]ast.Node{}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if as, ok := n.(*ast.AssignStmt); ok {
					for i, rhs := range as.Rhs {
						if lit, ok := rhs.(*ast.FuncLit); ok && i < len(as.Lhs) {
							if id, ok := as.Lhs[i].(*ast.Ident); ok {
								locals[id.Name] = lit.Body
							}
						}
					}
				}
				return true
			})
			a.locals = locals
			a.walkSpecs(fset, fd.Body, nil)
		}
	}
}

// needAnalysis finds the capabilities a piece of source needs.
type needAnalysis struct {
	funcs  map[string][]ast.Node
	locals map[string]ast.Node
	memo   map[ast.Node]map[Capability]bool
}

// walkSpecs records every It under n, with the set-up nodes of the
// containers around it (setup).
func (a *needAnalysis) walkSpecs(fset *token.FileSet, n ast.Node, setup []ast.Node) {
	ast.Inspect(n, func(m ast.Node) bool {
		call, ok := m.(*ast.CallExpr)
		if !ok {
			return true
		}
		switch calleeName(call) {
		case "It", "FIt", "PIt", "Specify":
			needs := map[Capability]bool{}
			for _, s := range append(append([]ast.Node{}, setup...), call) {
				for c := range a.needs(s) {
					needs[c] = true
				}
			}
			sourceSpecs = append(sourceSpecs, specSource{
				file:  path.Base(fset.Position(call.Pos()).Filename),
				from:  fset.Position(call.Pos()).Line,
				to:    fset.Position(call.End()).Line,
				needs: sortCapabilities(needs),
			})
			return false
		case "Describe", "Context", "When", "FDescribe", "PDescribe":
			body := containerBody(call)
			if body == nil {
				return true
			}
			inner := append([]ast.Node{}, setup...)
			for _, st := range body.List {
				if es, ok := st.(*ast.ExprStmt); ok {
					if c, ok := es.X.(*ast.CallExpr); ok {
						switch calleeName(c) {
						case "BeforeEach", "BeforeAll", "JustBeforeEach":
							inner = append(inner, c)
						}
					}
				}
			}
			a.walkSpecs(fset, body, inner)
			return false
		}
		return true
	})
}

// needs returns what n asks for, directly or through what it calls.
func (a *needAnalysis) needs(n ast.Node) map[Capability]bool {
	if got, ok := a.memo[n]; ok {
		return got
	}
	out := map[Capability]bool{}
	a.memo[n] = out // cycles end here
	ast.Inspect(n, func(m ast.Node) bool {
		call, ok := m.(*ast.CallExpr)
		if !ok {
			return true
		}
		name := calleeName(call)
		switch name {
		case "need":
			if len(call.Args) == 2 {
				if id, ok := call.Args[1].(*ast.Ident); ok {
					if c, ok := capabilityConsts[id.Name]; ok {
						out[c] = true
					}
				}
			}
			return true
		case "needFresh":
			out[Fresh] = true
			return true
		}
		var callees []ast.Node
		if _, isIdent := call.Fun.(*ast.Ident); isIdent {
			if l, ok := a.locals[name]; ok {
				callees = append(callees, l)
			}
		}
		callees = append(callees, a.funcs[name]...)
		for _, c := range callees {
			for k := range a.needs(c) {
				out[k] = true
			}
		}
		return true
	})
	return out
}

// calleeName is the name a call calls: f of f(...) and x.f(...).
func calleeName(call *ast.CallExpr) string {
	switch f := call.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	case *ast.IndexExpr:
		if id, ok := f.X.(*ast.Ident); ok {
			return id.Name
		}
	}
	return ""
}

// containerBody is the body of a container's closure argument.
func containerBody(call *ast.CallExpr) *ast.BlockStmt {
	for _, arg := range call.Args {
		if lit, ok := arg.(*ast.FuncLit); ok {
			return lit.Body
		}
	}
	return nil
}

// sortCapabilities orders a set: features in the order of Features, then
// rig abilities by name.
func sortCapabilities(set map[Capability]bool) []Capability {
	var out []Capability
	for _, f := range Features {
		if set[f] {
			out = append(out, f)
		}
	}
	var rig []Capability
	for c := range set {
		if !c.IsFeature() {
			rig = append(rig, c)
		}
	}
	sort.Slice(rig, func(i, j int) bool { return rig[i] < rig[j] })
	return append(out, rig...)
}
