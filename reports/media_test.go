package reports

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tool finds an outside program the report's evidence is checked with,
// failing in CI (make deps installs it) and skipping elsewhere.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("reports: %s is not installed; `make deps` installs it (Debian package %s)", name, pkg)
	}
	t.Skipf("%s is not installed: run `make deps` (as root) or `apt-get install %s`", name, pkg)
	return ""
}

// readWith decodes a PNG with zbarimg (QR, Code 128) or dmtxread (Data
// Matrix): decoders that share no code with reference/medium's gozxing.
func readWith(t *testing.T, format, path string) string {
	t.Helper()
	var cmd *exec.Cmd
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if format == "DataMatrix" {
		cmd = exec.CommandContext(ctx, tool(t, "dmtxread", "dmtx-utils"), "-N1", path)
	} else {
		cmd = exec.CommandContext(ctx, tool(t, "zbarimg", "zbar-tools"), "-q", "--raw", path)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Errorf("%s %s: %v\n%s", cmd.Path, filepath.Base(path), err, errOut.String())
	}
	return strings.TrimRight(out.String(), "\n")
}

// The coded media a run made are files of the report directory, signed by
// its manifest, read back by outside decoders to the text each case made,
// and shown in report.html; an image that does not encode what its case
// claims is flagged.
func TestMediaInReport(t *testing.T) {
	key := newKey(t)
	dir := filepath.Join(t.TempDir(), "run")
	c, err := Write(dir, RunInfo{DUT: "ref", CaseCount: 3}, runTinyOnce(t, "transcripts-fail"), key)
	if err != nil {
		t.Fatal(err)
	}
	trust := Trust{}
	trust.Add(&key.PublicKey, "test lab")
	m, err := Verify(dir, trust)
	if err != nil {
		t.Fatalf("the report with its media does not verify: %v", err)
	}
	signed := map[string]string{}
	for _, f := range m.Files {
		signed[f.Name] = f.SHA256
	}
	back, err := ReadCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	media := map[string]Medium{}
	for _, cs := range back.Cases {
		for _, md := range cs.Media {
			media[cs.ID+" "+md.Name] = md
		}
	}
	if len(media) != 4 {
		t.Fatalf("certificate.json lists media %v, want the 3 of TC-PAY-001 and the forged one of TC-PIN-001", media)
	}
	page, err := os.ReadFile(filepath.Join(dir, FileHTML))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range sampleMedia {
		md, ok := media["TC-PAY-001 "+want.name]
		if !ok {
			t.Errorf("no medium %q for TC-PAY-001", want.name)
			continue
		}
		if !md.Matches() || md.Read != want.text || md.Format != want.format.String() {
			t.Errorf("%s: read %q as %s (%s), want %q as %s", md.File, md.Read, md.ReadFormat, md.ReadError, want.text, want.format)
		}
		if signed[md.File] == "" || signed[md.File] != md.SHA256 {
			t.Errorf("%s: manifest digest %q, certificate %q", md.File, signed[md.File], md.SHA256)
		}
		if got := readWith(t, md.Format, filepath.Join(dir, md.File)); got != want.text {
			t.Errorf("%s: an outside decoder reads %q, want %q", md.File, got, want.text)
		}
		if !bytes.Contains(page, []byte(`href="`+md.File+`"`)) {
			t.Errorf("report.html does not link %s", md.File)
		}
	}
	if mc := media["TC-PAY-001 merchant code"]; !strings.Contains(mc.Meaning, `"name": "Optik Cafe"`) {
		t.Errorf("the merchant code's meaning is %q", mc.Meaning)
	}
	forged := media["TC-PIN-001 forged receipt"]
	if forged.Matches() || forged.Read != "SPDLAB RECEIPT 9999" {
		t.Errorf("an image that does not encode its text: read %q, matches %v", forged.Read, forged.Matches())
	}
	if got := readWith(t, "QR", filepath.Join(dir, forged.File)); got != "SPDLAB RECEIPT 9999" {
		t.Errorf("outside decoder reads the forged receipt as %q", got)
	}
	if !bytes.Contains(page, []byte("read back as QR text that differs from what the case made")) {
		t.Error("report.html does not flag the medium that differs from its case's text")
	}
	// The images are embedded, so that report.html stands alone.
	if n := bytes.Count(page, []byte(`<img src="data:image/png;base64,`)); n != 4 {
		t.Errorf("report.html embeds %d images, want 4", n)
	}
	if c.Verdict != VerdictNotCertified {
		t.Errorf("verdict %s", c.Verdict)
	}
}

// Round-trip times and optical rates are summed over the run.
func TestRoundTripsAndOpticalRates(t *testing.T) {
	c := Build(RunInfo{CaseCount: 3}, runTinyOnce(t, "transcripts-pass"))
	rt := map[string]RoundTrip{}
	n := 0
	for _, r := range c.RoundTrips() {
		rt[r.Command] = r
		n += r.N
	}
	// 6 exchanges with a response in TC-PAY-001, 5 in TC-PIN-001: the
	// resets and the exchange the link failed are no round trips.
	if n != 11 {
		t.Errorf("%d round trips, want 11", n)
	}
	// GET DATA: twice in each of two cases, 1.2 and 1.1 ms.
	if g := rt["GET DATA"]; g.N != 4 || g.Cases != 2 || g.Min != 1100*time.Microsecond || g.Max != 1200*time.Microsecond {
		t.Errorf("GET DATA round trips %+v", g)
	}
	// PAY: 2 ms in TC-PAY-001; the failed link read and the reset are
	// not exchanges with a response and are left out.
	if p := rt["PAY"]; p.N != 2 || p.Max != 14*time.Millisecond {
		t.Errorf("PAY round trips %+v", p)
	}
	got := map[string]OpticalSummary{}
	for _, s := range c.OpticalRates() {
		got[s.Format+" "+string(rune('0'+s.Level))] = s
	}
	if s := got["DataMatrix 1"]; s.Read != 2 || s.Tried != 4 || s.Percent() != "50 %" || len(s.Failed) != 2 {
		t.Errorf("DataMatrix level 1: %+v", s)
	}
	if s := got["QR 0"]; s.Rate() != 100 {
		t.Errorf("QR level 0: %+v", s)
	}
}

// A level's faults spread over several media are each named once in the
// summary, in the order first met, and its counts are the sum.
func TestOpticalRatesNameEveryFaultMet(t *testing.T) {
	c := Certificate{Cases: []Case{{Optical: []OpticalRate{
		{Medium: "token", Format: "QR", Level: 1, Read: 1, Tried: 1, Faults: []string{"rotation 4"}},
		{Medium: "transfer", Format: "QR", Level: 1, Read: 1, Tried: 2, Faults: []string{"noise 15", "rotation 4"}, Failed: []string{"noise 15"}},
	}}, {Optical: []OpticalRate{
		{Medium: "merchant code", Format: "QR", Level: 1, Read: 1, Tried: 1, Faults: []string{"blur 1"}},
	}}}}
	s := c.OpticalRates()
	if len(s) != 1 || s[0].Read != 3 || s[0].Tried != 4 || strings.Join(s[0].Faults, ", ") != "rotation 4, noise 15, blur 1" ||
		strings.Join(s[0].Failed, ", ") != "transfer: noise 15" {
		t.Fatalf("%+v", s)
	}
}
