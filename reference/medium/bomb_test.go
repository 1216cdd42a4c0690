package medium

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/png"
	"runtime"
	"testing"
)

// pngClaiming is a valid small PNG whose header claims w x h pixels: what
// a decompression bomb looks like to the header reader.
func pngClaiming(t testing.TB, w, h uint32) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	// Signature (8), IHDR length (4), "IHDR" (4), width, height, ...
	binary.BigEndian.PutUint32(b[16:20], w)
	binary.BigEndian.PutUint32(b[20:24], h)
	binary.BigEndian.PutUint32(b[29:33], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func TestDecodePNGRefusesHugeImages(t *testing.T) {
	for _, tc := range []struct{ w, h uint32 }{
		{30000, 30000},         // the bomb
		{MaxImageSide + 1, 10}, // one side too long
		{10, MaxImageSide + 1},
		{8000, 8000}, // each side allowed, 64 Mpx in all
	} {
		b := pngClaiming(t, tc.w, tc.h)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := DecodePNG(bytes.NewReader(b))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrImageTooLarge) {
			t.Fatalf("%d x %d: %v, want ErrImageTooLarge", tc.w, tc.h, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
			t.Fatalf("%d x %d: %d bytes allocated before refusing", tc.w, tc.h, grew)
		}
	}
	// A file over the size limit is refused without reading past it.
	big := append(pngClaiming(t, 1, 1), make([]byte, MaxPNGBytes)...)
	if _, _, err := DecodePNG(bytes.NewReader(big)); !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("oversized file: %v", err)
	}
	// Within the limits, the header passes and the pixels are read.
	if _, _, err := DecodePNG(bytes.NewReader(pngClaiming(t, 1, 1))); errors.Is(err, ErrImageTooLarge) {
		t.Fatal("a 1 x 1 PNG refused as too large")
	}
}

// FuzzDecodePNG feeds outside bytes to DecodePNG: it never panics, and
// what it refuses for size is past the limits.
func FuzzDecodePNG(f *testing.F) {
	f.Add(pngClaiming(f, 1, 1))
	f.Add(pngClaiming(f, 30000, 30000))
	f.Add(pngClaiming(f, 4, 3))
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, err := DecodePNG(bytes.NewReader(b))
		if errors.Is(err, ErrImageTooLarge) && len(b) <= MaxPNGBytes {
			cfg, cerr := png.DecodeConfig(bytes.NewReader(b))
			if cerr != nil || (cfg.Width <= MaxImageSide && cfg.Height <= MaxImageSide && int64(cfg.Width)*int64(cfg.Height) <= MaxImagePixels) {
				t.Fatalf("refused as too large: %d x %d (%v)", cfg.Width, cfg.Height, cerr)
			}
		}
	})
}
