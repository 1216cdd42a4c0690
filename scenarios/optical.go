package scenarios

import (
	"bytes"
	"encoding/base32"
	"fmt"
	"image"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/optical"
)

// opticalLevels are the graded degradations the coded media the suite
// makes go through, each fault on its own: level 0 is the clean image;
// levels 1 and 2 stay well inside the limits where rigs/optical measured
// every format to read at 6 pixels per module (noise and perspective lower
// still, since media with a certificate make larger QR codes and noise is
// random), so a conforming medium must read at all of them; level 3 lies
// past those limits and is recorded, not required. Each degraded level
// has one fault of each kind, in the same order.
var opticalLevels = [][]optical.Fault{
	{{}},
	{{Kind: optical.Blur, Strength: 1}, {Kind: optical.Rotation, Strength: 4}, {Kind: optical.Noise, Strength: 15, Seed: 1},
		{Kind: optical.LowContrast, Strength: 0.6}, {Kind: optical.Perspective, Strength: 0.015}},
	{{Kind: optical.Blur, Strength: 1.5}, {Kind: optical.Rotation, Strength: 8}, {Kind: optical.Noise, Strength: 30, Seed: 2},
		{Kind: optical.LowContrast, Strength: 0.4}, {Kind: optical.Perspective, Strength: 0.025}},
	{{Kind: optical.Blur, Strength: 3.5}, {Kind: optical.Rotation, Strength: 25}, {Kind: optical.Noise, Strength: 200, Seed: 3},
		{Kind: optical.LowContrast, Strength: 0.12}, {Kind: optical.Perspective, Strength: 0.2}},
}

// opticalRequired is the highest level at which every image must read:
// the clean render. Degraded levels are measured and reported; how well
// they read depends on the code's module size, which varies with each
// device's key and signature lengths, so they are figures, not verdicts.
const opticalRequired = 0

// OpticalRate is one figure of the report: how many of a medium's images
// in one format read back to the same text at one degradation level. The
// report sums them by format and level (reports.EntryOpticalRates).
type OpticalRate = reports.OpticalRate

// shownMedium is a text a case shows in one format, under its name in the
// report.
type shownMedium struct {
	name   string
	text   string
	format medium.Format
}

// opticalPlan spreads the faults of a degraded level over the n images of
// one format in a case, as a Latin square: image j meets the fault kind
// (j + level - 1) mod 5, so that every kind is met at every level by one
// image at least (more than one when n > 5), and with five images or
// more each image meets a different kind at each level. With fewer than
// five, the kinds left over go round the images again: a single image
// meets all five. plan[j] lists image j's faults.
//
// Every image still reads clean, which the case requires. The degraded
// levels are figures of the format, and the media of a case are near
// repeats of one trial for them: with every image meeting all fifteen
// faults, in three ref runs (33 images, 495 faulted reads) a fault's
// outcome was the same for every medium of the format in all but four
// reads (noise 200 read on every QR code but the small merchant code, in
// each run; perspective 0.2 failed on the large DataMatrix payment code
// once). One kind a level per image instead of five makes the optical
// cases' image work about a fifth of what it was, and keeps every
// (format, level, kind) measured in every run, on a different medium
// each level.
func opticalPlan(n, level int) [][]optical.Fault {
	faults := opticalLevels[level]
	plan := make([][]optical.Fault, n)
	for m := range max(n, len(faults)) {
		plan[m%n] = append(plan[m%n], faults[(m+level-1)%len(faults)])
	}
	return plan
}

