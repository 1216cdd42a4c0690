package optical

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing/common"

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

// sample reads g at a real position by bilinear interpolation; outside is
// white. It is the definition that sampleFixed computes in fixed point.
func sample(g *image.Gray, x, y float64) float64 {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := x-x0, y-y0
	ix, iy := int(x0), int(y0)
	at := func(xi, yi int) float64 {
		if xi < 0 || yi < 0 || xi >= w || yi >= h {
			return 255
		}
		return float64(g.Pix[yi*g.Stride+xi])
	}
	p00, p10, p01, p11 := at(ix, iy), at(ix+1, iy), at(ix, iy+1), at(ix+1, iy+1)
	top := p00*(1-fx) + p10*fx
	bottom := p01*(1-fx) + p11*fx
	return top*(1-fy) + bottom*fy
}

// rotateDirect is the rotation's definition: each output pixel centre
// turned back onto the source and sampled in floating point.
func rotateDirect(g *image.Gray, degrees float64) *image.Gray {
	a := degrees * math.Pi / 180
	sin, cos := math.Sin(a), math.Cos(a)
	w, h := float64(g.Rect.Dx()), float64(g.Rect.Dy())
	nw := int(math.Ceil(math.Abs(w*cos) + math.Abs(h*sin)))
	nh := int(math.Ceil(math.Abs(w*sin) + math.Abs(h*cos)))
	out := image.NewGray(image.Rect(0, 0, nw, nh))
	cx, cy := w/2, h/2
	ncx, ncy := float64(nw)/2, float64(nh)/2
	for y := range nh {
		for x := range nw {
			dx, dy := float64(x)+0.5-ncx, float64(y)+0.5-ncy
			sx := cos*dx - sin*dy + cx - 0.5
			sy := sin*dx + cos*dy + cy - 0.5
			out.Pix[y*out.Stride+x] = clamp(sample(g, sx, sy))
		}
	}
	return out
}

// keystoneDirect is the keystone's definition, in floating point.
func keystoneDirect(g *image.Gray, s float64) *image.Gray {
	w, h := float64(g.Rect.Dx()), float64(g.Rect.Dy())
	inset := s * w
	t := common.PerspectiveTransform_QuadrilateralToQuadrilateral(
		inset, 0, w-inset, 0, w, h, 0, h,
		0, 0, w, 0, w, h, 0, h)
	out := image.NewGray(g.Rect)
	for y := range g.Rect.Dy() {
		for x := range g.Rect.Dx() {
			pt := []float64{float64(x) + 0.5, float64(y) + 0.5}
			t.TransformPoints(pt)
			out.Pix[y*out.Stride+x] = clamp(sample(g, pt[0]-0.5, pt[1]-0.5))
		}
	}
	return out
}

// TestGeometryIsWithinAGreyLevelOfItsDefinition: rotation and keystone,
// sampled in fixed point, give every pixel within one grey level of the
// same transform in floating point.
func TestGeometryIsWithinAGreyLevelOfItsDefinition(t *testing.T) {
	for name, g := range blurInputs(t) {
		if g.Rect.Min != (image.Point{}) {
			g = toGray(g)
		}
		type pair struct{ got, want *image.Gray }
		cases := map[string]pair{}
		for _, deg := range []float64{0, 4, -10, 25, 90, 181} {
			cases[fmt.Sprintf("rotation %g", deg)] = pair{rotate(g, deg), rotateDirect(g, deg)}
		}
		for _, s := range []float64{0, 0.015, 0.2, 0.45} {
			cases[fmt.Sprintf("keystone %g", s)] = pair{keystone(g, s), keystoneDirect(g, s)}
		}
		for fault, p := range cases {
			if p.got.Rect != p.want.Rect {
				t.Fatalf("%s, %s: %v, want %v", name, fault, p.got.Rect, p.want.Rect)
			}
			for i := range p.want.Pix {
				if d := int(p.got.Pix[i]) - int(p.want.Pix[i]); d < -1 || d > 1 {
					w := p.want.Rect.Dx()
					t.Fatalf("%s, %s: pixel (%d,%d) is %d, the definition gives %d", name, fault, i%w, i/w, p.got.Pix[i], p.want.Pix[i])
				}
			}
		}
	}
}

// TestNoiseIsGaussian: on a flat mid-grey image the noise's mean is 0
// and its standard deviation sigma, and its tails hold the normal
// distribution's share (4.55 % beyond 2 sigma).
func TestNoiseIsGaussian(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 400, 400))
	for i := range g.Pix {
		g.Pix[i] = 128
	}
	const sigma = 20
	out := noise(g, sigma, 5)
	var sum, sq float64
	beyond := 0
	for _, p := range out.Pix {
		d := float64(p) - 128
		sum += d
		sq += d * d
		if math.Abs(d) > 2*sigma {
			beyond++
		}
	}
	n := float64(len(out.Pix))
	mean := sum / n
	sd := math.Sqrt(sq/n - mean*mean)
	tail := float64(beyond) / n
	// A draw beyond 2 sigma rounds to a level more than 2 sigma away
	// when it lies more than half a level beyond.
	wantTail := math.Erfc((2*sigma + 0.5) / sigma / math.Sqrt2)
	if math.Abs(mean) > 0.2 || math.Abs(sd-sigma) > 0.2 || math.Abs(tail-wantTail) > 0.002 {
		t.Fatalf("mean %.3f, standard deviation %.3f, %.4f beyond 2 sigma; want 0, %d, %.4f", mean, sd, tail, sigma, wantTail)
	}
}
