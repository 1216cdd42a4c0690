package optical

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/medium"
)

// blurDirect is the blur's definition, pixel by pixel: the fixed-point
// separable convolution with the ends clamped, each sum taken tap by tap.
func blurDirect(g *image.Gray, sigma float64) *image.Gray {
	r := int(math.Ceil(3 * sigma))
	weights := make([]float64, 2*r+1)
	sum := 0.0
	for i := range weights {
		x := float64(i - r)
		weights[i] = math.Exp(-x * x / (2 * sigma * sigma))
		sum += weights[i]
	}
	kernel := make([]uint32, len(weights))
	for i, wt := range weights {
		kernel[i] = uint32(math.Round(wt / sum * (1 << 12)))
	}
	w, h := g.Rect.Dx(), g.Rect.Dy()
	tmp := make([]uint16, w*h)
	for y := range h {
		for x := range w {
			var acc uint32
			for i, k := range kernel {
				acc += k * uint32(g.Pix[y*g.Stride+min(max(x+i-r, 0), w-1)])
			}
			tmp[y*w+x] = uint16(min((acc+8)>>4, 0xFFFF))
		}
	}
	out := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			var acc uint32
			for i, k := range kernel {
				acc += k * uint32(tmp[min(max(y+i-r, 0), h-1)*w+x])
			}
			out.Pix[y*out.Stride+x] = uint8(min((acc+1<<19)>>20, 255))
		}
	}
	return out
}

// blurInputs are images of every kind the blur meets: renders of each
// format (rows repeated, quiet zones), the same after rotation and noise
// (no two rows alike), random pixels, and images narrower or shorter
// than the kernel.
func blurInputs(t testing.TB) map[string]*image.Gray {
	in := map[string]*image.Gray{}
	for _, f := range []medium.Format{medium.QR, medium.DataMatrix, medium.Code128} {
		text := "SPDTABCDEFGHIJKLMNOPQRSTUVWXYZ"
		img, err := Render(text, f, 3)
		if err != nil {
			t.Fatal(err)
		}
		g := toGray(img)
		in[f.String()] = g
		in[f.String()+" rotated"] = rotate(g, 8)
		in[f.String()+" noisy"] = noise(g, 30, 1)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range [][2]int{{1, 1}, {3, 40}, {40, 3}, {7, 9}, {64, 48}} {
		g := image.NewGray(image.Rect(0, 0, size[0], size[1]))
		for i := range g.Pix {
			g.Pix[i] = uint8(rng.Uint32())
		}
		in["random"+image.Rect(0, 0, size[0], size[1]).String()] = g
	}
	// A sub-image: its stride is wider than its rows.
	in["sub-image"] = in["QR noisy"].SubImage(image.Rect(5, 7, 60, 50)).(*image.Gray)
	return in
}

func TestBlurIsTheDirectConvolution(t *testing.T) {
	for name, g := range blurInputs(t) {
		for _, sigma := range []float64{0.4, 1, 1.5, 2, 3.5, 9} {
			if g.Rect.Min != (image.Point{}) {
				g = toGray(g)
			}
			got, want := blur(g, sigma), blurDirect(g, sigma)
			for i := range want.Pix {
				if got.Pix[i] != want.Pix[i] {
					w := want.Rect.Dx()
					t.Fatalf("%s, sigma %g: pixel (%d,%d) is %d, the direct convolution gives %d", name, sigma, i%w, i/w, got.Pix[i], want.Pix[i])
				}
			}
		}
	}
}

// BenchmarkBlur blurs the renders the suite's optical cases blur, at the
// sigmas of their faults and of the smoothing retries, against the
// direct convolution (x-direct: the blur's time as a fraction of it).
func BenchmarkBlur(b *testing.B) {
	var imgs []*image.Gray
	for _, f := range []medium.Format{medium.QR, medium.Code128} {
		text := mediumText(b)
		if f == medium.Code128 {
			text = "SPDTABCDEFGHIJKLMNOPQRSTUVWXYZ"
		}
		img, err := Render(text, f, 6)
		if err != nil {
			b.Fatal(err)
		}
		imgs = append(imgs, toGray(img), rotate(toGray(img), 8))
	}
	var fast, direct float64
	for b.Loop() {
		for _, g := range imgs {
			for _, sigma := range []float64{1, 2, 3.5} {
				fast += timeOf(func() { blur(g, sigma) })
				direct += timeOf(func() { blurDirect(g, sigma) })
			}
		}
	}
	b.ReportMetric(fast/direct, "x-direct")
}

func timeOf(f func()) float64 {
	t0 := time.Now()
	f()
	return time.Since(t0).Seconds()
}
