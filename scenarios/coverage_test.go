package scenarios

import (
	"encoding/json"
	"github.com/spdlab/spdlab/reference"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
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
	withoutRace(t)
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

// noNegative are the requirements no command can break in a way the
// device answers, with the reason; every other requirement needs a
// Negative case.
var noNegative = map[string]string{}

// TestEveryRequirementPositiveAndNegative fails when a case says neither
// Positive nor Negative, or when a requirement SPEC.md defines lacks a
// Positive case or a Negative one (checkPolarity holds a Negative case to
// its label whenever the suite runs).
func TestEveryRequirementPositiveAndNegative(t *testing.T) {
	withoutRace(t)
	pos, neg := map[string][]string{}, map[string][]string{}
	for id, labels := range dryRun(t) {
		p, n := slices.Contains(labels, Positive), slices.Contains(labels, Negative)
		if !p && !n {
			t.Errorf("%s is labelled neither %s nor %s", id, Positive, Negative)
		}
		for _, l := range labels {
			if !strings.HasPrefix(l, "SPD-") {
				continue
			}
			if p {
				pos[l] = append(pos[l], id)
			}
			if n {
				neg[l] = append(neg[l], id)
			}
		}
	}
	var ids []string
	for _, r := range reference.Requirements() {
		ids = append(ids, r.ID)
	}
	sort.Strings(ids)
	both := 0
	for _, r := range ids {
		if len(pos[r]) == 0 {
			t.Errorf("SPEC.md requirement %s has no %s case (one that shows it holds)", r, Positive)
		}
		why, exempt := noNegative[r]
		switch {
		case exempt && len(neg[r]) > 0:
			t.Errorf("%s is exempt from a %s case (%s) but has %v: drop the exemption", r, Negative, why, neg[r])
		case !exempt && len(neg[r]) == 0:
			t.Errorf("SPEC.md requirement %s has no %s case (one that shows a way to break it refused with its exact status word or decline reason)", r, Negative)
		case len(pos[r]) > 0 && len(neg[r]) > 0:
			both++
		}
	}
	t.Logf("%d of %d requirements have a positive and a negative case; %d exempt from a negative: %v", both, len(ids), len(noNegative), noNegative)
}

// looseMatchers are the ways a status check can accept more than one
// answer: a negated equality, a status word in a range, any error, a
// reason matched by a part of it. The suite states the one status word
// (section 1.1, 1.2) or the one decline reason (section 4.4) it expects.
var looseMatchers = []*regexp.Regexp{
	regexp.MustCompile(`(?i)(NotTo|ToNot)\((Equal|BeEquivalentTo)\((apdu\.SW|sw[0-9a-f]{4}|0x9000)`),
	regexp.MustCompile(`(?i)Not\(Equal\((apdu\.SW|sw[0-9a-f]{4})`),
	regexp.MustCompile(`(?i)\bsw\w*\)\.To\(BeNumerically`),
	regexp.MustCompile(`(?i)\bsw\w*\)\.To\(BeElementOf`),
	regexp.MustCompile(`(?i)\bsw\w*\)\.To\(Or\(`),
	regexp.MustCompile(`\.To\(HaveOccurred\(\)`),
	regexp.MustCompile(`(Info\(\)|info)\.Reason\)\.To\((ContainSubstring|HavePrefix|MatchRegexp)`),
}

// looseAllowed are the loose matches that are deliberate, by file and
// text, with the reason.
var looseAllowed = []struct{ file, text, why string }{
	{"esim.go", "Expect(sw).To(BeElementOf(sw6D00, sw6A88)", "the ISD-R is another application, whose answers SPEC.md leaves to GlobalPlatform"},
}

// sourceFile is one of the suite's own source files (not a test file).
type sourceFile struct{ name, text string }

// suiteSources reads the suite's source files from the working directory,
// skipping the test where they are not there: a standalone suite binary
// (go test -c) run where a vendor keeps it.
func suiteSources(t *testing.T) []sourceFile {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatalf("no suite source: %v", err)
	}
	var out []sourceFile
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sourceFile{file, string(b)})
	}
	if len(out) == 0 {
		t.Skip("scenarios: the suite's source is not in the working directory (a standalone suite binary)")
	}
	return out
}

// TestNoLooseStatusMatchers fails when a case accepts "any error": every
// status word and decline reason the suite checks is one exact value.
func TestNoLooseStatusMatchers(t *testing.T) {
	withoutRace(t)
	used := map[int]bool{}
	for _, src := range suiteSources(t) {
		file := src.name
	lines:
		for n, line := range strings.Split(src.text, "\n") {
			for _, re := range looseMatchers {
				if !re.MatchString(line) {
					continue
				}
				for i, a := range looseAllowed {
					if a.file == file && strings.Contains(line, a.text) {
						used[i] = true
						continue lines
					}
				}
				t.Errorf("%s:%d accepts more than one answer (%s): %s", file, n+1, re, strings.TrimSpace(line))
			}
		}
	}
	for i, a := range looseAllowed {
		if !used[i] {
			t.Errorf("allowed loose matcher %q in %s no longer exists: drop it", a.text, a.file)
		}
	}
}

// assertsCall finds the claims a case asserts in the suite's source.
var assertsCall = regexp.MustCompile(`asserts\("C([0-9]+)"`)

// TestEveryClaimAsserted fails when a claim of CLAIMS.md (C1..C50) is
// asserted by no case in its own terms (asserts, claims.go): a claim
// carried by labels alone is not checked. The run itself shows which case
// asserted which claim (the report's claim grid); this is the check that
// needs no device.
func TestEveryClaimAsserted(t *testing.T) {
	withoutRace(t)
	asserted := map[int]int{}
	for _, src := range suiteSources(t) {
		file := src.name
		for _, m := range assertsCall.FindAllStringSubmatch(src.text, -1) {
			n, _ := strconv.Atoi(m[1])
			if n < 1 || n > 50 {
				t.Errorf("%s asserts C%d: CLAIMS.md numbers C1..C50", file, n)
			}
			asserted[n]++
		}
	}
	labelled := map[string]bool{}
	for _, labels := range dryRun(t) {
		for _, l := range labels {
			labelled[l] = true
		}
	}
	for n := 1; n <= 50; n++ {
		cl := "C" + strconv.Itoa(n)
		switch {
		case !labelled[cl]:
			t.Errorf("%s: no case is labelled with it (not covered)", cl)
		case asserted[n] == 0:
			t.Errorf("%s: cases carry it by label alone; none asserts it (asserts(%q, ...))", cl, cl)
		}
	}
}
