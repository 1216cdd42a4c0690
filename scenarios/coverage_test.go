package scenarios

import (
	"encoding/json"
	"github.com/spdlab/spdlab/reference"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

// dryRun runs this test binary's conformance suite as a Ginkgo dry run (no
// spec body runs, no device is opened) and returns its specs: case ID ->
// labels.
func dryRun(t *testing.T) map[string][]string {
	t.Helper()
	report := filepath.Join(t.TempDir(), "dry-run.json")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestConformance$", "-ginkgo.dry-run", "-ginkgo.no-color",
		"-ginkgo.json-report="+report, "-dut=ref")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dry run of the suite: %v\n%s", err, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var reports []types.Report
	if err := json.Unmarshal(b, &reports); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{}
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType != types.NodeTypeIt {
				continue
			}
			labels := s.Labels()
			if len(labels) == 0 || !strings.HasPrefix(labels[0], "TC-") {
				id := ""
				for _, l := range labels {
					if strings.HasPrefix(l, "TC-") {
						id = l
					}
				}
				if id == "" {
					t.Errorf("spec %q has no case ID", s.FullText())
					continue
				}
				labels = append([]string{id}, labels...)
			}
			if _, dup := cases[labels[0]]; dup {
				t.Errorf("case ID %s used twice", labels[0])
			}
			cases[labels[0]] = labels[1:]
		}
	}
	return cases
}

// TestEveryRequirementCited fails when a requirement SPEC.md defines is
// cited by no case, when a case cites a requirement SPEC.md does not
// define, or when a device case cites none.
func TestEveryRequirementCited(t *testing.T) {
	// SPEC.md as embedded in the build, so the suite binary checks itself
	// wherever it runs.
	defined := map[string]bool{}
	for _, r := range reference.Requirements() {
		defined[r.ID] = true
	}
	if len(defined) == 0 {
		t.Fatal("no requirement IDs found in SPEC.md")
	}
	cited := map[string][]string{}
	cases := dryRun(t)
	device := 0
	for id, labels := range cases {
		var reqs []string
		for _, l := range labels {
			if strings.HasPrefix(l, "SPD-") {
				reqs = append(reqs, l)
			}
		}
		if len(reqs) == 0 && !strings.HasPrefix(id, "TC-SVC-") {
			// A service flow may check a claim of the terminal or the
			// backend alone; a device case checks a requirement.
			t.Errorf("%s cites no requirement", id)
		}
		for _, r := range reqs {
			if !defined[r] {
				t.Errorf("%s cites %s, which SPEC.md does not define", id, r)
			}
			cited[r] = append(cited[r], id)
		}
		if !strings.HasPrefix(id, "TC-SVC-") {
			device++
		}
	}
	var missing []string
	for r := range defined {
		if len(cited[r]) == 0 {
			missing = append(missing, r)
		}
	}
	sort.Strings(missing)
	for _, r := range missing {
		t.Errorf("SPEC.md requirement %s is cited by no case", r)
	}
	t.Logf("%d cases (%d of them device cases, %d service flows) cite %d of %d requirements",
		len(cases), device, len(cases)-device, len(defined)-len(missing), len(defined))
}
