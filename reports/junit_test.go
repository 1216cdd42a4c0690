package reports

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	junit "github.com/joshdk/go-junit"
)

// junit.xml as a CI consumer reads it: github.com/joshdk/go-junit ingests
// it (as CI dashboards built on it do), and the testcase properties, which
// that library does not read, are checked with encoding/xml.
func TestJUnitConsumer(t *testing.T) {
	key := newKey(t)
	rs := runTiny(t, "transcripts-fail")
	rs = append(rs, runTiny(t, "after-suite-failed")...)
	dir := t.TempDir()
	c, err := Write(dir, RunInfo{DUT: "serial:/dev/ttyUSB0", CaseCount: 4, Lab: Lab{Name: "ACME test lab"},
		ICS: ICS{YAML: "vendor: ACME\n"}}, rs, key)
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
			s.Properties["spdlab.ics.sha256"] != c.Run.ICS.SHA256 {
			t.Errorf("suite %s properties %v", s.Name, s.Properties)
		}
		for k := range s.Properties {
			if !strings.HasPrefix(k, "spdlab.") {
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

	// Per-testcase properties: case ID, requirements, claims.
	var doc struct {
		Suites []struct {
			Cases []struct {
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
	props := map[string][]string{}
	for _, s := range doc.Suites {
		for _, tc := range s.Cases {
			for _, p := range tc.Props {
				props[tc.Name] = append(props[tc.Name], p.Name+"="+p.Value)
			}
		}
	}
	got := strings.Join(props["TC-PAY-001 pays"], " ")
	for _, want := range []string{"case=TC-PAY-001", "requirement=SPD-PAY-1", "claim=C2", "verdict=passed"} {
		if !strings.Contains(got, want) {
			t.Errorf("TC-PAY-001 properties %q lack %q", got, want)
		}
	}
	for _, bad := range []string{"SuiteConfig", "Ginkgo", "/work/", "/root/", "/home/"} {
		if strings.Contains(string(raw), bad) {
			t.Errorf("junit.xml holds %q", bad)
		}
	}
}
