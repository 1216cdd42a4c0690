package spdlab_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// catalogueRegenerate is the command that rewrites the committed catalogue
// (cmd/spdlab's cases command names the same).
const catalogueRegenerate = "go run ./cmd/spdlab cases --format md > scenarios/CATALOGUE.md"

// The committed catalogue is what `spdlab cases --format md` prints for the
// suite as it is now: whoever adds, removes or relabels a case regenerates
// it in the same commit.
func TestCatalogueIsCurrent(t *testing.T) {
	want, err := os.ReadFile("scenarios/CATALOGUE.md")
	if err != nil {
		t.Fatalf("%v; write it with: %s", err, catalogueRegenerate)
	}
	cmd := exec.Command("go", "run", "./cmd/spdlab", "cases", "--format", "md")
	var got, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &got, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("spdlab cases: %v\n%s", err, errOut.String())
	}
	if got.String() == string(want) {
		return
	}
	gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("scenarios/CATALOGUE.md is stale (the suite's cases changed); regenerate it from the module root with:\n\t%s\nfirst difference, line %d:\n\tcommitted: %s\n\tsuite now: %s", catalogueRegenerate, i+1, w, g)
		}
	}
}
