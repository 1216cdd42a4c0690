package reports

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The report as a person sees it: headless Chromium renders report.html of
// a passing and of a failing run, takes a screenshot, and must log nothing
// to the console (the page runs no script and loads nothing, so any
// console message is a fault: a blocked load, a broken resource).

// chromium finds the browser, failing in CI (make deps installs it) and
// skipping elsewhere when it is not installed.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("reports: chromium is not installed; `make deps` installs it (Debian package chromium)")
	}
	t.Skip("chromium is not installed, so the report cannot be rendered: run `make deps` (as root) or `apt-get install chromium`")
	return ""
}

// browse runs headless Chromium on page with extra flags and returns its
// standard output and its console log lines.
func browse(t *testing.T, browser, page string, flags ...string) (stdout string, console []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + t.TempDir(),
		"--enable-logging=stderr", "--v=0"}, flags...)
	args = append(args, "file://"+page)
	var out, errOut bytes.Buffer
	// Headless Chromium itself sometimes dies of a signal (a segmentation
	// fault while it renders a screenshot, seen under the race detector's
	// load): such a crash is run again, twice at most, and said; an exit
	// with a status, or a third crash, fails the test.
	for try := 1; ; try++ {
		out.Reset()
		errOut.Reset()
		cmd := exec.CommandContext(ctx, browser, args...)
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if err == nil {
			break
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) && !exit.Exited() && ctx.Err() == nil && try < 3 {
			t.Logf("chromium %v died of a signal (%v), try %d; running it again", flags, err, try)
			continue
		}
		t.Fatalf("chromium %v: %v\n%s", flags, err, errOut.String())
	}
	for _, l := range strings.Split(errOut.String(), "\n") {
		if strings.Contains(l, ":CONSOLE") {
			console = append(console, l)
		}
	}
	return out.String(), console
}

// screenshot renders page in a window height pixels tall and returns the
// picture, and Chromium's standard output: with the flag --dump-dom, the
// page's DOM from the same run (a run of Chromium takes seconds of CPU).
func screenshot(t *testing.T, browser, page string, height int, flags ...string) (stdout string, img image.Image) {
	t.Helper()
	shot := filepath.Join(t.TempDir(), "report.png")
	stdout, console := browse(t, browser, page, append([]string{"--window-size=1280," + strconv.Itoa(height), "--hide-scrollbars", "--screenshot=" + shot}, flags...)...)
	if len(console) > 0 {
		t.Errorf("console messages while rendering:\n%s", strings.Join(console, "\n"))
	}
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	img, err = decodeScreenshot(b)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if keep := os.Getenv("SPDLAB_REPORT_SCREENSHOTS"); keep != "" {
		os.WriteFile(filepath.Join(keep, filepath.Base(filepath.Dir(page))+"-"+strconv.Itoa(height)+".png"), b, 0o644)
	}
	return stdout, img
}

// countColour counts the pixels of img in rows [y0, y1) of colour want.
func countColour(img image.Image, y0, y1 int, want color.RGBA) int {
	return countColours(img, y0, y1, want)[0]
}

// countColours counts, in one pass over rows [y0, y1) of img, the pixels of
// each colour of want (red, green and blue; alpha is not compared).
func countColours(img image.Image, y0, y1 int, want ...color.RGBA) []int {
	b := img.Bounds()
	y0, y1 = max(y0, b.Min.Y), min(y1, b.Max.Y)
	n := make([]int, len(want))
	if y0 >= y1 {
		return n
	}
	// A screenshot of 1280 x 9000 pixels has 11.5 million of them: they are
	// read from the decoded image's own bytes, not through image.At. A
	// screenshot is opaque, so RGBA and NRGBA bytes are the same colours.
	var pix []byte
	switch m := img.(type) {
	case *image.RGBA:
		pix = m.Pix[m.PixOffset(b.Min.X, y0) : m.PixOffset(b.Min.X, y1-1)+4*b.Dx()]
	case *image.NRGBA:
		pix = m.Pix[m.PixOffset(b.Min.X, y0) : m.PixOffset(b.Min.X, y1-1)+4*b.Dx()]
	default:
		m2 := image.NewRGBA(image.Rect(b.Min.X, y0, b.Max.X, y1))
		draw.Draw(m2, m2.Bounds(), img, image.Pt(b.Min.X, y0), draw.Src)
		pix = m2.Pix
	}
	keys := make([]uint32, len(want))
	for i, c := range want {
		keys[i] = uint32(c.R)<<16 | uint32(c.G)<<8 | uint32(c.B)
	}
	countPixels(pix, keys, n)
	return n
}

