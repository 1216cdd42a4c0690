package medium

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	qrdecoder "github.com/makiuchi-d/gozxing/qrcode/decoder"
)

// realisticText is the text of a stored-value medium as a device shows it:
// service information with an AID, a token, a pending total and a payee
// nonce, signed (a 183-byte envelope, 244 Base64 characters, a QR code of
// version 11 at level M).
func realisticText(t testing.TB) string {
	t.Helper()
	key := newKey(t)
	info := storedValueInfo()
	env, err := Sign(info, key)
	if err != nil {
		t.Fatal(err)
	}
	return Text(env)
}

func TestRenderDecodeEveryFormat(t *testing.T) {
	medium := realisticText(t)
	tests := []struct {
		name   string
		text   string
		format Format
	}{
		{"QR medium", medium, QR},
		{"DataMatrix medium", medium, DataMatrix},
		{"Code128 reference", "SPD-0102030405060708-42", Code128},
		{"QR UTF-8", "付款码 SVL01 café", QR},
		{"DataMatrix UTF-8", "付款码 SVL01 café", DataMatrix},
		{"QR digits", "00020101021126", QR},
		{"DataMatrix short", "A", DataMatrix},
	}
	for _, tt := range tests {
		for _, scale := range []int{1, 3} {
			t.Run(tt.name, func(t *testing.T) {
				img, err := Render(tt.text, tt.format, scale)
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				if err := WritePNG(&buf, img); err != nil {
					t.Fatal(err)
				}
				if scale == 1 && tt.format == Code128 {
					return // a one-pixel bar is below what the 1D reader resolves
				}
				text, f, err := DecodePNG(&buf)
				if err != nil {
					t.Fatalf("scale %d: %v", scale, err)
				}
				if text != tt.text || f != tt.format {
					t.Fatalf("scale %d: decoded %v %q, want %v %q", scale, f, text, tt.format, tt.text)
				}
			})
		}
	}
}

func TestRenderIsOneBitPNG(t *testing.T) {
	img, err := Render("hello", QR, 4)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePNG(&buf, img); err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	// 21 modules (version 1) and a 2-module quiet zone each side, 4 px each.
	if cfg.Width != (21+4)*4 || cfg.Height != cfg.Width {
		t.Fatalf("image %dx%d, want %dx%d", cfg.Width, cfg.Height, 100, 100)
	}
	// IHDR bit depth is byte 24 of the file.
	if depth := buf.Bytes()[24]; depth != 1 {
		t.Fatalf("PNG bit depth %d, want 1", depth)
	}
}

