package reports

import (
	"strings"
	"testing"
)

func TestModulePath(t *testing.T) {
	for in, want := range map[string]string{
		"/work/wt-x/scenarios/payments.go:58":                    "scenarios/payments.go:58",
		"/home/u/src/spdlab/cmd/spdlab/certify.go":               "cmd/spdlab/certify.go",
		`C:\src\spdlab\reports\html.go:12`:                       "reports/html.go:12",
		"/root/go/pkg/mod/github.com/onsi/ginkgo/v2/core_dsl.go": "core_dsl.go",
		"/home/vendor/ics.yaml":                                  "ics.yaml",
		"scenarios/payments.go:58":                               "scenarios/payments.go:58",
		"":                                                       "",
	} {
		if got := modulePath(in); got != want {
			t.Errorf("modulePath(%q) = %q, want %q", in, got, want)
		}
	}
	msg := "Expected 6982 at /work/wt-x/scenarios/payments.go:58 (from /dev/ttyUSB0)"
	if got := stripPaths(msg); got != "Expected 6982 at scenarios/payments.go:58 (from /dev/ttyUSB0)" {
		t.Errorf("stripPaths: %q", got)
	}
}

func TestDecodeTranscript(t *testing.T) {
	steps := DecodeTranscript(sampleTranscript + "80600000 -> 6D00\n")
	want := []struct{ op, name, sw, meaning, atr, err string }{
		{op: "reset-cold", atr: "3BF81300008131FE454A434F5076323431B7"},
		{op: "exchange", name: "SELECT", sw: "9000", meaning: "success"},
		{op: "exchange", name: "GET DATA", sw: "6105", meaning: "5 bytes available"},
		{op: "exchange", name: "GET DATA", sw: "9000", meaning: "success"},
		{op: "exchange", name: "VERIFY", sw: "63C2", meaning: "verification failed, 2 tries left"},
		{op: "exchange", name: "INS B0", err: "link: card removed"},
		{op: "exchange", name: "PAY", sw: "6D00", meaning: "instruction not supported"},
	}
	if len(steps) != len(want) {
		t.Fatalf("%d steps: %+v", len(steps), steps)
	}
	for i, w := range want {
		s := steps[i]
		if s.Op != w.op || s.Name != w.name || s.SW != w.sw || s.SWMeaning != w.meaning || s.ATR != w.atr || s.Error != w.err {
			t.Errorf("step %d = %+v, want %+v", i, s, w)
		}
	}
	if !strings.Contains(steps[3].RespTLV, "DF04 [8] 0000000000002710  balance") {
		t.Errorf("GET DATA response tree %q", steps[3].RespTLV)
	}
	if !strings.Contains(steps[1].RespTLV, "6F") || !strings.Contains(steps[1].RespTLV, "  84 [8] F05350444C414201") {
		t.Errorf("SELECT response tree %q", steps[1].RespTLV)
	}
}

func TestTraceability(t *testing.T) {
	c := Build(RunInfo{CaseCount: 3}, runTinyOnce(t, "failed"))
	c.Cases = append(c.Cases, Case{ID: "TC-X-001", Requirements: []string{"SPD-ZZZ-9"}, Verdict: Passed})
	rows := c.Traceability()
	got := map[string]TraceRow{}
	for _, r := range rows {
		got[r.Requirement.ID] = r
	}
	if r := got["SPD-PAY-1"]; r.Verdict != Failed || len(r.Cases) != 1 || r.Cases[0].ID != "TC-A-002" || !r.Defined {
		t.Errorf("SPD-PAY-1 row %+v", r)
	}
	if r := got["SPD-APP-1"]; r.Verdict != Passed {
		t.Errorf("SPD-APP-1 row %+v", r)
	}
	if r := got["SPD-BIO-1"]; r.Verdict != NotApplicable {
		t.Errorf("SPD-BIO-1 row %+v", r)
	}
	if r := got["SPD-LC-3"]; r.Verdict != NotCovered || len(r.Cases) != 0 {
		t.Errorf("SPD-LC-3 row %+v", r)
	}
	if r := got["SPD-ZZZ-9"]; r.Defined || r.Text != "not defined in SPEC.md" || rows[len(rows)-1].Requirement.ID != "SPD-ZZZ-9" {
		t.Errorf("undefined requirement row %+v", r)
	}
}
