package reports

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

func spec(text string, state types.SpecState, msg string, labels ...string) types.SpecReport {
	return types.SpecReport{
		LeafNodeType:   types.NodeTypeIt,
		LeafNodeText:   text,
		LeafNodeLabels: labels,
		State:          state,
		Failure:        types.Failure{Message: msg},
		RunTime:        time.Millisecond,
	}
}

func sampleReport() []types.Report {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	return []types.Report{{
		SuiteDescription: "spdlab conformance",
		SuiteSucceeded:   false,
		StartTime:        now,
		EndTime:          now.Add(time.Minute),
		SpecReports: types.SpecReports{
			spec("MUST deduct the amount from the balance", types.SpecStatePassed, "", "TC-PAY-001", "SPD-PAY-1", "C2", "C7"),
			spec("MUST refuse a payment above the balance", types.SpecStateFailed, "expected 6985, got 9000", "TC-PAY-002", "SPD-PAY-2", "C2"),
			spec("MUST match the enrolled template", types.SpecStateSkipped, "device has no biometric sensor", "TC-VER-004", "SPD-VER-4", "C33"),
			spec("helper spec without an ID", types.SpecStatePassed, ""),
		},
	}}
}

func TestBuild(t *testing.T) {
	c := Build("ref", sampleReport())
	if len(c.Cases) != 3 {
		t.Fatalf("cases = %d, want 3 (the spec without an ID is not a case)", len(c.Cases))
	}
	if c.Passed != 1 || c.Failed != 1 || c.NotApplic != 1 || c.Certified {
		t.Fatalf("counts %d/%d/%d certified=%v", c.Passed, c.Failed, c.NotApplic, c.Certified)
	}
	if c.Claims["C2"] != Failed || c.Claims["C7"] != Passed || c.Claims["C33"] != NotApplicable {
		t.Fatalf("claims = %v", c.Claims)
	}
	if got := c.Cases[2]; got.ID != "TC-VER-004" || got.Reason != "device has no biometric sensor" {
		t.Fatalf("skipped case = %+v", got)
	}
	if c.Summary() != "NOT CERTIFIED: 1 passed, 1 failed, 1 not applicable" {
		t.Fatalf("summary %q", c.Summary())
	}
}

func TestWriteAndVerify(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := Write(dir, "usb-emu", sampleReport(), key)
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(dir, FileHTML))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NOT CERTIFIED", "TC-PAY-002", "expected 6985, got 9000", "usb-emu", "not applicable"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	junit, err := os.ReadFile(filepath.Join(dir, FileJUnit))
	if err != nil || !strings.Contains(string(junit), "<testsuites") {
		t.Fatalf("junit.xml: %v %.100s", err, junit)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Certified != c.Certified || len(m.Files) != 3 {
		t.Fatalf("manifest %+v", m)
	}
	if err := VerifyManifest(dir, m, &key.PublicKey); err != nil {
		t.Fatalf("fresh manifest does not verify: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := VerifyManifest(dir, m, &other.PublicKey); !errors.Is(err, ErrManifestMismatch) {
		t.Fatalf("untrusted key accepted: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileHTML), append(html, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := VerifyManifest(dir, m, nil); !errors.Is(err, ErrManifestMismatch) {
		t.Fatalf("tampered report accepted: %v", err)
	}
	m.Certified = !m.Certified
	os.WriteFile(filepath.Join(dir, FileHTML), html, 0o644)
	if err := VerifyManifest(dir, m, nil); !errors.Is(err, ErrManifestMismatch) {
		t.Fatalf("flipped verdict accepted: %v", err)
	}
}