// throughOptics renders each medium's text in its format at 6 pixels per
// module, keeps the clean image as the case's evidence, reads it, and
// reads it again after the faults opticalPlan gives it at each degraded
// level, with rigs/optical as a scanner set to that format does
// (optical.DecodeAs: a terminal knows which symbology it shows and
// scans). The images are independent, so they are made and read on every
// CPU at once; the rates are the same as one at a time.
func throughOptics(shown []shownMedium) []OpticalRate {
	GinkgoHelper()
	type shot struct {
		medium int
		level  int
		fault  optical.Fault
		read   bool
		err    error // the fault could not be applied
	}
	// Render each text once, in parallel: the PNG kept as evidence and the
	// grey levels every shot of it reads or distorts.
	type render struct {
		gray *image.Gray
		png  []byte
		err  error
	}
	renders := make([]render, len(shown))
	inParallel(len(shown), func(i int) {
		m, r := shown[i], &renders[i]
		img, err := optical.Render(m.text, m.format, 6)
		if err != nil {
			r.err = err
			return
		}
		var b bytes.Buffer
		if r.err = medium.WritePNG(&b, img); r.err != nil {
			return
		}
		bounds := img.Bounds()
		r.png = b.Bytes()
		r.gray = &image.Gray{Pix: medium.Luminance(img), Stride: bounds.Dx(), Rect: image.Rect(0, 0, bounds.Dx(), bounds.Dy())}
	})
	clean := make([]*image.Gray, len(shown))
	images := map[medium.Format][]int{} // the media shown in each format
	for i, m := range shown {
		Expect(renders[i].err).NotTo(HaveOccurred(), "%s as %s", m.name, m.format)
		recordMediumPNG(m.name, m.format, m.text, renders[i].png)
		clean[i] = renders[i].gray
		images[m.format] = append(images[m.format], i)
	}
	var shots []*shot
	for i := range shown {
		shots = append(shots, &shot{medium: i})
	}
	for level := 1; level < len(opticalLevels); level++ {
		for _, idx := range images {
			for j, faults := range opticalPlan(len(idx), level) {
				for _, fault := range faults {
					shots = append(shots, &shot{medium: idx[j], level: level, fault: fault})
				}
			}
		}
	}
	// The longest first, so that no CPU is left with a long one at the
	// end while the others idle: the highest level's images mostly fail
	// and go through every smoothing retry of DecodeAs, and a larger
	// image takes longer at any level.
	order := slices.Clone(shots)
	slices.SortStableFunc(order, func(a, b *shot) int {
		if a.level != b.level {
			return b.level - a.level
		}
		return len(clean[b.medium].Pix) - len(clean[a.medium].Pix)
	})
	inParallel(len(order), func(i int) {
		s := order[i]
		m, seen := shown[s.medium], clean[s.medium]
		if s.fault.Kind != 0 {
			g, err := s.fault.Apply(seen)
			if err != nil {
				s.err = err
				return
			}
			seen = g
		}
		got, err := optical.DecodeAs(seen, m.format)
		s.read = err == nil && got == m.text
	})
	var out []OpticalRate
	for i, m := range shown {
		for level := range opticalLevels {
			r := OpticalRate{Medium: m.name, Format: m.format.String(), Level: level}
			for _, s := range shots {
				if s.medium != i || s.level != level {
					continue
				}
				Expect(s.err).NotTo(HaveOccurred(), "%s: %v", m.name, s.fault)
				if s.fault.Kind != 0 {
					r.Faults = append(r.Faults, s.fault.String())
				}
				r.Tried++
				switch {
				case s.read:
					r.Read++
				case s.fault.Kind != 0:
					r.Failed = append(r.Failed, s.fault.String())
				default:
					r.Failed = append(r.Failed, "clean")
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// inParallel calls do(0) to do(n-1) on every CPU at once, taking the
// indices in order, and returns when every call has.
func inParallel(n int, do func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				do(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// TokenReference is the short text of a token for Code 128 (SPEC.md
// SPD-MED-7): "SPDT" and the unpadded RFC 4648 Base32 of the 16 bytes.
func TokenReference(token []byte) string {
	return "SPDT" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(token)
}

// ParseTokenReference reads a token reference back to the token.
func ParseTokenReference(ref string) ([]byte, error) {
	rest, ok := strings.CutPrefix(ref, "SPDT")
	if !ok || len(rest) != 26 {
		return nil, fmt.Errorf("scenarios: %q is not a token reference", ref)
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(rest)
}

func defineOptical(d Driver) {
	Describe("Coded media through the optical channel", func() {
		It("MUST read back every kind of medium the device makes, its payment code and the merchant's code, from QR and DataMatrix through graded camera faults",
			Case("TC-CAM-001", Positive, "SPD-MED-2", "SPD-PAY-5", "SPD-PRC-2", "C12", "C34", "C8", "C9", "C50"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				media := map[string][]byte{}
				if d.Profile().Has(Media) {
					res, err := f.Client.GenerateMedium(ctx, spd.MediumRequest{Time: Clock, PayeeNonce: []byte("NONCE-OPT")})
					Expect(err).NotTo(HaveOccurred())
					media["stored value"] = res.Envelope
				}
				if d.Profile().Has(Tokens) {
					res, err := f.Client.GenerateToken(ctx, spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour),
						Controls: medium.TokenControls{MaxTransactions: 3, MaxAmount: 20_00, Channels: medium.ChannelInStore}})
					Expect(err).NotTo(HaveOccurred())
					media["token"] = res.Envelope
				}
				if d.Profile().Has(PayBalance) {
					res := f.pay(ctx, payment(spd.KindBalance, spd.ModeOnline, 2_50))
					media["payment result"] = res.Envelope
				}
				if d.Profile().Has(PayBalance) && d.Profile().Has(Offline) {
					// The payment code a merchant's scanner reads (SPEC.md
					// 4.9): its text is Base64 of the E5 object, as a
					// medium's is of its envelope.
					code, err := f.Client.PresentCode(ctx, presentRequest(1_50, codeChallenge))
					Expect(err).NotTo(HaveOccurred())
					media["payment code"] = code.Marshal()
				}
				if d.Profile().Has(Transfers) {
					res, err := f.Client.TransferOut(ctx, spd.TransferRequest{Amount: 1_00, Currency: 978,
						Payee: []byte{0x5D, 0x1A, 0xB0, 0x00, 0xFF, 0xFF, 0xFF, 0xFE}, Time: Clock, Expiry: Clock.Add(time.Hour)})
					Expect(err).NotTo(HaveOccurred())
					media["transfer"] = res.Envelope
				}
				names := make([]string, 0, len(media))
				for name := range media {
					names = append(names, name)
				}
				sort.Strings(names)
				var shown []shownMedium
				for _, name := range names {
					for _, format := range []medium.Format{medium.QR, medium.DataMatrix} {
						shown = append(shown, shownMedium{name, medium.Text(media[name]), format})
					}
				}
				code := merchantCode(mpm("00", "01"), mpm("01", "12"), mpm("26", mpm("00", "spdlab")+mpm("01", "OPT-SHOP-1")),
					mpm("53", "978"), mpm("54", "2.50"), mpm("59", "Optik Café"), mpm("60", "Köln"), mpm("62", mpm("01", "ORDER-77")))
				shown = append(shown, shownMedium{"merchant code", code, medium.QR})
				rates := throughOptics(shown)
				var lines []string
				for _, r := range rates {
					lines = append(lines, r.String())
				}
				AddReportEntry(reports.EntryOpticalRates, rates)
				for _, r := range rates {
					if r.Level <= opticalRequired {
						Expect(r.Read).To(Equal(r.Tried), asserts("C34", "%s\n%s"), r, strings.Join(lines, "\n"))
					}
				}
			}, SpecTimeout(180*time.Second))

		It("MUST let a Code 128 token reference, read through graded camera faults, name the token the device pays under",
			Case("TC-CAM-002", Positive, Negative, "SPD-MED-7", "SPD-TOK-1", "SPD-TOK-2", "C20", "C24", "C34"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				res, err := f.Client.GenerateToken(ctx, spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour),
					Controls: medium.TokenControls{MaxTransactions: 2, MaxAmount: 20_00, Channels: medium.ChannelInStore}})
				Expect(err).NotTo(HaveOccurred())
				token := res.Info().Token
				ref := TokenReference(token)
				Expect(ref).To(HaveLen(30))
				rates := throughOptics([]shownMedium{{"token reference", ref, medium.Code128}})
				AddReportEntry(reports.EntryOpticalRates, rates)
				for _, r := range rates {
					if r.Level <= opticalRequired {
						Expect(r.Read).To(Equal(r.Tried), r.String())
					}
				}
				// What the camera read pays under the token.
				img, err := optical.Render(ref, medium.Code128, 6)
				Expect(err).NotTo(HaveOccurred())
				blurred, err := optical.Fault{Kind: optical.Blur, Strength: 2}.Apply(img)
				Expect(err).NotTo(HaveOccurred())
				scanned, format, err := optical.Decode(blurred)
				Expect(err).NotTo(HaveOccurred())
				Expect(format).To(Equal(medium.Code128))
				back, err := ParseTokenReference(scanned)
				Expect(err).NotTo(HaveOccurred())
				Expect(back).To(Equal(token))
				r := payment(spd.KindBalance, spd.ModeOnline, 5_00)
				r.Token = back
				paid := f.pay(ctx, r)
				Expect(paid.Success()).To(BeTrue())
				Expect(paid.Info().Token).To(Equal(token), "the result names the scanned token, not the account")
				// A reference one character off (misprinted, or made up)
				// names no token of the device.
				wrong := []byte(ref)
				wrong[10] = map[bool]byte{true: 'B', false: 'A'}[wrong[10] == 'A']
				other, err := ParseTokenReference(string(wrong))
				Expect(err).NotTo(HaveOccurred())
				r.Token = other
				f.declines(ctx, r, reasonUnknownToken)
			}, SpecTimeout(180*time.Second))
	})
}
