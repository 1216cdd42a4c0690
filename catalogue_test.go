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
	generatedIsCurrent(t, "scenarios/CATALOGUE.md", "md", catalogueRegenerate)
}

// labelsRegenerate rewrites the committed labels file.
const labelsRegenerate = "go run ./cmd/spdlab cases --format go > scenarios/labels_test.go"

// scenarios/labels_test.go names every case's labels as literals, so that
// `ginkgo labels ./scenarios` lists them; it too is regenerated when a
// case is added, removed or relabelled.
func TestLabelsFileIsCurrent(t *testing.T) {
	generatedIsCurrent(t, "scenarios/labels_test.go", "go", labelsRegenerate)
}

// generatedIsCurrent fails when the committed file path differs from what
// `spdlab cases --format format` prints now.
func generatedIsCurrent(t *testing.T, path, format, regenerate string) {
	t.Helper()
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; write it with: %s", err, regenerate)
	}
	cmd := exec.Command(spdlabBinary(t), "cases", "--format", format)
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
			t.Fatalf("%s is stale (the suite's cases changed); regenerate it from the module root with:\n\t%s\nfirst difference, line %d:\n\tcommitted: %s\n\tsuite now: %s", path, regenerate, i+1, w, g)
		}
	}
}
