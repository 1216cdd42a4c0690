package optical

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"

	"github.com/makiuchi-d/gozxing/common"

	"github.com/spdlab/spdlab/reference/medium"
)

// FaultKind is one of the optical faults a code meets between a screen or
// print and a camera.
type FaultKind uint8

const (
	// Blur is a Gaussian blur; Strength is sigma in pixels (defocus,
	// motion, a cheap lens).
	Blur FaultKind = iota + 1
	// Rotation turns the image about its centre; Strength is in degrees,
	// counter-clockwise. The canvas grows to hold the corners, white
	// around them.
	Rotation
	// Noise adds Gaussian noise; Strength is sigma in grey levels (sensor
	// noise in low light). Seed makes it repeatable.
	Noise
	// LowContrast pulls every grey level towards mid-grey; Strength is the
	// contrast left, 1 unchanged, 0 flat grey (a dim screen, glare).
	LowContrast
	// Perspective is a keystone: the top edge shrinks towards the centre
	// by Strength of the width on each side (a camera looking up at a
	// screen), 0 none, up to 0.45.
	Perspective
)

func (k FaultKind) String() string {
	switch k {
	case Blur:
		return "blur"
	case Rotation:
		return "rotation"
	case Noise:
		return "noise"
	case LowContrast:
		return "low-contrast"
	case Perspective:
		return "perspective"
	}
	return fmt.Sprintf("FaultKind(%d)", uint8(k))
}

// Fault is one deterministic image transform: the same fault on the same
// image gives the same pixels.
type Fault struct {
	Kind     FaultKind
	Strength float64
	Seed     uint64 // for Noise
}

func (f Fault) String() string { return fmt.Sprintf("%v %g", f.Kind, f.Strength) }

// Apply returns img with the fault, as a grey image (what a decoder sees).
func (f Fault) Apply(img image.Image) (*image.Gray, error) {
	g := toGray(img)
	switch f.Kind {
	case Blur:
		if f.Strength < 0 || f.Strength > 50 {
			return nil, fmt.Errorf("optical: blur sigma %g out of 0..50", f.Strength)
		}
		return blur(g, f.Strength), nil
	case Rotation:
		return rotate(g, f.Strength), nil
	case Noise:
		if f.Strength < 0 {
			return nil, fmt.Errorf("optical: noise sigma %g is negative", f.Strength)
		}
		return noise(g, f.Strength, f.Seed), nil
	case LowContrast:
		if f.Strength < 0 || f.Strength > 1 {
			return nil, fmt.Errorf("optical: contrast %g out of 0..1", f.Strength)
		}
		return contrast(g, f.Strength), nil
	case Perspective:
		if f.Strength < 0 || f.Strength > 0.45 {
			return nil, fmt.Errorf("optical: keystone %g out of 0..0.45", f.Strength)
		}
		return keystone(g, f.Strength), nil
	}
	return nil, fmt.Errorf("optical: unknown fault %v", f.Kind)
}

func toGray(img image.Image) *image.Gray {
	b := img.Bounds()
	return &image.Gray{Pix: medium.Luminance(img), Stride: b.Dx(), Rect: image.Rect(0, 0, b.Dx(), b.Dy())}
}

func clamp(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// blur is a separable Gaussian blur with edges clamped.
func blur(g *image.Gray, sigma float64) *image.Gray {
	if sigma == 0 {
		return g
	}
	r := int(math.Ceil(3 * sigma))
	kernel := make([]float64, 2*r+1)
	sum := 0.0
	for i := range kernel {
		x := float64(i - r)
		kernel[i] = math.Exp(-x * x / (2 * sigma * sigma))
		sum += kernel[i]
	}
	for i := range kernel {
		kernel[i] /= sum
	}
	w, h := g.Rect.Dx(), g.Rect.Dy()
	tmp := make([]float64, w*h)
	for y := range h {
		for x := range w {
			acc := 0.0
			for i, k := range kernel {
				xx := min(max(x+i-r, 0), w-1)
				acc += k * float64(g.Pix[y*g.Stride+xx])
			}
			tmp[y*w+x] = acc
		}
	}
	out := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			acc := 0.0
			for i, k := range kernel {
				yy := min(max(y+i-r, 0), h-1)
				acc += k * tmp[yy*w+x]
			}
			out.Pix[y*out.Stride+x] = clamp(acc)
		}
	}
	return out
}

// sample reads g at a real position by bilinear interpolation; outside is
// white.
func sample(g *image.Gray, x, y float64) float64 {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := x-x0, y-y0
	at := func(xi, yi int) float64 {
		if xi < 0 || yi < 0 || xi >= w || yi >= h {
			return 255
		}
		return float64(g.Pix[yi*g.Stride+xi])
	}
	ix, iy := int(x0), int(y0)
	top := at(ix, iy)*(1-fx) + at(ix+1, iy)*fx
	bottom := at(ix, iy+1)*(1-fx) + at(ix+1, iy+1)*fx
	return top*(1-fy) + bottom*fy
}

func rotate(g *image.Gray, degrees float64) *image.Gray {
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
			// Inverse rotation of the output pixel centre; image y grows
			// downwards, so counter-clockwise on screen is this sign.
			dx, dy := float64(x)+0.5-ncx, float64(y)+0.5-ncy
			sx := cos*dx - sin*dy + cx - 0.5
			sy := sin*dx + cos*dy + cy - 0.5
			out.Pix[y*out.Stride+x] = clamp(sample(g, sx, sy))
		}
	}
	return out
}

func noise(g *image.Gray, sigma float64, seed uint64) *image.Gray {
	rng := rand.New(rand.NewPCG(seed, 0x5350444C4142)) // "SPDLAB"
	out := image.NewGray(g.Rect)
	for i, p := range g.Pix {
		out.Pix[i] = clamp(float64(p) + rng.NormFloat64()*sigma)
	}
	return out
}

func contrast(g *image.Gray, c float64) *image.Gray {
	out := image.NewGray(g.Rect)
	for i, p := range g.Pix {
		out.Pix[i] = clamp(127.5 + (float64(p)-127.5)*c)
	}
	return out
}

// keystone maps the image onto a trapezoid whose top edge is inset by s of
// the width on each side.
func keystone(g *image.Gray, s float64) *image.Gray {
	w, h := float64(g.Rect.Dx()), float64(g.Rect.Dy())
	inset := s * w
	// From the trapezoid in the output to the source rectangle.
	t := common.PerspectiveTransform_QuadrilateralToQuadrilateral(
		inset, 0, w-inset, 0, w, h, 0, h,
		0, 0, w, 0, w, h, 0, h)
	out := image.NewGray(g.Rect)
	pt := make([]float64, 2)
	for y := range g.Rect.Dy() {
		for x := range g.Rect.Dx() {
			pt[0], pt[1] = float64(x)+0.5, float64(y)+0.5
			t.TransformPoints(pt)
			out.Pix[y*out.Stride+x] = clamp(sample(g, pt[0]-0.5, pt[1]-0.5))
		}
	}
	return out
}
