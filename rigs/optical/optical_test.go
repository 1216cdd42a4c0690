package optical

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
)

// mediumText is the text of a stored-value medium as a device shows it. Its
// signature is fixed bytes of the right shape (the optics do not check it),
// so that every run renders the same symbols and the measured limits
// repeat.
func mediumText(t testing.TB) string {
	t.Helper()
	issued := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	signed, err := medium.SignedPart(medium.ServiceInfo{
		Kind: medium.KindStoredValue, AID: []byte{0xF0, 0x53, 0x50, 0x44, 0x4C, 0x41, 0x42, 0x01},
		DeviceID: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Token: []byte("tok-4F9A2C77"), Balance: 250000, Pending: 1200,
		Uses: 9, ATC: 118, Currency: 156, Expiry: issued.Add(24 * time.Hour), Issued: issued,
		PayeeNonce: []byte{0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF, 0x00, 0x11}, PayerID: []byte("user-000042"),
	})
	if err != nil {
		t.Fatal(err)
	}
	sig := []byte{0x30, 0x45, 0x02, 0x20}
	rng := mrand.New(mrand.NewPCG(1, 2))
	for range 32 {
		sig = append(sig, byte(rng.Uint32()))
	}
	sig = append(sig, 0x02, 0x21, 0x00)
	for range 32 {
		sig = append(sig, byte(rng.Uint32()))
	}
	env, err := medium.Seal(signed, sig)
	if err != nil {
		t.Fatal(err)
	}
	return medium.Text(env)
}

const reference = "SPD-0102030405060708-42"

// renderScale is pixels per module of the codes under test: a medium's QR
// code of 65 modules shown 414 pixels wide, as on a phone screen.
const renderScale = 6

type shown struct {
	format medium.Format
	text   string
	img    image.Image
}

func samples(t testing.TB) []shown {
	text := mediumText(t)
	var out []shown
	for _, s := range []struct {
		f    medium.Format
		text string
	}{{medium.QR, text}, {medium.DataMatrix, text}, {medium.Code128, reference}} {
		img, err := Render(s.text, s.f, renderScale)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, shown{s.f, s.text, img})
	}
	return out
}

// sensible are strengths a rig meets in practice: every format must read
// through each of them.
var sensible = []Fault{
	{Kind: Blur, Strength: 1.5},
	{Kind: Rotation, Strength: 7},
	{Kind: Rotation, Strength: -10},
	{Kind: Noise, Strength: 30, Seed: 1},
	{Kind: LowContrast, Strength: 0.25},
	{Kind: Perspective, Strength: 0.06},
}

func TestEveryFormatReadsThroughSensibleFaults(t *testing.T) {
	for _, s := range samples(t) {
		for _, f := range sensible {
			t.Run(s.format.String()+"/"+f.String(), func(t *testing.T) {
				img, err := f.Apply(s.img)
				if err != nil {
					t.Fatal(err)
				}
				text, format, err := Decode(img)
				if err != nil {
					t.Fatal(err)
				}
				if text != s.text || format != s.format {
					t.Fatalf("read %v %q, want %v %q", format, text, s.format, s.text)
				}
			})
		}
	}
}

