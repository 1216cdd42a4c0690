package jobs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reports"
)

// shardReport writes the signed report of shard 1/2 of a small suite to
// dir, as certify --shard writes it; with failing, one of its cases fails.
func shardReport(t *testing.T, dir string, failing bool) {
	t.Helper()
	s := reports.Shard{Index: 1, Count: 2}
	ids := []string{"TC-PAY-001", "TC-PAY-002", "TC-PAY-003", "TC-PAY-004", "TC-PAY-005", "TC-PAY-006"}
	r := types.Report{SuiteDescription: "spdlab conformance", SuiteSucceeded: !failing}
	failed := false
	for _, id := range ids {
		spec := types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeText: "case " + id, LeafNodeLabels: []string{id}, State: types.SpecStatePassed}
		switch {
		case !s.Has(id):
			spec.State, spec.Failure.Message = types.SpecStateSkipped, s.SkipReason(id)
		case failing && !failed:
			spec.State, spec.Failure.Message, failed = types.SpecStateFailed, "expected 6982, got 9000", true
		}
		r.SpecReports = append(r.SpecReports, spec)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	info := reports.RunInfo{DUT: "pcsc:Reader", Shard: s.String(), SuiteVersion: "2", SpecVersion: "1", CaseCount: len(ids),
		Lab: reports.Lab{Name: "test lab"}}
	c, err := reports.Write(dir, info, []types.Report{r}, key)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{false: reports.VerdictShard, true: reports.VerdictNotCertified}[failing]; c.Verdict != want {
		t.Fatalf("shard report verdict %q, want %q", c.Verdict, want)
	}
}

// The LAVA job's run steps, run by sh with stand-ins for spdlab (certify
// leaves a real signed shard report in --out and exits 1, as a shard
// does), lava-test-case (runs its --shell command and records pass or
// fail) and curl: the shard's test cases pass for a shard whose cases
// passed, and spdlab-shard-no-failure fails for a shard with a failed case.
func TestLAVAJobStepsJudgeTheShardReport(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	docs := load(t, "lava-shard.yaml")
	var steps []string
	for _, a := range docs[0]["actions"].([]any) {
		if test, ok := a.(map[string]any)["test"]; ok {
			for _, s := range get(t, test, "definitions", 0, "repository", "run", "steps").([]any) {
				steps = append(steps, s.(string))
			}
		}
	}
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("failing=%v", failing), func(t *testing.T) {
			dir := t.TempDir()
			fixture := filepath.Join(dir, "fixture")
			shardReport(t, fixture, failing)
			bin := filepath.Join(dir, "bin")
			os.Mkdir(bin, 0o755)
			stand := map[string]string{
				"spdlab": `case "$1" in
ics) exit 0 ;;
certify) while [ $# -gt 0 ]; do [ "$1" = --out ] && cp -r "$FIXTURE" "$2"; shift; done; exit 1 ;;
esac
exit 2
`,
				"lava-test-case": `name=$1; shift; [ "$1" = --shell ] && shift
if "$@"; then echo "$name pass" >>"$RESULTS"; else echo "$name fail" >>"$RESULTS"; fi
`,
				"curl": "exit 0\n",
			}
			for name, body := range stand {
				if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			work := filepath.Join(dir, "work")
			os.Mkdir(work, 0o755)
			results := filepath.Join(dir, "results")
			cmd := exec.Command("sh", "-e", "-c", strings.Join(steps, "\n"))
			cmd.Dir = work
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FIXTURE="+fixture, "RESULTS="+results,
				"SHARD=1", "SHARDS=2", "DUT=pcsc:Reader", "ICS=ics.yaml", "LAB_KEY=lab-key.pem", "RESULTS_URL=http://127.0.0.1:1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("the job's steps: %v\n%s", err, out)
			}
			got, _ := os.ReadFile(results)
			want := "spdlab-shard-report pass\nspdlab-shard-no-failure pass\nspdlab-shard-upload pass\n"
			if failing {
				want = strings.Replace(want, "no-failure pass", "no-failure fail", 1)
			}
			if string(got) != want {
				t.Errorf("LAVA test cases:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
