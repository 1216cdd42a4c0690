package device

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMutantCatalogue checks that every catalogued mutant is switched on
// somewhere in the device, that every switch names a catalogued mutant,
// and that each names a requirement SPEC.md defines.
func TestMutantCatalogue(t *testing.T) {
	spec, err := os.ReadFile("../SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	hook := regexp.MustCompile(`(?:bug\(|, )"([a-z0-9-]+)"\)`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range hook.FindAllStringSubmatch(string(src), -1) {
			used[m[1]] = true
		}
	}
	// The nonatomic-* mutants are switched on by name in begin.
	for _, m := range Mutants {
		if strings.HasPrefix(m.Name, "nonatomic-") {
			used[m.Name] = true
		}
	}
	seen := map[string]bool{}
	for _, m := range Mutants {
		if seen[m.Name] {
			t.Errorf("mutant %s catalogued twice", m.Name)
		}
		seen[m.Name] = true
		if !used[m.Name] {
			t.Errorf("mutant %s is never switched on in the device", m.Name)
		}
		if !strings.Contains(string(spec), "**"+m.Requirement+"**") {
			t.Errorf("mutant %s names %s, which SPEC.md does not define", m.Name, m.Requirement)
		}
		if m.Bug == "" {
			t.Errorf("mutant %s says nothing about its bug", m.Name)
		}
	}
	for name := range used {
		if !seen[name] {
			t.Errorf("bug(%q) names no catalogued mutant", name)
		}
	}
	if len(Mutants) < 60 {
		t.Errorf("%d mutants, want at least 60", len(Mutants))
	}
}