// TestDecodeAsReadsWhatDecodeReads: a scanner set to one format reads
// every image Decode reads, its smoothing retry included (noise of sigma
// 90 reads only after smoothing), and nothing of another format.
func TestDecodeAsReadsWhatDecodeReads(t *testing.T) {
	for _, s := range samples(t) {
		for _, f := range append(sensible, Fault{Kind: Noise, Strength: 90, Seed: 7}, Fault{Kind: Blur, Strength: 6}) {
			img, err := f.Apply(s.img)
			if err != nil {
				t.Fatal(err)
			}
			text, format, err := Decode(img)
			read := err == nil && text == s.text && format == s.format
			got, err := DecodeAs(img, s.format)
			if readAs := err == nil && got == s.text; readAs != read {
				t.Errorf("%v %v: Decode read %v, DecodeAs %v (%v)", s.format, f, read, readAs, err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "optical: medium: no "+s.format.String()) {
				t.Errorf("%v %v: %v", s.format, f, err)
			}
		}
		for _, other := range medium.Formats {
			if other == s.format {
				continue
			}
			if got, err := DecodeAs(s.img, other); err == nil {
				t.Errorf("%v image read as %v: %q", s.format, other, got)
			}
		}
	}
}

// TestFaultLimits sweeps each fault's strength and reports, for each
// format, the first strength at which it no longer reads; the package
// documentation quotes these figures. It checks that the sweep's first
// strength reads and its last does not, so the limits stay inside it.
func TestFaultLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("sweep of fault strengths; run without -short")
	}
	sweeps := []struct {
		kind      FaultKind
		strengths []float64
		// mustFailLast: the strongest step defeats every format.
		mustFailLast bool
	}{
		{Blur, []float64{1, 1.5, 2, 2.5, 3, 4, 6}, true},
		{Rotation, []float64{5, 10, 15, 20, 30, 45}, false},
		{Noise, []float64{20, 40, 60, 90, 120, 200}, false},
		{LowContrast, []float64{0.5, 0.25, 0.15, 0.1, 0.05}, true},
		{Perspective, []float64{0.05, 0.1, 0.15, 0.2, 0.25, 0.35}, false},
	}
	ss := samples(t)
	for _, sw := range sweeps {
		for _, s := range ss {
			first := -1.0
			for _, strength := range sw.strengths {
				img, err := Fault{Kind: sw.kind, Strength: strength, Seed: 7}.Apply(s.img)
				if err != nil {
					t.Fatal(err)
				}
				text, _, err := Decode(img)
				ok := err == nil && text == s.text
				if err == nil && text != s.text {
					t.Fatalf("%v %v %g: misread %q", sw.kind, s.format, strength, text)
				}
				if !ok {
					first = strength
					break
				}
			}
			if first == sw.strengths[0] {
				t.Errorf("%v: %v fails already at %g", sw.kind, s.format, first)
			}
			if sw.mustFailLast && first < 0 {
				t.Errorf("%v: %v still reads at %g", sw.kind, s.format, sw.strengths[len(sw.strengths)-1])
			}
			if first < 0 {
				t.Logf("%-12v %-10v reads through the whole sweep (up to %g)", sw.kind, s.format, sw.strengths[len(sw.strengths)-1])
			} else {
				t.Logf("%-12v %-10v first fails at %g", sw.kind, s.format, first)
			}
		}
	}
}

