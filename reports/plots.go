package reports

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"
)

// Colours of the verdicts in plots, the same as the page's.
var verdictFill = map[Verdict]string{
	Passed:        "#43a047",
	Failed:        "#e53935",
	NotApplicable: "#bdbdbd",
	NotRun:        "#fbc02d",
}

func legend() string {
	var b strings.Builder
	b.WriteString(`<div class="legend">`)
	for _, v := range []Verdict{Passed, Failed, NotApplicable, NotRun} {
		fmt.Fprintf(&b, `<span><i style="background:%s"></i>%s</span>`, verdictFill[v], v)
	}
	b.WriteString(`</div>`)
	return b.String()
}

// areaPlot is a horizontal stacked bar per area: its cases by verdict.
func areaPlot(rows []AreaRow) template.HTML {
	if len(rows) == 0 {
		return `<p class="muted">No cases.</p>`
	}
	const label, barW, rowH = 90, 600, 20
	max := 0
	for _, r := range rows {
		if n := r.Passed + r.Failed + r.NotApp + r.NotRun; n > max {
			max = n
		}
	}
	w, h := label+barW+60, len(rows)*rowH+10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="cases by area and verdict" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`, w, h, w, h)
	for i, r := range rows {
		y := 5 + i*rowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, label-6, y+13, html.EscapeString(r.Area))
		x := float64(label)
		for _, seg := range []struct {
			v Verdict
			n int
		}{{Passed, r.Passed}, {Failed, r.Failed}, {NotApplicable, r.NotApp}, {NotRun, r.NotRun}} {
			if seg.n == 0 {
				continue
			}
			sw := float64(seg.n) / float64(max) * barW
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %d %s</title></rect>`,
				x, y, sw, rowH-4, verdictFill[seg.v], html.EscapeString(r.Area), seg.n, seg.v)
			if sw >= 14 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#000">%d</text>`, x+sw/2, y+12, seg.n)
			}
			x += sw
		}
	}
	b.WriteString(`</svg>`)
	b.WriteString(legend())
	return template.HTML(b.String())
}

// durationPlot is a bar per case that ran, in case order, its height its
// duration on a linear scale, coloured by verdict.
func durationPlot(cases []Case) template.HTML {
	var ran []Case
	var max time.Duration
	for _, c := range cases {
		if c.Verdict == Passed || c.Verdict == Failed {
			ran = append(ran, c)
			if c.Duration > max {
				max = c.Duration
			}
		}
	}
	if len(ran) == 0 || max <= 0 {
		return `<p class="muted">No case ran.</p>`
	}
	const left, top, plotH, bottom = 70, 10, 220, 70
	bw := 10.0
	if len(ran) < 40 {
		bw = 18
	}
	plotW := bw * float64(len(ran))
	w, h := left+int(math.Ceil(plotW))+20, top+plotH+bottom
	scale := niceCeil(max)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="duration of each case" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="10">`, w, h, w, h)
	for i := 0; i <= 4; i++ {
		y := float64(top+plotH) - float64(i)/4*plotH
		fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e0e0e0"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`,
			left, float64(left)+plotW, y, y, left-4, y+3, html.EscapeString(FormatDuration(scale*time.Duration(i)/4)))
	}
	prevArea, lastLabel := "", -100.0
	for i, c := range ran {
		x := float64(left) + float64(i)*bw
		bh := float64(c.Duration) / float64(scale) * plotH
		if bh < 1 {
			bh = 1
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
			x+1, float64(top+plotH)-bh, bw-2, bh, verdictFill[c.Verdict], html.EscapeString(c.ID), c.Verdict, html.EscapeString(FormatDuration(c.Duration)))
		if a := c.Area(); a != prevArea {
			prevArea = a
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#9e9e9e"/>`, x, x, top+plotH, top+plotH+6)
			if x-lastLabel >= 16 { // areas of one or two cases would overprint their neighbours
				lastLabel = x
				fmt.Fprintf(&b, `<text transform="translate(%.1f %d) rotate(50)">%s</text>`, x+2, top+plotH+10, html.EscapeString(strings.TrimPrefix(a, "TC-")))
			}
		}
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%d" y2="%d" stroke="#616161"/>`, left, float64(left)+plotW, top+plotH, top+plotH)
	b.WriteString(`</svg>`)
	b.WriteString(legend())
	return template.HTML(b.String())
}

// niceCeil rounds d up to 1, 2 or 5 times a power of ten.
func niceCeil(d time.Duration) time.Duration {
	if d <= 0 {
		return 1
	}
	p := time.Duration(1)
	for p*10 <= d {
		p *= 10
	}
	for _, m := range []time.Duration{1, 2, 5, 10} {
		if m*p >= d {
			return m * p
		}
	}
	return 10 * p
}
