package reports

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"testing"
)

// decodeScreenshot decodes a PNG as image/png does. Chromium's screenshots
// are 8-bit RGB, non-interlaced: such a PNG (or 8-bit RGBA) is read here,
// its row filters undone without the race detector's instrumentation
// (unfilterRows); any other PNG, and any that this reader finds wrong, goes
// to png.Decode. Under -race, png.Decode of the browser test's 1280 x 9000
// screenshot took about 3 s of CPU, nearly all of it instrumented reads and
// writes of pixels that only the decoding goroutine holds.
func decodeScreenshot(b []byte) (image.Image, error) {
	if img, ok := decodeRGB8(b); ok {
		return img, nil
	}
	return png.Decode(bytes.NewReader(b))
}

// decodeRGB8 decodes b when it is an 8-bit RGB or RGBA, non-interlaced PNG
// without transparency chunk, into what png.Decode returns for it: an
// *image.RGBA (RGB, opaque) or an *image.NRGBA (RGBA). ok is false for any
// other PNG and for anything wrong (a bad CRC, short or extra pixel data,
// a bad zlib checksum or filter type).
func decodeRGB8(b []byte) (img image.Image, ok bool) {
	const signature = "\x89PNG\r\n\x1a\n"
	if !bytes.HasPrefix(b, []byte(signature)) {
		return nil, false
	}
	b = b[len(signature):]
	var (
		w, h, bpp int
		idat      []byte
		idatDone  bool // a chunk other than IDAT came after the IDATs
		end       bool
	)
	for first := true; !end; first = false {
		if len(b) < 12 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(b)
		if n > uint32(len(b)-12) {
			return nil, false
		}
		typ, data := string(b[4:8]), b[8:8+n]
		if crc32.ChecksumIEEE(b[4:8+n]) != binary.BigEndian.Uint32(b[8+n:]) {
			return nil, false
		}
		b = b[12+n:]
		if first != (typ == "IHDR") {
			return nil, false
		}
		switch typ {
		case "IHDR":
			if n != 13 || data[8] != 8 || data[10] != 0 || data[11] != 0 || data[12] != 0 {
				return nil, false
			}
			switch data[9] {
			case 2:
				bpp = 3
			case 6:
				bpp = 4
			default:
				return nil, false
			}
			w, h = int(binary.BigEndian.Uint32(data)), int(binary.BigEndian.Uint32(data[4:]))
			if w <= 0 || h <= 0 || w > 1<<16 || h > 1<<16 || w*h > 1<<24 {
				return nil, false
			}
		case "IDAT":
			if idatDone {
				return nil, false
			}
			idat = append(idat, data...)
		case "IEND":
			end = true
		case "PLTE", "tRNS":
			return nil, false
		default:
			if typ[0]&0x20 == 0 { // an unknown critical chunk
				return nil, false
			}
			if len(idat) > 0 {
				idatDone = true
			}
		}
	}
	if len(idat) == 0 {
		return nil, false
	}
	zr, err := zlib.NewReader(bytes.NewReader(idat))
	if err != nil {
		return nil, false
	}
	raw := make([]byte, h*(1+w*bpp))
	if _, err := io.ReadFull(zr, raw); err != nil {
		return nil, false
	}
	// The stream must end here, its checksum right.
	if n, err := zr.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		return nil, false
	}
	r := image.Rect(0, 0, w, h)
	var pix []byte
	if bpp == 3 {
		m := image.NewRGBA(r)
		img, pix = m, m.Pix
	} else {
		m := image.NewNRGBA(r)
		img, pix = m, m.Pix
	}
	if !unfilterRows(raw, pix, w, h, bpp) {
		return nil, false
	}
	return img, true
}

// unfilterRows undoes the PNG row filters (None, Sub, Up, Average, Paeth)
// of raw, h rows of a filter byte and w pixels of bpp bytes (3: RGB, 4:
// RGBA), in place, and writes the pixels to pix as RGBA bytes (alpha 255
// for RGB). It reports false on an unknown filter type. It is compiled
// without the race detector's instrumentation (//go:norace): raw and pix
// are the decoding goroutine's own, new memory.
//
//go:norace
func unfilterRows(raw, pix []byte, w, h, bpp int) bool {
	stride := w * bpp
	prev := make([]byte, stride) // the row above the first is zeros
	for y := range h {
		row := raw[y*(1+stride) : (y+1)*(1+stride)]
		cur := row[1:]
		switch row[0] {
		case 0: // None
		case 1: // Sub
			for i := bpp; i < stride; i++ {
				cur[i] += cur[i-bpp]
			}
		case 2: // Up
			for i := range cur {
				cur[i] += prev[i]
			}
		case 3: // Average
			for i := range bpp {
				cur[i] += prev[i] / 2
			}
			for i := bpp; i < stride; i++ {
				cur[i] += uint8((int(cur[i-bpp]) + int(prev[i])) / 2)
			}
		case 4: // Paeth
			for i := range cur {
				var a, c int
				if i >= bpp {
					a, c = int(cur[i-bpp]), int(prev[i-bpp])
				}
				b := int(prev[i])
				pa, pb, pc := b-c, a-c, a+b-2*c
				if pa < 0 {
					pa = -pa
				}
				if pb < 0 {
					pb = -pb
				}
				if pc < 0 {
					pc = -pc
				}
				switch {
				case pa <= pb && pa <= pc:
					cur[i] += uint8(a)
				case pb <= pc:
					cur[i] += uint8(b)
				default:
					cur[i] += uint8(c)
				}
			}
		default:
			return false
		}
		out := pix[y*4*w : (y+1)*4*w]
		if bpp == 4 {
			copy(out, cur)
		} else {
			for x := range w {
				out[4*x], out[4*x+1], out[4*x+2], out[4*x+3] = cur[3*x], cur[3*x+1], cur[3*x+2], 0xff
			}
		}
		prev = cur
	}
	return true
}