func TestRenderRejects(t *testing.T) {
	long := strings.Repeat("A", MaxCode128+1)
	for _, tt := range []struct {
		name, text string
		f          Format
		scale      int
		want       string
	}{
		{"empty", "", QR, 2, "empty text"},
		{"scale 0", "x", QR, 0, "scale 0"},
		{"unknown format", "x", Format(9), 2, "unknown image format Format(9)"},
		{"code128 too long", long, Code128, 2, "49 characters is too long for Code 128 (at most 48)"},
		{"code128 non-ASCII", "café", Code128, 2, "ASCII only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Render(tt.text, tt.f, tt.scale); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDecodeImageTypes(t *testing.T) {
	text := "SVL01 image types"
	img, err := Render(text, QR, 3)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	gray := image.NewGray(b)
	rgba := image.NewRGBA(b)
	nrgba := image.NewNRGBA(b)
	for _, dst := range []draw.Image{gray, rgba, nrgba} {
		draw.Draw(dst, b, img, b.Min, draw.Src)
	}
	var jpg bytes.Buffer
	if err := jpeg.Encode(&jpg, rgba, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	ycbcr, err := jpeg.Decode(&jpg)
	if err != nil {
		t.Fatal(err)
	}
	// A sub-image that does not start at the origin, with a grey frame.
	framed := image.NewGray(image.Rect(0, 0, b.Dx()+40, b.Dy()+40))
	draw.Draw(framed, framed.Bounds(), image.NewUniform(color.Gray{Y: 200}), image.Point{}, draw.Src)
	draw.Draw(framed, b.Add(image.Pt(20, 20)), img, b.Min, draw.Src)
	sub := framed.SubImage(b.Add(image.Pt(10, 10)).Inset(-5))
	for name, im := range map[string]image.Image{"gray": gray, "rgba": rgba, "nrgba": nrgba, "jpeg": ycbcr,
		"sub-image": sub, "generic": otherImage{gray}} {
		got, f, err := DecodeImage(im)
		if err != nil || got != text || f != QR {
			t.Errorf("%s: %v %q %v", name, f, got, err)
		}
	}
}

// otherImage hides the concrete type, to take the generic path.
type otherImage struct{ image.Image }

func TestDecodeImageNothing(t *testing.T) {
	blank := image.NewGray(image.Rect(0, 0, 50, 50))
	draw.Draw(blank, blank.Bounds(), image.White, image.Point{}, draw.Src)
	if _, _, err := DecodeImage(blank); err == nil || !strings.Contains(err.Error(), "no QR, DataMatrix or Code128 symbol found in the 50x50 image") {
		t.Fatalf("blank image: %v", err)
	}
	if _, _, err := DecodeImage(image.NewGray(image.Rect(0, 0, 0, 0))); err == nil {
		t.Fatal("empty image decoded")
	}
	if _, _, err := DecodePNG(strings.NewReader("not a png")); err == nil || !strings.Contains(err.Error(), "medium: reading PNG") {
		t.Fatalf("not a PNG: %v", err)
	}
}

// TestDecodeImageAs reads each format with its own reader alone, and
// finds nothing where the image holds a symbol of another format.
func TestDecodeImageAs(t *testing.T) {
	tests := []struct {
		text   string
		format Format
	}{
		{realisticText(t), QR},
		{"付款码 SVL01 café", DataMatrix},
		{"SPD-0102030405060708-42", Code128},
	}
	for _, tt := range tests {
		img, err := Render(tt.text, tt.format, 3)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeImageAs(img, tt.format)
		if err != nil || got != tt.text {
			t.Errorf("%v as itself: %q, %v", tt.format, got, err)
		}
		for _, other := range Formats {
			if other == tt.format {
				continue
			}
			want := "medium: no " + other.String() + " symbol found in the"
			if _, err := DecodeImageAs(img, other); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%v image as %v: %v", tt.format, other, err)
			}
		}
	}
	if _, err := DecodeImageAs(image.NewGray(image.Rect(0, 0, 0, 0)), QR); err == nil {
		t.Error("empty image decoded")
	}
	if _, err := DecodeImageAs(image.NewGray(image.Rect(0, 0, 8, 8)), Format(9)); err == nil || !strings.Contains(err.Error(), "unknown image format") {
		t.Errorf("unknown format: %v", err)
	}
}

// renderDecodePNG is the lab's optical round trip of a text: Render as QR,
// encode the PNG, decode the PNG, DecodeImage.
func renderDecodePNG(tb testing.TB, text string, buf *bytes.Buffer) {
	img, err := Render(text, QR, 2)
	if err != nil {
		tb.Fatal(err)
	}
	buf.Reset()
	if err := WritePNG(buf, img); err != nil {
		tb.Fatal(err)
	}
	got, _, err := DecodePNG(buf)
	if err != nil || got != text {
		tb.Fatalf("decoded %q, %v", got, err)
	}
}

// gozxingFloor is bare gozxing on the same text: QR encode into a
// BitMatrix of the same pixel size, decode that BitMatrix (it is an
// image.Image) with the QR reader and the given hints.
type gozxingFloor struct {
	text  string
	width int
	enc   map[gozxing.EncodeHintType]any
	hints map[gozxing.DecodeHintType]any
}

func newGozxingFloor(tb testing.TB, text string, hints map[gozxing.DecodeHintType]any) *gozxingFloor {
	enc := map[gozxing.EncodeHintType]any{
		gozxing.EncodeHintType_MARGIN:           quietQR,
		gozxing.EncodeHintType_ERROR_CORRECTION: qrdecoder.ErrorCorrectionLevel_M,
	}
	m, err := qrcode.NewQRCodeWriter().Encode(text, gozxing.BarcodeFormat_QR_CODE, 0, 0, enc)
	if err != nil {
		tb.Fatal(err)
	}
	// The same pixel size as Render(text, QR, 2).
	return &gozxingFloor{text: text, width: m.GetWidth() * 2, enc: enc, hints: hints}
}

func (g *gozxingFloor) run(tb testing.TB) {
	m, err := qrcode.NewQRCodeWriter().Encode(g.text, gozxing.BarcodeFormat_QR_CODE, g.width, g.width, g.enc)
	if err != nil {
		tb.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(m)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, g.hints)
	if err != nil || res.GetText() != g.text {
		tb.Fatalf("decoded %v, %v", res, err)
	}
}

// BenchmarkRenderDecodePNG is a realistic medium's full optical round trip
// (see renderDecodePNG). Compare with BenchmarkGozxingFloor, or read the
// ratio from BenchmarkRenderDecodeRatio.
func BenchmarkRenderDecodePNG(b *testing.B) {
	text := realisticText(b)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		renderDecodePNG(b, text, &buf)
	}
}

// BenchmarkGozxingFloor is bare gozxing encode + decode of the same text,
// no PNG. "default" passes no decode hints, as a plain gozxing user would;
// "pure" passes PURE_BARCODE, the hint DecodeImage tries first.
func BenchmarkGozxingFloor(b *testing.B) {
	text := realisticText(b)
	for _, mode := range []string{"default", "pure"} {
		b.Run(mode, func(b *testing.B) {
			var hints map[gozxing.DecodeHintType]any
			if mode == "pure" {
				hints = map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true}
			}
			floor := newGozxingFloor(b, text, hints)
			b.ReportAllocs()
			for b.Loop() {
				floor.run(b)
			}
		})
	}
}