// countPixels adds to n[i] the pixels of pix (RGBA, 4 bytes each) whose
// colour is keys[i]. It is compiled without the race detector's
// instrumentation (//go:norace): it only reads memory that this goroutine
// alone holds, and instrumented, it took most of a minute of a race run.
//
//go:norace
func countPixels(pix []byte, keys []uint32, n []int) {
	for i := 0; i+3 < len(pix); i += 4 {
		k := uint32(pix[i])<<16 | uint32(pix[i+1])<<8 | uint32(pix[i+2])
		for j, w := range keys {
			if k == w {
				n[j]++
				break
			}
		}
	}
}

// mustBeNamedInBrowser fails a test marked inBrowser whose name does not
// end in InBrowser: make test runs them by that name, and would run it
// nowhere.
func mustBeNamedInBrowser(t *testing.T) {
	t.Helper()
	if !strings.HasSuffix(strings.SplitN(t.Name(), "/", 2)[0], "InBrowser") {
		t.Fatalf("%s renders in Chromium (inBrowser) but its name does not end in InBrowser, so make test would never run it", t.Name())
	}
}

func TestReportInBrowser(t *testing.T) {
	inBrowser(t)
	browser := chromium(t)
	key := newKey(t)
	info := RunInfo{
		DUT: "pcsc:Virtual PCD 00 00",
		Samples: []Sample{{Name: "A", Reader: "Virtual PCD 00 00", ATR: "3BF81300008131FE454A434F5076323431B7",
			DeviceID: "5D1AB00000000001", State: "blank"}},
		ICS: ICS{File: "/home/vendor/acme-s1.yaml", YAML: "product:\n  vendor: ACME\n  model: S1\n", Vendor: "ACME",
			Model: "S1", Firmware: "1.2.3", FormFactor: "sim"},
		SuiteVersion: "1", CaseCount: 3, Lab: Lab{Name: "ACME test lab"},
		Capabilities: Capabilities{Features: []string{"pay-balance", "generate-medium"}, Rig: []string{"fresh-device", "power-cycle"}},
	}
	for _, tc := range []struct {
		suite, verdict string
		banner         color.RGBA
		want           []string
	}{
		{"transcripts-pass", VerdictCertified, color.RGBA{0xe3, 0xf4, 0xe3, 0xff},
			[]string{"6982", "security status not satisfied"}},
		{"transcripts-fail", VerdictNotCertified, color.RGBA{0xfb, 0xe0, 0xe0, 0xff},
			[]string{"PAY before VERIFY: expected 6982, got 9000", "<details open", "1 case(s) failed"}},
	} {
		t.Run(tc.suite, func(t *testing.T) {
			// Chromium mostly waits (it starts a dozen processes): the two
			// reports render side by side.
			t.Parallel()
			dir := filepath.Join(t.TempDir(), tc.suite)
			c, err := Write(dir, info, runTinyOnce(t, tc.suite), key)
			if err != nil {
				t.Fatal(err)
			}
			if c.Verdict != tc.verdict {
				t.Fatalf("verdict %s, want %s", c.Verdict, tc.verdict)
			}
			page := filepath.Join(dir, FileHTML)
			// One run of Chromium (seconds of CPU) gives the DOM and a
			// screenshot of the whole page, and fails the test on any
			// console message.
			dom, full := screenshot(t, browser, page, 9000, "--dump-dom")
			want := append([]string{
				`id="verdict"`, tc.verdict,
				// identity
				`id="identity"`, "pcsc:Virtual PCD 00 00", "3BF81300008131FE454A434F5076323431B7", "5D1AB00000000001",
				"ACME test lab", c.Run.Lab.KeyFingerprint, "generate-medium", "power-cycle", c.Run.ICS.SHA256, "acme-s1.yaml", "firmware 1.2.3",
				// scope and not-applicable reasons
				`id="scope"`, "not applicable: ICS features.Biometric is false",
				// traceability: every SPEC.md requirement, cited ones with their cases
				`id="traceability"`, "SPD-PAY-1", "SPD-APP-5", `href="#TC-PAY-001"`, "not covered",
				`id="claims"`,
				// plots
				`id="plots"`, `aria-label="cases by area and verdict"`, `aria-label="duration of each case"`,
				// decoded transcripts
				`id="evidence"`, "SELECT", "GET DATA", "VERIFY", "PAY", "reset-cold", "ATR 3BF8",
				"verification failed, 2 tries left", "link error: link: card removed", "balance",
				// round-trip time of each step, and per command
				"15 ms", `aria-label="round-trip time per command"`, "median 1 ms",
				// optical decode rates: plot and table
				`aria-label="optical decode rate by format and degradation level"`, `id="optical-rates"`, "receipt: blur 1", "50 %",
				// coded media, embedded, with what they decode to
				"Coded media made by this case", `<img src="data:image/png;base64,`, "media/TC-PAY-001-01-merchant-code-qr.png",
				"read back by the report writer: the same 30 characters", "OPT-SHOP-1",
			}, tc.want...)
			for _, w := range want {
				if !strings.Contains(dom, w) {
					t.Errorf("the rendered report lacks %q", w)
				}
			}
			if m := regexp.MustCompile(`/home/|/work/|/root/|/tmp/`).FindString(dom); m != "" {
				t.Errorf("the report shows a machine path (%s)", m)
			}
			if b := full.Bounds(); b.Dx() != 1280 || b.Dy() != 9000 {
				t.Fatalf("screenshot %v", b)
			}
			// The verdict banner is drawn in its colour near the top.
			if n := countColour(full, 0, 400, tc.banner); n < 20000 {
				t.Errorf("the verdict banner's colour covers %d pixels of the top of the page", n)
			}
			// The whole page: the plots and the media are drawn, not only
			// present in the markup.
			h := full.Bounds().Dy()
			parts := []struct {
				what string
				rgb  color.RGBA
				min  int
			}{
				{"the QR bars of the optical plot", color.RGBA{0x1e, 0x88, 0xe5, 0xff}, 2000},
				{"the DataMatrix bars of the optical plot", color.RGBA{0x8e, 0x24, 0xaa, 0xff}, 1000},
				{"the boxes of the round-trip plot", color.RGBA{0x90, 0xca, 0xf9, 0xff}, 60},
				{"the black modules of the media images", color.RGBA{0, 0, 0, 0xff}, 15000},
			}
			colours := make([]color.RGBA, len(parts))
			for i, p := range parts {
				colours[i] = p.rgb
			}
			for i, n := range countColours(full, 0, h, colours...) {
				if p := parts[i]; n < p.min {
					t.Errorf("%s cover %d pixels of the rendered page, want at least %d", p.what, n, p.min)
				}
			}
		})
	}
}

