package medium

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/datamatrix"
	"github.com/makiuchi-d/gozxing/oned"
	"github.com/makiuchi-d/gozxing/qrcode"
	qrdecoder "github.com/makiuchi-d/gozxing/qrcode/decoder"
)

// Format is a symbology a medium's text is shown in.
type Format uint8

const (
	// QR is a QR Code (ISO/IEC 18004), error correction level M, byte
	// mode; text that is not ASCII carries an ECI for UTF-8.
	QR Format = iota + 1
	// DataMatrix is a Data Matrix ECC 200 (ISO/IEC 16022) symbol. gozxing
	// reads and writes it as ISO-8859-1, so UTF-8 text travels as its
	// bytes, one character each, and is put back on decoding.
	DataMatrix
	// Code128 is a Code 128 (ISO/IEC 15417) bar code for a short ASCII
	// reference of at most MaxCode128 characters.
	Code128
)

// Formats lists every format, in the order DecodeImage tries them.
var Formats = []Format{QR, DataMatrix, Code128}

func (f Format) String() string {
	switch f {
	case QR:
		return "QR"
	case DataMatrix:
		return "DataMatrix"
	case Code128:
		return "Code128"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// MaxCode128 is the longest text Render puts in a Code 128 bar code: a
// reference, not a whole medium, which scanners read reliably at this size.
const MaxCode128 = 48

// Quiet zones, in modules, around each symbol. QR asks for 4; 2 is what
// gozxing, zbar and phone scanners need on a screen or a print, and keeps
// images small. Data Matrix asks for 1. Code 128 asks for 10.
const (
	quietQR         = 2
	quietDataMatrix = 2
	quietCode128    = 10
)

var palette = color.Palette{color.Gray{Y: 0}, color.Gray{Y: 0xFF}}

// Render draws text as a symbol of format f, scale pixels per module. The
// image is a two-colour *image.Paletted (index 0 black, 1 white), which
// WritePNG stores as a 1-bit PNG.
func Render(text string, f Format, scale int) (image.Image, error) {
	if text == "" {
		return nil, errors.New("medium: nothing to render: empty text")
	}
	if scale < 1 || scale > 64 {
		return nil, fmt.Errorf("medium: scale %d out of 1..64 pixels per module", scale)
	}
	var (
		m     *gozxing.BitMatrix
		err   error
		quiet int
	)
	switch f {
	case QR:
		hints := map[gozxing.EncodeHintType]any{
			gozxing.EncodeHintType_MARGIN:           0,
			gozxing.EncodeHintType_ERROR_CORRECTION: qrdecoder.ErrorCorrectionLevel_M,
		}
		if !isASCII(text) {
			hints[gozxing.EncodeHintType_CHARACTER_SET] = "UTF-8"
		}
		m, err = qrcode.NewQRCodeWriter().Encode(text, gozxing.BarcodeFormat_QR_CODE, 0, 0, hints)
		quiet = quietQR
	case DataMatrix:
		m, err = datamatrix.NewDataMatrixWriter().Encode(latin1Bytes(text), gozxing.BarcodeFormat_DATA_MATRIX, 0, 0, nil)
		quiet = quietDataMatrix
	case Code128:
		if n := utf8.RuneCountInString(text); n > MaxCode128 {
			return nil, fmt.Errorf("medium: text of %d characters is too long for Code 128 (at most %d): use QR or DataMatrix, or show a short reference", n, MaxCode128)
		}
		if !isASCII(text) {
			return nil, errors.New("medium: Code 128 carries ASCII only: use QR or DataMatrix for this text")
		}
		hints := map[gozxing.EncodeHintType]any{gozxing.EncodeHintType_MARGIN: 0}
		m, err = oned.NewCode128Writer().Encode(text, gozxing.BarcodeFormat_CODE_128, 0, 0, hints)
		quiet = quietCode128
	default:
		return nil, fmt.Errorf("medium: unknown image format %v", f)
	}
	if err != nil {
		return nil, fmt.Errorf("medium: rendering %v: %w", f, err)
	}
	w, h := m.GetWidth(), m.GetHeight()
	if f == Code128 {
		// A bar code row is one pixel high: give it a quarter of its
		// width, so a scan line crosses every bar at small rotations.
		h = max(16, (w+2*quiet)/4)
	}
	img := image.NewPaletted(image.Rect(0, 0, (w+2*quiet)*scale, (h+2*quiet)*scale), palette)
	for i := range img.Pix {
		img.Pix[i] = 1
	}
	row := make([]byte, img.Rect.Dx())
	for y := range h {
		my := y
		if f == Code128 {
			my = 0
		}
		for i := range row {
			row[i] = 1
		}
		for x := range w {
			if m.Get(x, my) {
				px := (x + quiet) * scale
				for i := range scale {
					row[px+i] = 0
				}
			}
		}
		for i := range scale {
			py := (y+quiet)*scale + i
			copy(img.Pix[py*img.Stride:], row)
		}
	}
	return img, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// latin1Bytes maps each byte of s to the rune of the same value, so that
// an ISO-8859-1 encoder writes exactly the bytes of s.
func latin1Bytes(s string) string {
	if isASCII(s) {
		return s
	}
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

// fromLatin1 undoes latin1Bytes when the result is UTF-8.
func fromLatin1(s string) string {
	if isASCII(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF {
			return s
		}
		b = append(b, byte(r))
	}
	if !utf8.Valid(b) {
		return s
	}
	return string(b)
}

type pngPool struct{ p sync.Pool }

func (p *pngPool) Get() *png.EncoderBuffer  { b, _ := p.p.Get().(*png.EncoderBuffer); return b }
func (p *pngPool) Put(b *png.EncoderBuffer) { p.p.Put(b) }

var pngEncoder = png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngPool{}}

// WritePNG writes img as a PNG, favouring speed over size (a rendered
// symbol is a two-colour image and compresses well anyway).
func WritePNG(w io.Writer, img image.Image) error {
	if err := pngEncoder.Encode(w, img); err != nil {
		return fmt.Errorf("medium: writing PNG: %w", err)
	}
	return nil
}

// Limits on a PNG that DecodePNG reads: the file's size, and the image's
// width, height and pixel count, checked from its header before any pixel
// memory is allocated. A camera capture of 40 megapixels passes; a
// decompression bomb (a small file claiming 30000 x 30000 pixels) does not.
const (
	MaxPNGBytes    = 32 << 20
	MaxImageSide   = 16384
	MaxImagePixels = 40_000_000
)

// ErrImageTooLarge is returned for a PNG past the limits above.
var ErrImageTooLarge = errors.New("medium: image too large")

// DecodePNG reads a PNG and decodes the symbol in it (see DecodeImage).
// It reads at most MaxPNGBytes and checks the dimensions in the header
// against MaxImageSide and MaxImagePixels before decoding the pixels.
func DecodePNG(r io.Reader) (string, Format, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxPNGBytes+1))
	if err != nil {
		return "", 0, fmt.Errorf("medium: reading PNG: %w", err)
	}
	if len(b) > MaxPNGBytes {
		return "", 0, fmt.Errorf("%w: PNG file over %d bytes", ErrImageTooLarge, MaxPNGBytes)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return "", 0, fmt.Errorf("medium: reading PNG: %w", err)
	}
	if cfg.Width > MaxImageSide || cfg.Height > MaxImageSide || int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return "", 0, fmt.Errorf("%w: %d x %d pixels, at most %d a side and %d in all", ErrImageTooLarge, cfg.Width, cfg.Height, MaxImageSide, MaxImagePixels)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return "", 0, fmt.Errorf("medium: reading PNG: %w", err)
	}
	return DecodeImage(img)
}