// BenchmarkRenderDecodeRatio runs the round trip and its floor (no hints)
// alternately in one loop and reports their ratio as "x-floor": on a
// shared machine both see the same load, so the ratio holds still where
// the separate ns/op figures wander.
func BenchmarkRenderDecodeRatio(b *testing.B) {
	text := realisticText(b)
	floor := newGozxingFloor(b, text, nil)
	var buf bytes.Buffer
	var ours, base time.Duration
	for b.Loop() {
		t0 := time.Now()
		renderDecodePNG(b, text, &buf)
		t1 := time.Now()
		floor.run(b)
		t2 := time.Now()
		ours += t1.Sub(t0)
		base += t2.Sub(t1)
	}
	b.ReportMetric(float64(ours)/float64(base), "x-floor")
	b.ReportMetric(float64(ours.Nanoseconds())/float64(b.N), "ours-ns/op")
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "floor-ns/op")
}

// FuzzDecodeImage feeds arbitrary grey images to the decoders: the first
// byte sets the width, the rest are pixels. Whatever gozxing makes of them,
// DecodeImage must return, not panic.
func FuzzDecodeImage(f *testing.F) {
	for _, fm := range Formats {
		img, err := Render("SVL01", fm, 1)
		if err != nil {
			f.Fatal(err)
		}
		w := img.Bounds().Dx()
		if w > 255 {
			continue
		}
		f.Add(append([]byte{byte(w)}, Luminance(img)...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 {
			return
		}
		w := max(1, int(b[0]))
		pix := b[1:]
		h := len(pix) / w
		if h == 0 || w*h > 1<<16 {
			return
		}
		img := &image.Gray{Pix: pix[:w*h], Stride: w, Rect: image.Rect(0, 0, w, h)}
		text, f, err := DecodeImage(img)
		if err == nil && (text == "" || f == 0) {
			t.Fatalf("decoded %v %q without error", f, text)
		}
	})
}
