package optical

import (
	"bytes"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"sync"

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
	g := grayOf(img)
	switch f.Kind {
	case Blur:
		if f.Strength < 0 || f.Strength > 50 {
			return nil, fmt.Errorf("optical: blur sigma %g out of 0..50", f.Strength)
		}
		if f.Strength == 0 {
			return toGray(img), nil // a new image, as every other fault gives
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

// The pixel loops below (blur, sample, rotate, noise, contrast, keystone)
// are compiled without race-detector instrumentation (//go:norace): each
// reads its input image and writes only the image it allocates, so there
// is nothing for the detector to find in them, and instrumenting every
// pixel access made the suite's optical cases take ten times as long
// under -race (make test's check-race). The goroutines that call them
// (the suite's, Decode's callers') are still checked.
func toGray(img image.Image) *image.Gray {
	b := img.Bounds()
	return &image.Gray{Pix: medium.Luminance(img), Stride: b.Dx(), Rect: image.Rect(0, 0, b.Dx(), b.Dy())}
}

// grayOf is img itself when it is already a grey image with its rows
// side by side from the origin, else toGray(img): for the transforms,
// which read their input and write only the image they make.
func grayOf(img image.Image) *image.Gray {
	if g, ok := img.(*image.Gray); ok && g.Rect.Min == (image.Point{}) && g.Stride == g.Rect.Dx() {
		return g
	}
	return toGray(img)
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

// blur is a separable Gaussian blur with edges clamped, in fixed point:
// kernel weights in units of 1/4096, the row pass kept with 8 bits below
// the grey level, so that a pixel is within one grey level of the exact
// convolution at half the cost of floating point (the smoothing retries of
// Decode blur every image that does not read at first). Only the columns
// and rows within the kernel's radius of an edge need clamping.
//
// The sums are exact integers, so the order they are taken in does not
// change a pixel: the kernel is symmetric, and each pass adds the two
// pixels that share a weight before multiplying, a whole row at a time. A
// rendered code repeats each row of modules for its height in pixels, so
// a source row equal to the one above it takes that row's first pass; and
// where every row under the kernel is the same (a quiet zone, the bars of
// a Code 128), the second pass is that row times the kernel's sum.
//
//go:norace
func blur(g *image.Gray, sigma float64) *image.Gray {
	if sigma == 0 {
		return g
	}
	r := int(math.Ceil(3 * sigma))
	weights := make([]float64, 2*r+1)
	sum := 0.0
	for i := range weights {
		x := float64(i - r)
		weights[i] = math.Exp(-x * x / (2 * sigma * sigma))
		sum += weights[i]
	}
	const one = 1 << 12
	kernel := make([]uint32, len(weights))
	ksum := uint32(0)
	for i, wt := range weights {
		kernel[i] = uint32(math.Round(wt / sum * one))
		ksum += kernel[i]
	}
	w, h := g.Rect.Dx(), g.Rect.Dy()
	// Row pass: grey levels times 256 (a sum of at most 255 times a
	// little over 4096, shifted down by 4, fits 16 bits). runStart[y] is
	// the first row of the run of equal source rows that holds row y.
	tmp := make([]uint16, w*h)
	acc := make([]uint32, w)
	runStart := make([]int, h)
	for y := range h {
		src := g.Pix[y*g.Stride : y*g.Stride+w]
		dst := tmp[y*w : (y+1)*w]
		if y > 0 && bytes.Equal(src, g.Pix[(y-1)*g.Stride:(y-1)*g.Stride+w]) {
			runStart[y] = runStart[y-1]
			copy(dst, tmp[(y-1)*w:y*w])
			continue
		}
		runStart[y] = y
		blurRow(src, acc, kernel, r)
		for x, v := range acc {
			dst[x] = uint16(min((v+8)>>4, 0xFFFF))
		}
	}
	// Column pass: grey levels times 2^20.
	out := image.NewGray(image.Rect(0, 0, w, h))
	prevRun := -1 // the run of equal rows the row above was made of alone
	for y := range h {
		lo, hi := max(y-r, 0), min(y+r, h-1)
		dst := out.Pix[y*out.Stride : y*out.Stride+w]
		if run := runStart[hi]; run <= lo {
			// Every row under the kernel is the same.
			if run == prevRun {
				copy(dst, out.Pix[(y-1)*out.Stride:(y-1)*out.Stride+w])
				continue
			}
			for x, v := range tmp[lo*w : lo*w+w] {
				dst[x] = uint8(min((ksum*uint32(v)+1<<19)>>20, 255))
			}
			prevRun = run
			continue
		}
		prevRun = -1
		row := func(i int) []uint16 { return tmp[min(max(y+i-r, 0), h-1)*w:][:w] }
		k := kernel[r]
		for x, v := range row(r) {
			acc[x] = k * uint32(v)
		}
		for i := range r {
			k := kernel[i]
			a, b := row(i), row(2*r-i)
			a, b = a[:len(acc)], b[:len(acc)]
			for x := range acc {
				acc[x] += k * (uint32(a[x]) + uint32(b[x]))
			}
		}
		for x, v := range acc {
			dst[x] = uint8(min((v+1<<19)>>20, 255))
		}
	}
	return out
}

// blurRow sets acc to the convolution of src with kernel (radius r),
// clamping at the ends.
//
//go:norace
func blurRow(src []uint8, acc, kernel []uint32, r int) {
	w := len(src)
	for x := range min(r, w) {
		acc[x] = blurAt(src, kernel, r, x)
	}
	for x := max(w-r, r); x < w; x++ {
		acc[x] = blurAt(src, kernel, r, x)
	}
	if w <= 2*r {
		return
	}
	// The interior: x from r to w-r-1 reads src[x-r .. x+r].
	n := w - 2*r
	a := acc[r : r+n]
	k := kernel[r]
	for j, v := range src[r : r+n] {
		a[j] = k * uint32(v)
	}
	for i := range r {
		k := kernel[i]
		s1, s2 := src[i:i+n], src[2*r-i:2*r-i+n]
		for j := range a {
			a[j] += k * (uint32(s1[j]) + uint32(s2[j]))
		}
	}
}

// blurAt is the convolution at x with the ends clamped.
//
//go:norace
func blurAt(src []uint8, kernel []uint32, r, x int) uint32 {
	var acc uint32
	w := len(src)
	for i, k := range kernel {
		acc += k * uint32(src[min(max(x+i-r, 0), w-1)])
	}
	return acc
}

// subpixel is the fixed-point unit of sampleFixed's positions: 1/1024 of
// a pixel (the products of its weights still fit 32 bits), so that a bilinear sample is within one grey level of an interpolation
// in floating point (the tests' sample).
const (
	subpixel      = 1 << subpixelShift
	subpixelShift = 10
)

// sampleFixed is the bilinear sample at (x, y) given in 1/subpixel of a
// pixel, in integers: the four neighbours weighted by the fractions left,
// rounded to the nearest grey level; outside the image is white.
//
//go:norace
func sampleFixed(g *image.Gray, x, y int) uint8 {
	ix, iy := x>>subpixelShift, y>>subpixelShift
	fx, fy := uint32(x&(subpixel-1)), uint32(y&(subpixel-1))
	w, h := g.Rect.Dx(), g.Rect.Dy()
	if uint(ix) < uint(w-1) && uint(iy) < uint(h-1) {
		return bilinear(g.Pix, iy*g.Stride+ix, g.Stride, fx, fy)
	}
	at := func(xi, yi int) uint32 {
		if xi < 0 || yi < 0 || xi >= w || yi >= h {
			return 255
		}
		return uint32(g.Pix[yi*g.Stride+xi])
	}
	return mix(at(ix, iy), at(ix+1, iy), at(ix, iy+1), at(ix+1, iy+1), fx, fy)
}

// bilinear is sampleFixed inside the image: pix[i] is the top left
// neighbour, stride the distance to the one below it.
//
//go:norace
func bilinear(pix []uint8, i, stride int, fx, fy uint32) uint8 {
	top := uint32(pix[i])*(subpixel-fx) + uint32(pix[i+1])*fx
	bottom := uint32(pix[i+stride])*(subpixel-fx) + uint32(pix[i+stride+1])*fx
	return uint8((top*(subpixel-fy) + bottom*fy + subpixel*subpixel/2) >> (2 * subpixelShift))
}

// mix weighs four neighbours by the fractions fx, fy (in 1/subpixel).
func mix(p00, p10, p01, p11, fx, fy uint32) uint8 {
	top := p00*(subpixel-fx) + p10*fx
	bottom := p01*(subpixel-fx) + p11*fx
	return uint8((top*(subpixel-fy) + bottom*fy + subpixel*subpixel/2) >> (2 * subpixelShift))
}

// rotate turns g about its centre by degrees, counter-clockwise on screen,
// onto a canvas that holds the corners, white around them.
//
//go:norace
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
		// Inverse rotation of the output pixel centre; image y grows
		// downwards, so counter-clockwise on screen is this sign. Along
		// the row the source position moves by (cos, sin) a pixel.
		dx, dy := 0.5-ncx, float64(y)+0.5-ncy
		sampleLine(out.Pix[y*out.Stride:y*out.Stride+nw], g,
			cos*dx-sin*dy+cx-0.5, sin*dx+cos*dy+cy-0.5, cos, sin)
	}
	return out
}

// sampleLine fills dst with samples of g along a line: the first at
// (x, y), each next one (dx, dy) further. It steps the position in fixed
// point with 32 bits below the pixel, so that the steps add up to far
// less than 1/subpixel of error across any image.
//
//go:norace
func sampleLine(dst []uint8, g *image.Gray, x, y, dx, dy float64) {
	const one = 1 << 32
	step := func(v float64) int64 {
		return int64(math.Floor(max(min(v, 1<<30), -(1<<30))*one + 0.5))
	}
	sx, sy, stepX, stepY := step(x), step(y), step(dx), step(dy)
	w, h := g.Rect.Dx(), g.Rect.Dy()
	for i := range dst {
		ix, iy := int(sx>>32), int(sy>>32)
		fx, fy := uint32(sx>>(32-subpixelShift))&(subpixel-1), uint32(sy>>(32-subpixelShift))&(subpixel-1)
		switch {
		case uint(ix) < uint(w-1) && uint(iy) < uint(h-1):
			dst[i] = bilinear(g.Pix, iy*g.Stride+ix, g.Stride, fx, fy)
		case ix < -1 || iy < -1 || ix >= w || iy >= h:
			dst[i] = 255 // all four neighbours outside
		default:
			dst[i] = sampleFixed(g, ix<<subpixelShift|int(fx), iy<<subpixelShift|int(fy))
		}
		sx += stepX
		sy += stepY
	}
}

// noise adds Gaussian noise of sigma grey levels. Each pixel's draw is a
// quantile of the standard normal distribution at one of 65536 equally
// likely probabilities, picked by 16 bits of a PCG stream seeded with
// seed: the normal distribution to within 1/65536 of probability (its
// tails cut at 4.3 sigma), at a table look-up a pixel.
//
//go:norace
func noise(g *image.Gray, sigma float64, seed uint64) *image.Gray {
	rng := rand.NewPCG(seed, 0x5350444C4142) // "SPDLAB"
	q := normalQuantiles()
	// The draws in grey levels, times 16 for rounding.
	var draws [1 << 16]int32
	for i, z := range q {
		draws[i] = int32(math.Round(float64(z) * sigma * 16))
	}
	out := image.NewGray(g.Rect)
	var bits uint64
	for i, p := range g.Pix {
		if i%4 == 0 {
			bits = rng.Uint64()
		}
		v := (int32(p)*16 + draws[uint16(bits)] + 8) >> 4
		bits >>= 16
		out.Pix[i] = uint8(min(max(v, 0), 255))
	}
	return out
}

// normalQuantiles are the standard normal distribution's quantiles at the
// probabilities (i + 1/2) / 65536.
var normalQuantiles = sync.OnceValue(func() *[1 << 16]float32 {
	var q [1 << 16]float32
	for i := range q {
		p := (float64(i) + 0.5) / (1 << 16)
		q[i] = float32(math.Sqrt2 * math.Erfinv(2*p-1))
	}
	return &q
})

// contrast pulls every grey level towards mid-grey, through a table of
// the 256 levels.
//
//go:norace
func contrast(g *image.Gray, c float64) *image.Gray {
	var level [256]uint8
	for p := range level {
		level[p] = clamp(127.5 + (float64(p)-127.5)*c)
	}
	out := image.NewGray(g.Rect)
	for i, p := range g.Pix {
		out.Pix[i] = level[p]
	}
	return out
}

// keystone maps the image onto a trapezoid whose top edge is inset by s of
// the width on each side. The map from the trapezoid back to the source
// rectangle is a perspective transform that keeps horizontal lines
// horizontal (the trapezoid's top and bottom are parallel, as the
// rectangle's are), so along an output row it is affine: the row's two
// end pixels give the line sampleLine follows.
//
//go:norace
func keystone(g *image.Gray, s float64) *image.Gray {
	w, h := float64(g.Rect.Dx()), float64(g.Rect.Dy())
	inset := s * w
	// From the trapezoid in the output to the source rectangle.
	t := common.PerspectiveTransform_QuadrilateralToQuadrilateral(
		inset, 0, w-inset, 0, w, h, 0, h,
		0, 0, w, 0, w, h, 0, h)
	out := image.NewGray(g.Rect)
	nw := g.Rect.Dx()
	for y := range g.Rect.Dy() {
		ends := []float64{0.5, float64(y) + 0.5, float64(nw) - 0.5, float64(y) + 0.5}
		t.TransformPoints(ends)
		dx := 0.0
		if nw > 1 {
			dx = (ends[2] - ends[0]) / float64(nw-1)
		}
		sampleLine(out.Pix[y*out.Stride:y*out.Stride+nw], g, ends[0]-0.5, ends[1]-0.5, dx, 0)
	}
	return out
}
