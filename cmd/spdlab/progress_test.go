package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reports"
)

func spec(id string, state types.SpecState, run time.Duration, msg string) types.SpecReport {
	return types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeText: "MUST do " + id, LeafNodeLabels: []string{id, "SPD-APP-1", "C1"},
		State: state, RunTime: run, Failure: types.Failure{Message: msg, Location: types.CodeLocation{FileName: "/home/lab/spdlab/scenarios/payments.go", LineNumber: 42}}}
}

// One line per case with the count, the outcome, its time and what is
// left; failures and exclusions with their reason; a tally at the end.
func TestProgressLines(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, false)
	clock := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return clock }
	p.begin(4)
	clock = clock.Add(20 * time.Second)
	p.spec(spec("TC-PAY-001", types.SpecStatePassed, 210*time.Millisecond, ""))
	clock = clock.Add(20 * time.Second)
	p.spec(spec("TC-PAY-002", types.SpecStateFailed, 1500*time.Millisecond, "Expected\n    <int>: 1\nto equal 2"))
	p.spec(spec("TC-TOK-001", types.SpecStateSkipped, 0, "not applicable: ICS features.tokens is false"))
	p.spec(spec("TC-APP-009", types.SpecStateSkipped, 0, "")) // left out by a filter: not counted
	clock = clock.Add(40 * time.Second)
	p.spec(spec("TC-PAY-003", types.SpecStatePassed, 50*time.Millisecond, ""))
	p.end(types.Report{RunTime: 80 * time.Second})
	want := `running 4 cases
[1/4] TC-PAY-001 passed 0.21 s, about 1 min 00 s left
[2/4] TC-PAY-002 FAILED 1.50 s, about 40 s left
        payments.go:42: Expected ...
[3/4] TC-TOK-001 not applicable 0.00 s, about 13 s left
        not applicable: ICS features.tokens is false
[4/4] TC-PAY-003 passed 0.05 s
ran 4 of 4 cases in 1 min 20 s: 2 passed, 1 FAILED, 1 not applicable
`
	if out.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", out.String(), want)
	}
	if strings.Contains(out.String(), "/home/lab") {
		t.Error("progress shows a machine path")
	}

	var col bytes.Buffer
	p = newProgress(&col, true)
	p.begin(1)
	p.spec(spec("TC-PAY-001", types.SpecStatePassed, time.Millisecond, ""))
	if !strings.Contains(col.String(), "\x1b[32mpassed\x1b[0m") {
		t.Errorf("no colour on a terminal: %q", col.String())
	}
}

// Colour only on a terminal, and not with NO_COLOR set.
func TestColorWanted(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv("NO_COLOR", "")
	if colorWanted(f) || colorWanted(&bytes.Buffer{}) {
		t.Error("colour wanted in a file or a buffer")
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
	if err != nil {
		t.Logf("no terminal to check colour on (%v)", err)
		return
	}
	defer tty.Close()
	if !colorWanted(tty) {
		t.Error("no colour on a terminal")
	}
	t.Setenv("NO_COLOR", "1")
	if colorWanted(tty) {
		t.Error("colour on a terminal with NO_COLOR=1")
	}
}

// certify as a user runs it with its output in a file: a line per case, a
// tally and the verdict, no ANSI codes.
func TestCertifyProgress(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "lab.pem")
	if _, err := reports.InitLab(key, "progress test lab"); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := child("certify", "--dut", "ref", "--key", key, "--out", filepath.Join(dir, "out"), "--label-filter", "TC-APP-001 || TC-APP-002")
	if err == nil {
		t.Fatalf("a filtered run exited 0:\n%s", out)
	}
	for _, re := range []string{
		`(?m)^running 2 cases$`,
		// With certify's default --procs, the two cases may end in
		// either order; each is counted once, in the order they end.
		`(?m)^\[1/2\] TC-APP-00[12] passed \d+\.\d\d s, about .+ left$`,
		`(?m)^\[2/2\] TC-APP-00[12] passed \d+\.\d\d s$`,
		`(?m)^\[[12]/2\] TC-APP-001 passed `,
		`(?m)^\[[12]/2\] TC-APP-002 passed `,
		`(?m)^ran 2 of 2 cases in .+: 2 passed$`,
		`(?m)^PARTIAL RUN: not a certificate`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("certify output does not match %s:\n%s%s", re, out, errOut)
		}
	}
	if strings.Contains(out+errOut, "\x1b[") {
		t.Errorf("ANSI codes in certify's output to a file:\n%q", out)
	}
}