func TestFaultsAreDeterministic(t *testing.T) {
	img, err := Render("repeatable", medium.QR, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(sensible, Fault{Kind: Noise, Strength: 50, Seed: 99}) {
		a, err := f.Apply(img)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := f.Apply(img)
		if !bytes.Equal(a.Pix, b.Pix) {
			t.Fatalf("%v differs between runs", f)
		}
	}
	a, _ := Fault{Kind: Noise, Strength: 50, Seed: 1}.Apply(img)
	b, _ := Fault{Kind: Noise, Strength: 50, Seed: 2}.Apply(img)
	if bytes.Equal(a.Pix, b.Pix) {
		t.Fatal("noise ignores its seed")
	}
}

func TestFaultErrors(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	for _, f := range []Fault{{Kind: Blur, Strength: -1}, {Kind: Noise, Strength: -1},
		{Kind: LowContrast, Strength: 2}, {Kind: Perspective, Strength: 0.5}, {Kind: 42}} {
		if _, err := f.Apply(img); err == nil || !strings.HasPrefix(err.Error(), "optical: ") {
			t.Errorf("%v: %v", f, err)
		}
	}
	if Rotation.String() != "rotation" || FaultKind(42).String() != "FaultKind(42)" {
		t.Error("FaultKind.String")
	}
}

func TestDecodeFiles(t *testing.T) {
	dir := t.TempDir()
	text := mediumText(t)
	img, err := Render(text, medium.QR, 3)
	if err != nil {
		t.Fatal(err)
	}
	pngPath := filepath.Join(dir, "medium.png")
	if err := WritePNGFile(pngPath, img); err != nil {
		t.Fatal(err)
	}
	// A camera frame: JPEG of a slightly rotated, noisy capture.
	frame, _ := Fault{Kind: Rotation, Strength: 3}.Apply(img)
	frame, _ = Fault{Kind: Noise, Strength: 10, Seed: 3}.Apply(frame)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, frame, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	jpgPath := filepath.Join(dir, "frame.jpg")
	if err := os.WriteFile(jpgPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{pngPath, jpgPath} {
		got, f, err := DecodeFile(p)
		if err != nil || got != text || f != medium.QR {
			t.Fatalf("%s: %v %q %v", p, f, got, err)
		}
	}
	if _, _, err := DecodeFile(filepath.Join(dir, "absent.png")); err == nil {
		t.Fatal("absent file decoded")
	}
	junk := filepath.Join(dir, "junk.png")
	os.WriteFile(junk, []byte("not an image"), 0o644)
	if _, _, err := DecodeFile(junk); err == nil || !strings.Contains(err.Error(), "optical: reading image") {
		t.Fatalf("junk: %v", err)
	}
}

func TestScreenAndCamera(t *testing.T) {
	dir := t.TempDir()
	screen := &Screen{Dir: dir, Name: "shown.png"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, err := merchant.Encode(merchant.Order{
		Initiation: merchant.Dynamic, Accounts: []merchant.AccountTemplate{{ID: "26", GUID: merchant.GUID, Account: "ACC-7"}},
		Category: "5814", Currency: "156", Amount: "12.00", Country: "CN", Name: "SPDLAB CAFE", City: "SHANGHAI",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := screen.ShowText(ctx, code, medium.QR, 3); err != nil {
		t.Fatal(err)
	}
	// The camera looks at the screen's directory, as a loopback rig does.
	cam := &Camera{Dir: dir, Poll: 5 * time.Millisecond}
	got, f, err := cam.Scan(ctx)
	if err != nil || got != code || f != medium.QR {
		t.Fatalf("Scan = %v %q %v", f, got, err)
	}
	// No new frame: Capture gives up when the context ends.
	short, cancelShort := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancelShort()
	if _, err := cam.Capture(short); !errors.Is(err, ErrNoFrame) {
		t.Fatalf("Capture without a new frame: %v", err)
	}
	missing := &Camera{Dir: filepath.Join(dir, "absent")}
	if _, err := missing.Capture(ctx); err == nil || !strings.Contains(err.Error(), "is the capture program running") {
		t.Fatalf("missing camera: %v", err)
	}
	if err := (&Screen{Dir: filepath.Join(dir, "absent")}).Show(ctx, image.NewGray(image.Rect(0, 0, 1, 1))); err == nil {
		t.Fatal("Show into a missing directory succeeded")
	}
}

// TestZbarReadsOurQR checks our QR against an independent decoder, zbar.
func TestZbarReadsOurQR(t *testing.T) {
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("zbarimg not found; CI installs zbar-tools")
		}
		t.Skip("zbarimg not installed (apt-get install zbar-tools); CI runs this test")
	}
	dir := t.TempDir()
	texts := map[string]string{"medium": mediumText(t)}
	code, err := merchant.Encode(merchant.Order{
		Accounts: []merchant.AccountTemplate{{ID: "26", GUID: merchant.GUID, Account: "ACC-9"}},
		Category: "5814", Currency: "156", Country: "CN", Name: "SPDLAB", City: "BEIJING",
		Language: &merchant.Language{Preference: "ZH", Name: "实验室", City: "北京"},
	})
	if err != nil {
		t.Fatal(err)
	}
	texts["merchant UTF-8"] = code
	for name, text := range texts {
		img, err := Render(text, medium.QR, 3)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".png")
		if err := WritePNGFile(path, img); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, zbar, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", path).Output()
		cancel()
		if err != nil {
			t.Fatalf("%s: zbarimg: %v", name, err)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != text {
			t.Fatalf("%s: zbarimg read %q, want %q", name, got, text)
		}
	}
}

// FuzzDecodeReader feeds arbitrary bytes as image files: a capture is
// outside input, and the rig must fail on a bad one, never panic.
func FuzzDecodeReader(f *testing.F) {
	img, err := Render("SVL01", medium.QR, 1)
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := medium.WritePNG(&buf, img); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
		if err != nil || cfg.Width*cfg.Height > 1<<18 {
			return // not an image, or too big to decode quickly
		}
		text, f, err := DecodeReader(bytes.NewReader(b))
		if err == nil && (text == "" || f == 0) {
			t.Fatalf("decoded %v %q without error", f, text)
		}
	})
}
