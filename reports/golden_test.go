package reports

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGolden(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "golden")
	good := Build(RunInfo{CaseCount: 3}, runTinyOnce(t, "transcripts-pass"))
	if err := RecordGolden(dir, good); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "TC-PIN-001.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"verdict passed\n", "step reset-cold -> ATR\n", "step SELECT 00 A4 04 00 -> 9000\n",
		"step VERIFY 00 20 00 80 -> 63C2\n", "step INS B0 00 B0 00 00 -> error\n", "step PAY 80 60 00 00 -> 6982\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("golden file lacks %q:\n%s", want, b)
		}
	}

	// A run of the same device: nothing differs, even where data differs
	// by design (a signature, a balance read at another time).
	again := Build(RunInfo{CaseCount: 3}, runTiny(t, "transcripts-pass"))
	for i := range again.Cases {
		for j, tr := range again.Cases[i].Transcript {
			again.Cases[i].Transcript[j] = strings.ReplaceAll(tr, "0000000000002710", "00000000000026AC")
		}
	}
	diffs, err := CompareGolden(dir, again)
	if err != nil || len(diffs) != 0 {
		t.Fatalf("same device: %v %v", diffs, err)
	}

	// A regression: PAY before VERIFY now succeeds.
	bad := Build(RunInfo{CaseCount: 3}, runTinyOnce(t, "transcripts-fail"))
	diffs, err = CompareGolden(dir, bad)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(diffs))
	for i, d := range diffs {
		got[i] = d.String()
	}
	want := []string{
		"TC-PIN-001: changed: verdict failed, golden passed",
		`TC-PIN-001: changed: step 7 is "PAY 80 60 00 00 -> 9000", golden "PAY 80 60 00 00 -> 6982" (7 steps, golden 7)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("diffs\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(Regressions(diffs)) != 2 {
		t.Fatalf("regressions %v", Regressions(diffs))
	}

	// A case gone from the run and one without golden evidence.
	os.Rename(filepath.Join(dir, "TC-BIO-001.golden"), filepath.Join(dir, "TC-ZZZ-001.golden"))
	diffs, err = CompareGolden(dir, again)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) != 2 || diffs[0].Case != "TC-BIO-001" || diffs[0].Kind != GoldenNew || diffs[1].Case != "TC-ZZZ-001" || diffs[1].Kind != GoldenMissing {
		t.Fatalf("diffs %v", diffs)
	}
	if r := Regressions(diffs); len(r) != 1 || r[0].Kind != GoldenMissing {
		t.Fatalf("regressions %v", r)
	}

	// A run that recorded no transcript cannot confirm the steps.
	for i := range again.Cases {
		again.Cases[i].Transcript = nil
	}
	diffs, _ = CompareGolden(dir, again)
	var unchecked int
	for _, d := range diffs {
		if d.Kind == GoldenUnchecked {
			unchecked++
		}
	}
	if unchecked != 2 {
		t.Fatalf("diffs %v, want the two cases with golden steps unchecked", diffs)
	}

	if _, err := CompareGolden(filepath.Join(t.TempDir(), "none"), good); err == nil || !strings.Contains(err.Error(), "record it first") {
		t.Fatalf("no golden directory: %v", err)
	}
}

func TestParseGolden(t *testing.T) {
	for _, bad := range []string{"", "step X -> 9000\n", "verdict maybe\n", "verdict passed\nverdict failed\n", "verdict passed\nnoise\n"} {
		if _, err := ParseGolden([]byte(bad)); err == nil {
			t.Errorf("golden %q accepted", bad)
		}
	}
}
