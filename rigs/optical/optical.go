// Package optical is the camera and screen rig: it reads the coded media a
// device under test shows (captured frames, PNG or JPEG files, or any
// image.Image) and shows codes for a device to scan, all through gozxing
// (QR Code ISO/IEC 18004, Data Matrix ISO/IEC 16022, Code 128 ISO/IEC
// 15417). It also makes the optical faults of DESIGN.md, as deterministic
// image transforms, so that a suite can show a medium still reads after
// blur, rotation, noise, low contrast and perspective.
//
// Where decoding stops working, measured by TestFaultLimits on the text of
// a 204-byte stored-value medium (272 Base64 characters: QR version 12,
// 65 modules; DataMatrix 64x64) and a 23-character Code 128 reference,
// each rendered at 6 pixels per module (the QR code 414 pixels wide, as on
// a phone screen). "First failure" is the first strength of the test's
// sweep at which a format no longer read:
//
//	fault         all read at    first failure (format)
//	blur          sigma 2.5 px   3 px (DataMatrix); QR and Code 128 at 4 px
//	rotation      15 degrees     20 (Code 128); DataMatrix 45; QR reads at 45
//	noise         sigma 120      200 (DataMatrix); QR and Code 128 read at 200
//	low contrast  0.25           0.15 (DataMatrix), 0.1 (QR), 0.05 (Code 128)
//	perspective   keystone 0.1   0.15 (QR), 0.25 (DataMatrix); Code 128 reads at 0.35
//
// Noise is read through thanks to Decode's smoothing retry; without it
// every format failed between sigma 40 and 60, as flat white areas take on enough
// range to fool the binarizer. Low contrast fails where the range of grey
// left drops near 24 levels, the binarizer's minimum. At 4 pixels per
// module every limit is lower (QR failed at keystone 0.1 and at 30 degrees
// of rotation); at 2 pixels per module only a clean image reads.
//
// Code 128 is a single row of bars: it reads as long as one scan line
// crosses every bar, so not much past atan(height/width) of rotation,
// 14 degrees for the proportions Render gives it.
//
// Hardware: a Camera reads the frames a capture program (fswebcam, ffmpeg,
// a phone app) writes into a directory; a Screen writes the image a viewer
// shows full screen. Neither owns the program; each fails with a clear
// error when the directory is missing or holds no frame.
package optical

import (
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // captured frames are often JPEG
	_ "image/png"  // and PNG
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spdlab/spdlab/reference/medium"
)

// Decode finds a QR, Data Matrix or Code 128 symbol in img. When the
// image as captured does not read, it tries again after smoothing (a
// Gaussian of sigma 1, then 2 pixels): sensor noise in flat areas has
// enough range to fool the local thresholds of the binarizer, and
// smoothing removes it while the modules, several pixels wide, survive.
func Decode(img image.Image) (string, medium.Format, error) {
	text, f, err := medium.DecodeImage(img)
	if err == nil {
		return text, f, nil
	}
	g := grayOf(img)
	for _, sigma := range []float64{1, 2} {
		if text, f, err2 := medium.DecodeImage(blur(g, sigma)); err2 == nil {
			return text, f, nil
		}
	}
	return "", 0, fmt.Errorf("optical: %w", err)
}

// DecodeAs reads a symbol of format f in img, as a scanner set to that
// one symbology does (a terminal that scans a token reference reads Code
// 128 alone): Decode's smoothing retries with f's reader only. Where
// Decode finds the same symbol it returns the same text, at a fraction of
// the cost on an image that does not read (every other reader's full
// search is skipped).
func DecodeAs(img image.Image, f medium.Format) (string, error) {
	text, err := medium.DecodeImageAs(img, f)
	if err == nil {
		return text, nil
	}
	g := grayOf(img)
	for _, sigma := range []float64{1, 2} {
		if text, err2 := medium.DecodeImageAs(blur(g, sigma), f); err2 == nil {
			return text, nil
		}
	}
	return "", fmt.Errorf("optical: %w", err)
}

// DecodeReader reads a PNG or JPEG image and decodes the symbol in it.
func DecodeReader(r io.Reader) (string, medium.Format, error) {
	img, kind, err := image.Decode(r)
	if err != nil {
		return "", 0, fmt.Errorf("optical: reading image: %w", err)
	}
	if kind != "png" && kind != "jpeg" {
		return "", 0, fmt.Errorf("optical: %s images are not captures this rig reads (PNG, JPEG)", kind)
	}
	return Decode(img)
}