// TestCountColours checks the pixel counter the browser test relies on,
// on the image types png.Decode returns and through image.At for others.
func TestCountColours(t *testing.T) {
	red, blue := color.RGBA{0xff, 0, 0, 0xff}, color.RGBA{0, 0, 0xff, 0xff}
	r := image.Rect(0, 0, 7, 5)
	imgs := []draw.Image{image.NewRGBA(r), image.NewNRGBA(r), image.NewPaletted(r, color.Palette{color.White, red, blue})}
	for _, img := range imgs {
		draw.Draw(img, r, image.NewUniform(color.White), image.Point{}, draw.Src)
		draw.Draw(img, image.Rect(0, 1, 3, 3), image.NewUniform(red), image.Point{}, draw.Src) // 6 red, rows 1-2
		img.Set(6, 4, blue)
		if got := countColours(img, 0, 5, red, blue); got[0] != 6 || got[1] != 1 {
			t.Errorf("%T: counts %v, want [6 1]", img, got)
		}
		if got := countColours(img, 2, 4, red, blue); got[0] != 3 || got[1] != 0 {
			t.Errorf("%T, rows 2-3: counts %v, want [3 0]", img, got)
		}
		if got := countColour(img, 4, 99, blue); got != 1 {
			t.Errorf("%T, rows 4-: %d blue, want 1", img, got)
		}
	}
}