// DecodeImage finds a QR, Data Matrix or Code 128 symbol in img and returns
// its text and format. It tries each format on the image as a clean render
// first (PURE_BARCODE, cheap), then with full detection (TRY_HARDER), so it
// also reads camera captures.
func DecodeImage(img image.Image) (string, Format, error) {
	bmp, err := bitmap(img)
	if err != nil {
		return "", 0, err
	}
	var errs []error
	for _, pure := range []bool{true, false} {
		for _, f := range Formats {
			text, err := decodeAs(bmp, f, pure)
			if err == nil {
				return text, f, nil
			}
			if !pure {
				errs = append(errs, fmt.Errorf("%v: %w", f, err))
			}
		}
	}
	b := img.Bounds()
	return "", 0, fmt.Errorf("medium: no QR, DataMatrix or Code128 symbol found in the %dx%d image (%w)", b.Dx(), b.Dy(), errors.Join(errs...))
}

// DecodeImageAs reads a symbol of format f in img, as a scanner set to
// that one symbology does: f's reader alone, on the image as a clean
// render first, then with full detection. Where DecodeImage would find the
// same symbol it returns the same text; it saves the other formats' reads
// when the caller knows what it scans.
func DecodeImageAs(img image.Image, f Format) (string, error) {
	if !slices.Contains(Formats, f) {
		return "", fmt.Errorf("medium: unknown image format %v", f)
	}
	bmp, err := bitmap(img)
	if err != nil {
		return "", err
	}
	if text, err := decodeAs(bmp, f, true); err == nil {
		return text, nil
	}
	text, err := decodeAs(bmp, f, false)
	if err != nil {
		b := img.Bounds()
		return "", fmt.Errorf("medium: no %v symbol found in the %dx%d image (%w)", f, b.Dx(), b.Dy(), err)
	}
	return text, nil
}

