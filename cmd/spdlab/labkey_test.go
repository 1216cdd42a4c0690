package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reports"
)

func spdlab(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), &env{stdin: strings.NewReader(""), stdout: &o, stderr: &e}, args)
	return code, o.String(), e.String()
}

// ginkgoJSON writes a one-case Ginkgo report as ginkgo --json-report does.
func ginkgoJSON(t *testing.T, path string) {
	t.Helper()
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	rs := []types.Report{{SuiteDescription: "spdlab conformance", StartTime: now, EndTime: now.Add(time.Second),
		SpecReports: types.SpecReports{{LeafNodeType: types.NodeTypeIt, LeafNodeText: "MUST answer SELECT",
			LeafNodeLabels: []string{"TC-APP-001", "SPD-APP-1", "C1"}, State: types.SpecStatePassed}}}}
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLabKeyAndVerify(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "lab", "lab-key.pem")
	other := filepath.Join(dir, "other", "lab-key.pem")
	out := filepath.Join(dir, "report")
	gj := filepath.Join(dir, "ginkgo.json")
	ginkgoJSON(t, gj)

	code, _, errOut := spdlab(t, "report", "--json", gj, "--dut", "ref", "--out", out, "--key", key)
	if code == 0 || !strings.Contains(errOut, "spdlab labkey init") {
		t.Fatalf("report without a lab key: code %d, %s", code, errOut)
	}
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Fatal("report made a lab key")
	}

	code, initOut, errOut := spdlab(t, "labkey", "init", "--key", key, "--name", "ACME test lab")
	if code != 0 || !strings.Contains(initOut, "fingerprint: ") {
		t.Fatalf("labkey init: %d %s %s", code, initOut, errOut)
	}
	fp := strings.TrimSpace(initOut[strings.Index(initOut, "fingerprint: ")+len("fingerprint: "):])
	if len(fp) != 64 {
		t.Fatalf("fingerprint %q", fp)
	}
	if code, _, errOut := spdlab(t, "labkey", "init", "--key", key, "--name", "Again"); code == 0 || !strings.Contains(errOut, "not overwriting") {
		t.Fatalf("labkey init over an existing key: %d %s", code, errOut)
	}
	code, show, _ := spdlab(t, "labkey", "show", "--key", key)
	if code != 0 || !strings.Contains(show, "lab: ACME test lab") || !strings.Contains(show, fp) || !strings.Contains(show, "BEGIN PUBLIC KEY") {
		t.Fatalf("labkey show: %d %s", code, show)
	}
	if code, _, _ := spdlab(t, "labkey", "init", "--key", other, "--name", "Other lab"); code != 0 {
		t.Fatal("second lab")
	}

	if code, o, e := spdlab(t, "report", "--json", gj, "--dut", "ref", "--out", out, "--key", key); code != 0 || !strings.Contains(o, "INCOMPLETE: not a certificate") {
		t.Fatalf("report: %d %s %s", code, o, e)
	}
	code, _, errOut = spdlab(t, "report", "--verify", out)
	if code == 0 || !strings.Contains(errOut, "--lab-key") || !strings.Contains(errOut, "trust anchor") {
		t.Fatalf("verify without a trust anchor: %d %s", code, errOut)
	}
	code, o, errOut := spdlab(t, "report", "--verify", out, "--lab-key", reports.PublicKeyPath(key))
	if code != 0 || !strings.Contains(o, fp) || !strings.Contains(o, "verdict: INCOMPLETE: not a certificate") {
		t.Fatalf("verify with the lab's key: %d %s %s", code, o, errOut)
	}
	code, o, errOut = spdlab(t, "report", "--verify", out, "--lab-key", reports.PublicKeyPath(other))
	if code == 0 || !strings.Contains(o, fp) || !strings.Contains(errOut, "NOT signed by a trusted lab key") {
		t.Fatalf("verify with another lab's key: %d %s %s", code, o, errOut)
	}
	trust := filepath.Join(dir, "trusted.txt")
	os.WriteFile(trust, []byte("# labs\n"+fp+" ACME test lab\n"), 0o644)
	if code, o, e := spdlab(t, "report", "--verify", out, "--trust", trust); code != 0 {
		t.Fatalf("verify with a trust file: %d %s %s", code, o, e)
	}

	// The same report re-signed by the other lab's key, and a changed
	// ginkgo.json, both fail.
	resigned := filepath.Join(dir, "resigned")
	if code, _, e := spdlab(t, "report", "--json", gj, "--dut", "ref", "--out", resigned, "--key", other); code != 0 {
		t.Fatal(e)
	}
	if code, _, e := spdlab(t, "report", "--verify", resigned, "--lab-key", reports.PublicKeyPath(key)); code == 0 || !strings.Contains(e, "NOT signed by a trusted lab key") {
		t.Fatalf("re-signed report: %d %s", code, e)
	}
	b, err := os.ReadFile(filepath.Join(out, "ginkgo.json"))
	if err != nil {
		t.Fatalf("report did not keep the Ginkgo report: %v", err)
	}
	os.WriteFile(filepath.Join(out, "ginkgo.json"), bytes.Replace(b, []byte("passed"), []byte("failed"), 1), 0o644)
	if code, _, e := spdlab(t, "report", "--verify", out, "--lab-key", reports.PublicKeyPath(key)); code == 0 || !strings.Contains(e, "ginkgo.json has digest") {
		t.Fatalf("changed ginkgo.json: %d %s", code, e)
	}
}

func TestReportGolden(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "lab-key.pem")
	if code, _, e := spdlab(t, "labkey", "init", "--key", key, "--name", "ACME test lab"); code != 0 {
		t.Fatal(e)
	}
	gj := filepath.Join(dir, "ginkgo.json")
	ginkgoJSON(t, gj)
	good := filepath.Join(dir, "good")
	if code, _, e := spdlab(t, "report", "--json", gj, "--dut", "ref", "--out", good, "--key", key); code != 0 {
		t.Fatal(e)
	}
	golden := filepath.Join(dir, "golden")
	if code, o, e := spdlab(t, "report", "--golden", golden, "--record", good); code != 0 || !strings.Contains(o, "recorded 1 cases") {
		t.Fatalf("record: %d %s %s", code, o, e)
	}
	if code, o, e := spdlab(t, "report", "--golden", golden, "--compare", good); code != 0 || !strings.Contains(o, "0 regressions") {
		t.Fatalf("compare with itself: %d %s %s", code, o, e)
	}
	b, _ := os.ReadFile(gj)
	os.WriteFile(gj, bytes.Replace(b, []byte(`"State":"passed"`), []byte(`"State":"failed"`), 1), 0o644)
	bad := filepath.Join(dir, "bad")
	spdlab(t, "report", "--json", gj, "--dut", "ref", "--out", bad, "--key", key)
	code, o, e := spdlab(t, "report", "--golden", golden, "--compare", bad)
	if code == 0 || !strings.Contains(o, "TC-APP-001: changed: verdict failed, golden passed") || !strings.Contains(e, "differs from the golden evidence") {
		t.Fatalf("compare a regression: %d %s %s", code, o, e)
	}
	if code, _, _ := spdlab(t, "report", "--golden", golden); code != 2 {
		t.Fatal("--golden without --record or --compare is not a usage error")
	}
}
