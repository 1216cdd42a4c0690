package reports

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	junit "github.com/joshdk/go-junit"
)

// junit.xml as a CI consumer reads it: github.com/joshdk/go-junit ingests
// it (as CI dashboards built on it do), and the testcase properties, which
// that library does not read, are checked with encoding/xml.
func TestJUnitConsumer(t *testing.T) {
	key := newKey(t)
	rs := runTinyOnce(t, "transcripts-fail")
	rs = append(rs, runTinyOnce(t, "after-suite-failed")...)
	dir := t.TempDir()
	c, err := Write(dir, RunInfo{DUT: "serial:/dev/ttyUSB0", CaseCount: 4, Lab: Lab{Name: "ACME test lab"},
		ICS:          ICS{YAML: "vendor: ACME\n"},
		Capabilities: Capabilities{Features: []string{"pay-balance", "tokens"}, Rig: []string{"fresh-device"}}}, rs, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, FileJUnit))
	if err != nil {
		t.Fatal(err)
	}
	suites, err := junit.Ingest(raw)
	if err != nil {
		t.Fatalf("a JUnit consumer cannot read junit.xml: %v", err)
	}
	tests := map[string]junit.Test{}
	var names []string
	for _, s := range suites {
		names = append(names, s.Name)
		if s.Properties["spdlab.verdict"] != c.Verdict || s.Properties["spdlab.lab.key_fingerprint"] != c.Run.Lab.KeyFingerprint ||
			s.Properties["spdlab.ics.sha256"] != c.Run.ICS.SHA256 ||
			s.Properties["capabilities"] != "ICS features: pay-balance, tokens; rig: fresh-device" {
			t.Errorf("suite %s properties %v", s.Name, s.Properties)
		}
		for k := range s.Properties {
			if !strings.HasPrefix(k, "spdlab.") && k != "capabilities" {
				t.Errorf("suite %s has the foreign property %q", s.Name, k)
			}
		}
		for _, tc := range s.Tests {
			tests[tc.Name] = tc
			if tc.Classname != s.Name {
				t.Errorf("%s: classname %q in suite %q", tc.Name, tc.Classname, s.Name)
			}
		}
	}
	if strings.Join(names, " ") != "TC-A TC-BIO TC-PAY TC-PIN suite" {
		t.Errorf("suites %v, want one per area and one for suite-level failures", names)
	}
	for name, want := range map[string]struct {
		status  junit.Status
		message string
	}{
		"TC-PAY-001 pays":                       {junit.StatusPassed, ""},
		"TC-PIN-001 refuses PAY before VERIFY":  {junit.StatusFailed, "PAY before VERIFY: expected 6982, got 9000"},
		"TC-BIO-001 needs a feature TC-BIO-001": {junit.StatusSkipped, "not applicable: ICS features.Biometric is false"},
		"TC-A-001 passes TC-A-001":              {junit.StatusPassed, ""},
		"AfterSuite":                            {junit.StatusError, "leaked a device"},
	} {
		got, ok := tests[name]
		if !ok {
			t.Errorf("no testcase %q", name)
			continue
		}
		if got.Status != want.status || got.Message != want.message {
			t.Errorf("%s: %s %q, want %s %q", name, got.Status, got.Message, want.status, want.message)
		}
	}
	if out := tests["TC-PIN-001 refuses PAY before VERIFY"].SystemOut; !strings.Contains(out, "VERIFY 00 20 00 80 30303030 -> 63C2 verification failed, 2 tries left") ||
		!strings.Contains(out, "PAY 80 60 00 00 DF2801 -> 9000 success") {
		t.Errorf("decoded transcript in system-out:\n%s", out)
	}

	// Per-testcase properties: case ID, requirements, claims; a case with
	// two requirements names both.
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
		Suites   []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Errors   int    `xml:"errors,attr"`
			Skipped  int    `xml:"skipped,attr"`
			Cases    []struct {
				Name  string `xml:"name,attr"`
				Props []struct {
					Name  string `xml:"name,attr"`
					Value string `xml:"value,attr"`
				} `xml:"properties>property"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	// The counts a dashboard shows before it opens a suite: each suite's
	// and the whole file's tests, failures, errors and skips.
	if got := fmt.Sprintf("%d/%d/%d/%d", doc.Tests, doc.Failures, doc.Errors, doc.Skipped); got != "5/1/1/1" {
		t.Errorf("testsuites tests/failures/errors/skipped %s, want 5/1/1/1", got)
	}
	for _, s := range doc.Suites {
		want := map[string]string{"TC-A": "1/0/0/0", "TC-BIO": "1/0/0/1", "TC-PAY": "1/0/0/0", "TC-PIN": "1/1/0/0", "suite": "1/0/1/0"}[s.Name]
		if got := fmt.Sprintf("%d/%d/%d/%d", s.Tests, s.Failures, s.Errors, s.Skipped); got != want {
			t.Errorf("testsuite %s tests/failures/errors/skipped %s, want %s", s.Name, got, want)
		}
	}
	props := map[string][]string{}
	for _, s := range doc.Suites {
		for _, tc := range s.Cases {
			for _, p := range tc.Props {
				props[tc.Name] = append(props[tc.Name], p.Name+"="+p.Value)
			}
		}
	}
	for name, want := range map[string]string{
		"TC-PAY-001 pays":                       "id=TC-PAY-001|requirements=SPD-PAY-1|claims=C2|verdict=passed",
		"TC-PIN-001 refuses PAY before VERIFY":  "id=TC-PIN-001|requirements=SPD-PIN-1|claims=C32|verdict=failed",
		"TC-BIO-001 needs a feature TC-BIO-001": "id=TC-BIO-001|requirements=SPD-BIO-1|claims=C32|verdict=not applicable",
	} {
		if got := strings.Join(props[name], "|"); !strings.HasPrefix(got, want+"|location=") {
			t.Errorf("%s: properties %q, want %q and the location", name, got, want)
		}
	}
	for _, bad := range []string{"SuiteConfig", "Ginkgo", "/work/", "/root/", "/home/"} {
		if strings.Contains(string(raw), bad) {
			t.Errorf("junit.xml holds %q", bad)
		}
	}
}

// xunitViewerParse is a Node program that reads a JUnit file with the
// parser of xunit-viewer (the viewer whose summary "x 8 ? 62" once showed
// passes as unknown) and prints each testcase's status and properties.
const xunitViewerParse = `
import { readFileSync } from 'node:fs'
const { default: parse } = await import(process.env.XUNIT_VIEWER_PARSE)
const out = await parse(readFileSync(process.argv[1], 'utf8'))
const tests = {}
for (const s of Object.values(out.suites)) {
  for (const t of Object.values(s.tests)) tests[t.name] = { status: t.status, classname: t.classname, properties: t.properties }
}
console.log(JSON.stringify(tests))
`

// A second JUnit consumer: xunit-viewer (npm) reads every pass as passed,
// the not-applicable case as skipped, and each case's properties.
func TestJUnitXunitViewer(t *testing.T) {
	bin, err := exec.LookPath("xunit-viewer")
	if err != nil {
		t.Skip("xunit-viewer is not installed: `make deps` installs it when npm is present (npm install -g xunit-viewer)")
	}
	real, err := filepath.EvalSymlinks(bin)
	if err != nil {
		t.Fatal(err)
	}
	parser := filepath.Join(filepath.Dir(filepath.Dir(real)), "src", "cli", "parse.js")
	if _, err := os.Stat(parser); err != nil {
		t.Skipf("this xunit-viewer keeps its parser elsewhere: %v", err)
	}
	dir := t.TempDir()
	if _, err := Write(dir, RunInfo{DUT: "ref", CaseCount: 3}, runTinyOnce(t, "transcripts-fail"), newKey(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--input-type=module", "-e", xunitViewerParse, filepath.Join(dir, FileJUnit))
	cmd.Env = append(os.Environ(), "XUNIT_VIEWER_PARSE=file://"+parser)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xunit-viewer's parser: %v", err)
	}
	var tests map[string]struct {
		Status     string
		Classname  string
		Properties map[string]any
	}
	if err := json.Unmarshal(out, &tests); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for name, want := range map[string]struct{ status, id string }{
		"TC-PAY-001 pays":                       {"passed", "TC-PAY-001"},
		"TC-PIN-001 refuses PAY before VERIFY":  {"failure", "TC-PIN-001"},
		"TC-BIO-001 needs a feature TC-BIO-001": {"skipped", "TC-BIO-001"},
	} {
		got, ok := tests[name]
		if !ok {
			t.Errorf("xunit-viewer has no test %q: %s", name, out)
			continue
		}
		if got.Status != want.status || !strings.Contains(fmt.Sprint(got.Properties["id"]), want.id) ||
			got.Properties["requirements"] == nil || got.Properties["claims"] == nil {
			t.Errorf("%s: xunit-viewer reads status %q, properties %v; want %s with id, requirements, claims", name, got.Status, got.Properties, want.status)
		}
	}
}