// screenshotSeeds are PNGs that png.Encode makes of images whose rows
// need each of the five filter types: flat areas (None, Up), gradients
// (Sub, Average), noise and diagonal edges (Paeth), opaque (RGB) and
// translucent (RGBA), a pixel wide and tall as well.
func screenshotSeeds(t testing.TB) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var seeds [][]byte
	for _, size := range []image.Point{{1, 1}, {1, 7}, {7, 1}, {61, 47}} {
		for _, alpha := range []bool{false, true} {
			r := image.Rect(0, 0, size.X, size.Y)
			m := image.NewNRGBA(r)
			for y := range size.Y {
				for x := range size.X {
					c := color.NRGBA{uint8(3 * x), uint8(5 * y), uint8(x + y), 0xff}
					switch (y / 6) % 4 {
					case 1:
						c = color.NRGBA{0x1e, 0x88, 0xe5, 0xff}
					case 2:
						c = color.NRGBA{uint8(rng.Uint32()), uint8(rng.Uint32()), uint8(rng.Uint32()), 0xff}
					case 3:
						if x > y {
							c = color.NRGBA{0, 0, 0, 0xff}
						}
					}
					if alpha {
						c.A = uint8(x*y + 1)
					}
					m.SetNRGBA(x, y, c)
				}
			}
			var buf bytes.Buffer
			if err := png.Encode(&buf, m); err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, buf.Bytes())
		}
	}
	return seeds
}

// TestDecodeScreenshot checks the screenshot reader against image/png on
// PNGs whose rows use every filter type, opaque and translucent, and that
// it hands other PNGs to image/png.
func TestDecodeScreenshot(t *testing.T) {
	filters := map[byte]bool{}
	for i, b := range screenshotSeeds(t) {
		if _, ok := decodeRGB8(b); !ok {
			t.Fatalf("seed %d: not read by the fast path", i)
		}
		sameAsImagePNG(t, b)
		for _, f := range rowFilters(t, b) {
			filters[f] = true
		}
	}
	if len(filters) != 5 {
		t.Fatalf("the seeds' rows use filter types %v, want all five", filters)
	}
	// A paletted and a 16-bit PNG go to image/png.
	for _, m := range []image.Image{image.NewPaletted(image.Rect(0, 0, 3, 2), color.Palette{color.White, color.Black}),
		image.NewRGBA64(image.Rect(0, 0, 3, 2))} {
		var buf bytes.Buffer
		if err := png.Encode(&buf, m); err != nil {
			t.Fatal(err)
		}
		if _, ok := decodeRGB8(buf.Bytes()); ok {
			t.Errorf("%T: read by the fast path", m)
		}
		sameAsImagePNG(t, buf.Bytes())
	}
}

// rowFilters returns the filter type of each row of an 8-bit RGB or RGBA
// PNG made by png.Encode (one IDAT chunk).
func rowFilters(t *testing.T, b []byte) []byte {
	t.Helper()
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	bpp := 3
	if cfg.ColorModel == color.NRGBAModel {
		bpp = 4
	}
	i := bytes.Index(b, []byte("IDAT"))
	n := binary.BigEndian.Uint32(b[i-4:])
	zr, err := zlib.NewReader(bytes.NewReader(b[i+4 : i+4+int(n)]))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var fs []byte
	for y := range cfg.Height {
		fs = append(fs, raw[y*(1+cfg.Width*bpp)])
	}
	return fs
}

// sameAsImagePNG fails t unless decodeScreenshot gives what png.Decode
// gives for b: the same image type, bounds and pixel bytes, or both an
// error.
func sameAsImagePNG(t testing.TB, b []byte) {
	t.Helper()
	want, werr := png.Decode(bytes.NewReader(b))
	got, gerr := decodeScreenshot(b)
	if werr != nil {
		if gerr == nil {
			if _, ok := decodeRGB8(b); !ok {
				t.Fatalf("image/png: %v; decodeScreenshot: no error", werr)
			}
			// The fast path reads a PNG image/png refuses: only
			// what image/png reads matters.
		}
		return
	}
	if gerr != nil {
		t.Fatalf("decodeScreenshot: %v; image/png decodes it", gerr)
	}
	switch w := want.(type) {
	case *image.RGBA:
		g, ok := got.(*image.RGBA)
		if !ok || g.Rect != w.Rect || !bytes.Equal(g.Pix, w.Pix) {
			t.Fatalf("decodeScreenshot gives %T %v, image/png %T %v, or their pixels differ", got, got.Bounds(), want, want.Bounds())
		}
	case *image.NRGBA:
		g, ok := got.(*image.NRGBA)
		if !ok || g.Rect != w.Rect || !bytes.Equal(g.Pix, w.Pix) {
			t.Fatalf("decodeScreenshot gives %T %v, image/png %T %v, or their pixels differ", got, got.Bounds(), want, want.Bounds())
		}
	default:
		if _, ok := decodeRGB8(b); ok {
			t.Fatalf("the fast path read a PNG image/png decodes as %T", want)
		}
	}
}

// FuzzDecodeScreenshot checks that decodeScreenshot decodes every PNG
// image/png decodes, to the same pixels, and never panics.
func FuzzDecodeScreenshot(f *testing.F) {
	for _, b := range screenshotSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if cfg, err := png.DecodeConfig(bytes.NewReader(b)); err == nil && cfg.Width*cfg.Height > 1<<20 {
			return // too big to decode on every input
		}
		sameAsImagePNG(t, b)
	})
}
