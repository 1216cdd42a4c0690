package spdlab_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
)

// spdlabBuild is the spdlab binary the tests of this package share: the
// catalogue's and the labels' (spdlab cases) and scripts/scenarios.sh's.
// Each made its own before (go run twice, then the script's go build), and
// linking spdlab takes 3-5 s of CPU after a change to any package it uses.
// TestMain removes its directory.
var spdlabBuild struct {
	once      sync.Once
	dir, path string
	err       error
}

// spdlabBinary returns the shared spdlab binary: the one named by
// $SPDLAB_TEST_BIN, which make test builds once for the tests of its run,
// else one built by the first caller through scripts/scenarios.sh's own
// build step (SPDLAB naming a file that does not exist yet, no DUT to run),
// so that the script's build is tested as a run without SPDLAB uses it.
func spdlabBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("SPDLAB_TEST_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("SPDLAB_TEST_BIN: %v", err)
		}
		return bin
	}
	spdlabBuild.once.Do(func() {
		if spdlabBuild.dir, spdlabBuild.err = os.MkdirTemp("", "spdlab-root-test-"); spdlabBuild.err != nil {
			return
		}
		path := filepath.Join(spdlabBuild.dir, "spdlab")
		cmd := exec.Command("bash", "scripts/scenarios.sh")
		cmd.Env = append(os.Environ(), "SPDLAB="+path, "OUT="+filepath.Join(spdlabBuild.dir, "out"))
		out, err := cmd.CombinedOutput()
		if err == nil {
			_, err = os.Stat(path)
		}
		if err != nil {
			spdlabBuild.err = fmt.Errorf("scripts/scenarios.sh building spdlab into SPDLAB=%s: %v\n%s", path, err, out)
			return
		}
		spdlabBuild.path = path
	})
	if spdlabBuild.err != nil {
		t.Fatal(spdlabBuild.err)
	}
	return spdlabBuild.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if spdlabBuild.dir != "" {
		os.RemoveAll(spdlabBuild.dir)
	}
	os.Exit(code)
}

// `make test-scenarios` (scripts/scenarios.sh) writes each DUT's report under
// OUT/reports/<dut> (never relative to the suite's package directory) and
// prints the verdict each certificate states, failing unless every DUT is
// CERTIFIED. One case on two DUTs keeps it short: a filtered run on the
// reference device is a PARTIAL RUN, and the stale-balance mutant fails the
// invariant case (NOT CERTIFIED). It runs the spdlab binary the package's
// tests share, as make test-scenarios runs the one make build links.
func TestScenariosScriptReportsEachVerdict(t *testing.T) {
	if testing.Short() {
		t.Skip("builds spdlab and certifies two DUTs")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "scripts/scenarios.sh", "ref", "faulty:stale-balance")
	cmd.Env = append(os.Environ(), "OUT="+out, "SCENARIO_ARGS=--label-filter=TC-INV-001", "SPDLAB="+spdlabBinary(t))
	got, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("scenarios.sh must exit non-zero when a DUT is not CERTIFIED; err=%v\n%s", err, got)
	}
	for _, want := range []string{
		`(?m)^== ref +PARTIAL RUN: not a certificate +passed: 1, failed: 0, not_applicable: 0; [0-9.]+ s \(exit [0-9]+\)$`,
		`(?m)^== faulty:stale-balance +NOT CERTIFIED +passed: 0, failed: 1, not_applicable: 0; [0-9.]+ s \(exit [0-9]+\)$`,
		`(?m)^== 2 DUTs in [0-9.]+ s wall time; reports in ` + regexp.QuoteMeta(out) + `/reports$`,
	} {
		if !regexp.MustCompile(want).Match(got) {
			t.Errorf("output lacks %s:\n%s", want, got)
		}
	}
	for dut, verdict := range map[string]string{"ref": "PARTIAL RUN: not a certificate", "faulty:stale-balance": "NOT CERTIFIED"} {
		b, err := os.ReadFile(filepath.Join(out, "reports", dut, "certificate.json"))
		if err != nil {
			t.Fatalf("%s: %v", dut, err)
		}
		var cert struct{ Verdict string }
		if err := json.Unmarshal(b, &cert); err != nil || cert.Verdict != verdict {
			t.Errorf("%s: certificate verdict %q (%v), want %q", dut, cert.Verdict, err, verdict)
		}
		for _, f := range []string{"report.html", "junit.xml", "manifest.json"} {
			if _, err := os.Stat(filepath.Join(out, "reports", dut, f)); err != nil {
				t.Errorf("%s: %v", dut, err)
			}
		}
	}
	if _, err := os.Stat("scenarios/out"); err == nil {
		t.Error("scenarios/out exists: a report was written relative to the suite's package directory")
	}
}
