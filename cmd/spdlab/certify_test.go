package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spdlab/spdlab/reports"
)

// A run whose set-up fails tests nothing and changes nothing: an earlier
// report in --out still verifies, with its trace (in --out, or at --trace
// FILE) as it was and no temporary file left beside it, and a directory
// that was not there is not made.
func TestCertifySetUpFailureLeavesOut(t *testing.T) {
	dir := t.TempDir()
	key := labKeyIn(t, dir)
	out := filepath.Join(dir, "out")
	first := certifyCLI(t, out, nil, "--dut", "ref", "--label-filter", "TC-APP-001", "--key", key)
	if first.cert.Verdict != reports.VerdictPartial {
		t.Fatalf("the earlier run: exit %d, verdict %q\n%s%s", first.code, first.cert.Verdict, first.stdout, first.stderr)
	}
	before := dirDigests(t, out)
	if _, ok := before["trace.pcapng"]; !ok {
		t.Fatalf("the earlier run wrote no trace.pcapng: %v", before)
	}
	custom := filepath.Join(dir, "custom.pcapng")
	if err := os.WriteFile(custom, []byte("an earlier trace"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A serial port that is not there: the probe fails on every machine.
	failing := []string{"certify", "--dut", "serial:" + filepath.Join(dir, "no-such-port"), "--ics", "../../scenarios/ics/reference.yaml", "--key", key}
	for _, extra := range [][]string{nil, {"--trace", custom}} {
		code, _, stderr := spdlab(t, append(append(failing, "--out", out), extra...)...)
		if code != 1 || !strings.Contains(stderr, "nothing was tested") {
			t.Errorf("certify %v: exit %d, %q; want exit 1 and a set-up failure", extra, code, stderr)
		}
		if after := dirDigests(t, out); !maps.Equal(before, after) {
			t.Errorf("certify %v changed --out:\nbefore %v\nafter  %v", extra, before, after)
		}
	}
	if b, err := os.ReadFile(custom); err != nil || string(b) != "an earlier trace" {
		t.Errorf("--trace %s: %q, %v; want it as it was", custom, b, err)
	}
	if code, stdout, stderr := spdlab(t, "report", "--verify", out, "--lab-key", reports.PublicKeyPath(key)); code != 0 {
		t.Errorf("the earlier report no longer verifies: exit %d\n%s%s", code, stdout, stderr)
	}
	fresh := filepath.Join(dir, "new", "out")
	if code, _, stderr := spdlab(t, append(failing, "--out", fresh)...); code != 1 {
		t.Errorf("certify --out %s: exit %d, %q; want exit 1", fresh, code, stderr)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"custom.pcapng", "lab-key.pem", "lab-key.pub.pem", "out"}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("%s holds %v after the failed runs, want %v (no directory made, no temporary file left)", dir, names, want)
	}
}

// A report written over an earlier one in --out replaces it whole: the
// earlier run's divergences (certify --against) do not stay to be signed
// as the new run's. A file in --out that no report writes (the lab's
// notes) stops certify and report --json before anything there changes.
func TestCertifyReplacesEarlierReport(t *testing.T) {
	dir := t.TempDir()
	key := labKeyIn(t, dir)
	out := filepath.Join(dir, "out")
	divergences := filepath.Join(out, reports.FileDivergences)
	certifyCLI(t, out, nil, "--dut", "ref", "--against", "ref", "--label-filter", "TC-APP-001", "--key", key)
	if _, err := os.Stat(divergences); err != nil {
		t.Fatalf("the run with --against wrote no %s: %v", reports.FileDivergences, err)
	}
	second := certifyCLI(t, out, nil, "--dut", "ref", "--label-filter", "TC-APP-001", "--key", key)
	if second.cert.Verdict != reports.VerdictPartial {
		t.Fatalf("the second run: exit %d, verdict %q\n%s%s", second.code, second.cert.Verdict, second.stdout, second.stderr)
	}
	if _, err := os.Stat(divergences); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the earlier run's %s is still in --out, signed with the second run's report (%v)", reports.FileDivergences, err)
	}
	if code, stdout, stderr := spdlab(t, "report", "--verify", out, "--lab-key", reports.PublicKeyPath(key)); code != 0 {
		t.Errorf("the second report does not verify: exit %d\n%s%s", code, stdout, stderr)
	}
	if err := os.WriteFile(filepath.Join(out, "notes.txt"), []byte("sample 2 was dropped\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := dirDigests(t, out)
	for _, args := range [][]string{
		{"certify", "--dut", "ref", "--key", key, "--out", out},
		{"report", "--json", filepath.Join(out, reports.FileGinkgo), "--dut", "ref", "--key", key, "--out", out},
	} {
		code, _, stderr := spdlab(t, args...)
		if code != 1 || !strings.Contains(stderr, "notes.txt") {
			t.Errorf("spdlab %s with notes.txt in --out: exit %d, %q; want exit 1 naming the file", args[0], code, stderr)
		}
		if after := dirDigests(t, out); !maps.Equal(before, after) {
			t.Errorf("spdlab %s changed --out:\nbefore %v\nafter  %v", args[0], before, after)
		}
	}
}

// labKeyIn makes a lab key in dir (lab-key.pem, lab-key.pub.pem) and
// returns its path.
func labKeyIn(t *testing.T, dir string) string {
	t.Helper()
	key := filepath.Join(dir, "lab-key.pem")
	if code, _, stderr := spdlab(t, "labkey", "init", "--key", key, "--name", "test lab of "+t.Name()); code != 0 {
		t.Fatal(stderr)
	}
	return key
}

// dirDigests returns the start of the SHA-256 of each file in dir (hidden
// ones too) by name, in hex.
func dirDigests(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]string{}
	for _, e := range entries {
		if e.IsDir() {
			d[e.Name()+"/"] = "directory"
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		d[e.Name()] = fmt.Sprintf("%x", sum[:6])
	}
	return d
}