// DecodeFile reads a PNG or JPEG file and decodes the symbol in it.
func DecodeFile(path string) (string, medium.Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("optical: %w", err)
	}
	defer f.Close()
	text, format, err := DecodeReader(f)
	if err != nil {
		return "", 0, fmt.Errorf("%w (%s)", err, path)
	}
	return text, format, nil
}

// Render draws text for a device to scan (see medium.Render).
func Render(text string, f medium.Format, scale int) (image.Image, error) {
	img, err := medium.Render(text, f, scale)
	if err != nil {
		return nil, fmt.Errorf("optical: %w", err)
	}
	return img, nil
}

// WritePNGFile writes img to path atomically (a viewer watching the file
// never sees half an image).
func WritePNGFile(path string, img image.Image) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".optical-*.png")
	if err != nil {
		return fmt.Errorf("optical: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := medium.WritePNG(tmp, img); err != nil {
		tmp.Close()
		return fmt.Errorf("optical: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("optical: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("optical: %w", err)
	}
	return nil
}

// Screen shows images for a device under test to scan: it writes each as
// Dir/Name (default "code.png"), which an image viewer running full screen
// on the rig's display reloads (feh --reload 0.2, for one).
type Screen struct {
	Dir  string
	Name string
}

// Show puts img on the screen.
func (s *Screen) Show(ctx context.Context, img image.Image) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st, err := os.Stat(s.Dir); err != nil || !st.IsDir() {
		return fmt.Errorf("optical: screen directory %q is not there: start the viewer's directory first", s.Dir)
	}
	name := s.Name
	if name == "" {
		name = "code.png"
	}
	return WritePNGFile(filepath.Join(s.Dir, name), img)
}

// ShowText renders text as format f and shows it.
func (s *Screen) ShowText(ctx context.Context, text string, f medium.Format, scale int) error {
	img, err := Render(text, f, scale)
	if err != nil {
		return err
	}
	return s.Show(ctx, img)
}

// Camera reads frames that a capture program writes into Dir as PNG or
// JPEG files; the newest file newer than the last one read is the next
// frame.
type Camera struct {
	Dir string
	// Poll is how often Capture looks for a new frame (default 50 ms).
	Poll time.Duration

	last time.Time
}

// ErrNoFrame is returned by Capture when the context ends before a new
// frame arrives. A scenario retries or reports the camera as stalled.
var ErrNoFrame = errors.New("optical: no new frame from the camera")

// Capture waits for the next frame and returns it.
func (c *Camera) Capture(ctx context.Context) (image.Image, error) {
	if st, err := os.Stat(c.Dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("optical: camera directory %q is not there: is the capture program running?", c.Dir)
	}
	poll := c.Poll
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	for {
		path, mod, err := c.newest()
		if err != nil {
			return nil, err
		}
		if path != "" && mod.After(c.last) {
			f, err := os.Open(path)
			if err != nil {
				return nil, fmt.Errorf("optical: %w", err)
			}
			img, _, err := image.Decode(f)
			f.Close()
			if err == nil {
				c.last = mod
				return img, nil
			}
			// A frame still being written: try again on the next poll.
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w in %s: %w", ErrNoFrame, c.Dir, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Scan captures frames until one decodes or ctx ends.
func (c *Camera) Scan(ctx context.Context) (string, medium.Format, error) {
	var lastErr error
	for {
		img, err := c.Capture(ctx)
		if err != nil {
			if lastErr != nil {
				return "", 0, fmt.Errorf("%w (last frame: %w)", err, lastErr)
			}
			return "", 0, err
		}
		text, f, err := Decode(img)
		if err == nil {
			return text, f, nil
		}
		lastErr = err
	}
}

func (c *Camera) newest() (string, time.Time, error) {
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("optical: %w", err)
	}
	var best string
	var bestMod time.Time
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !slices.Contains([]string{".png", ".jpg", ".jpeg"}, ext) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if info.ModTime().After(bestMod) {
			best, bestMod = filepath.Join(c.Dir, e.Name()), info.ModTime()
		}
	}
	return best, bestMod, nil
}