// bitmap binarizes img for the readers.
func bitmap(img image.Image) (*gozxing.BinaryBitmap, error) {
	if img == nil || img.Bounds().Empty() {
		return nil, errors.New("medium: empty image")
	}
	lum := luminanceOf(img)
	b := img.Bounds()
	src, err := gozxing.NewPlanarYUVLuminanceSource(lum, b.Dx(), b.Dy(), 0, 0, b.Dx(), b.Dy(), false)
	if err != nil {
		return nil, fmt.Errorf("medium: %w", err)
	}
	bmp, err := gozxing.NewBinaryBitmap(gozxing.NewHybridBinarizer(src))
	if err != nil {
		return nil, fmt.Errorf("medium: %w", err)
	}
	return bmp, nil
}

// decodeAs decodes bmp as format f. A pure decode assumes a clean,
// upright render with a quiet zone; otherwise the reader searches.
func decodeAs(bmp *gozxing.BinaryBitmap, f Format, pure bool) (text string, err error) {
	// Images come from cameras and files: a reader that trips over one
	// must fail that decode, not take the process down.
	defer func() {
		if r := recover(); r != nil {
			text, err = "", fmt.Errorf("%v reader failed on this image: %v", f, r)
		}
	}()
	hints := map[gozxing.DecodeHintType]any{}
	if pure {
		hints[gozxing.DecodeHintType_PURE_BARCODE] = true
	} else {
		hints[gozxing.DecodeHintType_TRY_HARDER] = true
	}
	var reader gozxing.Reader
	switch f {
	case QR:
		hints[gozxing.DecodeHintType_CHARACTER_SET] = "UTF-8"
		reader = qrcode.NewQRCodeReader()
	case DataMatrix:
		reader = datamatrix.NewDataMatrixReader()
	case Code128:
		if pure {
			// The 1D reader scans rows either way; do it once.
			return "", errors.New("not tried")
		}
		reader = oned.NewCode128Reader()
	}
	res, err := reader.Decode(bmp, hints)
	if err != nil {
		return "", err
	}
	text = res.GetText()
	if f == DataMatrix {
		text = fromLatin1(text)
	}
	return text, nil
}

// luminanceOf is Luminance(img), sharing the pixels of a grey image whose
// rows lie side by side from its origin instead of copying them: the
// readers only read the grey levels they are given.
func luminanceOf(img image.Image) []byte {
	if g, ok := img.(*image.Gray); ok && g.Stride == g.Rect.Dx() && len(g.Pix) == g.Stride*g.Rect.Dy() {
		return g.Pix
	}
	return Luminance(img)
}

// Luminance returns the image's grey levels, row by row, one byte per
// pixel (0 black, 255 white), with fast paths for the image types that
// PNG, JPEG and Render produce.
func Luminance(img image.Image) []byte {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	lum := make([]byte, w*h)
	switch m := img.(type) {
	case *image.Gray:
		for y := range h {
			i := m.PixOffset(b.Min.X, b.Min.Y+y)
			copy(lum[y*w:(y+1)*w], m.Pix[i:i+w])
		}
	case *image.YCbCr:
		for y := range h {
			i := m.YOffset(b.Min.X, b.Min.Y+y)
			copy(lum[y*w:(y+1)*w], m.Y[i:i+w])
		}
	case *image.Paletted:
		var grey [256]byte
		for i, c := range m.Palette {
			grey[i] = greyOf(c)
		}
		for y := range h {
			i := m.PixOffset(b.Min.X, b.Min.Y+y)
			for x, p := range m.Pix[i : i+w] {
				lum[y*w+x] = grey[p]
			}
		}
	case *image.RGBA:
		for y := range h {
			i := m.PixOffset(b.Min.X, b.Min.Y+y)
			for x := range w {
				p := m.Pix[i+4*x : i+4*x+4 : i+4*x+4]
				// Premultiplied: transparent shows white, as on paper.
				lum[y*w+x] = byte((uint32(p[0])+2*uint32(p[1])+uint32(p[2]))/4 + (255 - uint32(p[3])))
			}
		}
	case *image.NRGBA:
		for y := range h {
			i := m.PixOffset(b.Min.X, b.Min.Y+y)
			for x := range w {
				p := m.Pix[i+4*x : i+4*x+4 : i+4*x+4]
				l := (uint32(p[0]) + 2*uint32(p[1]) + uint32(p[2])) / 4
				a := uint32(p[3])
				lum[y*w+x] = byte((l*a + 255*(255-a)) / 255)
			}
		}
	default:
		for y := range h {
			for x := range w {
				lum[y*w+x] = greyOf(img.At(b.Min.X+x, b.Min.Y+y))
			}
		}
	}
	return lum
}

// greyOf is gozxing's luminance of a colour, transparent showing white.
func greyOf(c color.Color) byte {
	r, g, bl, a := c.RGBA()
	l := (r + 2*g + bl) * 255 / (4 * 0xFFFF)
	return byte((l*a + (0xFFFF-a)*255) / 0xFFFF)
}

// RenderPNG renders text and returns the PNG bytes.
func RenderPNG(text string, f Format, scale int) ([]byte, error) {
	img, err := Render(text, f, scale)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := WritePNG(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
