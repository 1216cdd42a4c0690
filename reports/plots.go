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

// logDurationSpread is the ratio of the longest to the shortest case
// above which durationPlot draws a logarithmic axis: on a linear one a
// few slow cases (the optical ones take seconds) flatten every other bar
// to nothing.
const logDurationSpread = 50

// durationPlot is a bar per case that ran, in case order, its height its
// duration, coloured by verdict: on a linear scale, or on a logarithmic
// one (a grid line a decade) when the durations spread over more than
// logDurationSpread.
func durationPlot(cases []Case) template.HTML {
	var ran []Case
	var max, min time.Duration
	for _, c := range cases {
		if c.Verdict == Passed || c.Verdict == Failed {
			ran = append(ran, c)
			if c.Duration > max {
				max = c.Duration
			}
			if c.Duration > 0 && (min == 0 || c.Duration < min) {
				min = c.Duration
			}
		}
	}
	if len(ran) == 0 || max <= 0 {
		return `<p class="muted">No case ran.</p>`
	}
	if max/min > logDurationSpread {
		hi := niceFloor(max)
		if hi < max {
			hi *= 10
		}
		return durationPlotLog(ran, niceFloor(min), hi)
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

// durationPlotLog draws durationPlot's bars on a logarithmic axis from lo
// to hi, powers of ten.
func durationPlotLog(ran []Case, lo, hi time.Duration) template.HTML {
	const left, top, plotH, bottom = 70, 10, 220, 70
	bw := 10.0
	if len(ran) < 40 {
		bw = 18
	}
	plotW := bw * float64(len(ran))
	w, h := left+int(math.Ceil(plotW))+20, top+plotH+bottom
	llo, lhi := math.Log10(float64(lo)), math.Log10(float64(hi))
	if lhi <= llo {
		lhi = llo + 1
	}
	height := func(d time.Duration) float64 {
		if d < lo {
			d = lo
		}
		return (math.Log10(float64(d)) - llo) / (lhi - llo) * plotH
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="duration of each case" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="10">`, w, h, w, h)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#616161">log scale</text>`, left+int(plotW), top+8)
	for d := lo; d <= hi; d *= 10 {
		y := float64(top+plotH) - height(d)
		fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e0e0e0"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`,
			left, float64(left)+plotW, y, y, left-4, y+3, html.EscapeString(FormatDuration(d)))
	}
	prevArea, lastLabel := "", -100.0
	for i, c := range ran {
		x := float64(left) + float64(i)*bw
		bh := math.Max(height(c.Duration), 1)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
			x+1, float64(top+plotH)-bh, bw-2, bh, verdictFill[c.Verdict], html.EscapeString(c.ID), c.Verdict, html.EscapeString(FormatDuration(c.Duration)))
		if a := c.Area(); a != prevArea {
			prevArea = a
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#9e9e9e"/>`, x, x, top+plotH, top+plotH+6)
			if x-lastLabel >= 16 {
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

// latencyPlot draws, per command, the spread of its round-trip times on
// a logarithmic axis: a line from the fastest to the slowest exchange, a
// box from the median to the 90th percentile, a mark at the median.
func latencyPlot(rows []RoundTrip, dut string) template.HTML {
	if len(rows) == 0 {
		return `<p class="muted">No round-trip times were recorded in this run.</p>`
	}
	lo, hi := rows[0].Min, rows[0].Max
	for _, r := range rows {
		if r.Min < lo {
			lo = r.Min
		}
		if r.Max > hi {
			hi = r.Max
		}
	}
	if lo < time.Microsecond {
		lo = time.Microsecond
	}
	lo, hi = niceFloor(lo), niceCeil(hi)
	if hi <= lo {
		hi = lo * 10
	}
	const label, plotW, rowH, top, right = 190, 620, 18, 24, 170
	w, h := label+plotW+right, top+len(rows)*rowH+30
	llo, lhi := math.Log10(float64(lo)), math.Log10(float64(hi))
	x := func(d time.Duration) float64 {
		if d < lo {
			d = lo
		}
		return label + (math.Log10(float64(d))-llo)/(lhi-llo)*plotW
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="round-trip time per command" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`, w, h, w, h)
	fmt.Fprintf(&b, `<text x="%d" y="12" font-weight="bold">%s: round-trip time per command (log scale)</text>`, label, html.EscapeString(dut))
	for d := lo; d <= hi; d *= 10 {
		for _, m := range []time.Duration{1, 2, 5} {
			t := d * m
			if t > hi {
				break
			}
			stroke := "#eeeeee"
			if m == 1 {
				stroke = "#cfcfcf"
			}
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="%s"/>`, x(t), x(t), top, top+len(rows)*rowH, stroke)
			if m == 1 || lhi-llo <= 2 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>`, x(t), top+len(rows)*rowH+14, html.EscapeString(FormatDuration(t)))
			}
		}
	}
	for i, r := range rows {
		y := float64(top + i*rowH + rowH/2)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, label-6, y+4, html.EscapeString(r.Command))
		fmt.Fprintf(&b, `<g><title>%s: %d exchanges in %d cases; min %s, median %s, 90th percentile %s, max %s</title>`,
			html.EscapeString(r.Command), r.N, r.Cases, FormatDuration(r.Min), FormatDuration(r.Median), FormatDuration(r.P90), FormatDuration(r.Max))
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#757575"/>`, x(r.Min), x(r.Max), y, y)
		bx := x(r.Median)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="#90caf9" stroke="#1565c0"/>`, bx, y-5, math.Max(x(r.P90)-bx, 1), 10)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#0d47a1" stroke-width="2"/></g>`, bx, bx, y-6, y+6)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f">median %s &#183; n %d</text>`, label+plotW+8, y+4, html.EscapeString(FormatDuration(r.Median)), r.N)
	}
	b.WriteString(`</svg>`)
	b.WriteString(`<div class="legend"><span><i style="background:#757575;height:2px"></i>fastest to slowest</span><span><i style="background:#90caf9"></i>median to 90th percentile</span></div>`)
	return template.HTML(b.String())
}

// niceFloor rounds d down to a power of ten.
func niceFloor(d time.Duration) time.Duration {
	p := time.Duration(1)
	for p*10 <= d {
		p *= 10
	}
	return p
}

// formatFill colours the symbologies in the optical plot.
var formatFill = []string{"#1e88e5", "#8e24aa", "#fb8c00", "#00897b"}

// opticalPlot draws the decode rate of each format (a bar each) at each
// degradation level (a group each), 0 to 100 %.
func opticalPlot(rows []OpticalSummary) template.HTML {
	if len(rows) == 0 {
		return `<p class="muted">No optical decode rates were measured in this run.</p>`
	}
	var formats []string
	levels := 0
	seen := map[string]bool{}
	rate := map[string]OpticalSummary{}
	for _, r := range rows {
		if !seen[r.Format] {
			seen[r.Format] = true
			formats = append(formats, r.Format)
		}
		if r.Level+1 > levels {
			levels = r.Level + 1
		}
		rate[fmt.Sprintf("%s/%d", r.Format, r.Level)] = r
	}
	const left, top, plotH, bottom, barW, gap = 50, 12, 200, 40, 34, 30
	groupW := barW*len(formats) + gap
	w, h := left+groupW*levels+20, top+plotH+bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="optical decode rate by format and degradation level" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`, w, h, w, h)
	for i := 0; i <= 4; i++ {
		y := float64(top+plotH) - float64(i)/4*plotH
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e0e0e0"/><text x="%d" y="%.1f" text-anchor="end">%d %%</text>`,
			left, w-20, y, y, left-4, y+4, i*25)
	}
	for l := 0; l < levels; l++ {
		gx := left + gap/2 + l*groupW
		for fi, f := range formats {
			r, ok := rate[fmt.Sprintf("%s/%d", f, l)]
			if !ok {
				continue
			}
			bh := r.Rate() / 100 * plotH
			x := gx + fi*barW
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s, level %d: %d of %d images read</title></rect>`,
				x+2, float64(top+plotH)-bh, barW-4, math.Max(bh, 0.5), formatFill[fi%len(formatFill)], html.EscapeString(f), l, r.Read, r.Tried)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="middle" font-size="10">%.0f</text>`, x+barW/2, float64(top+plotH)-bh-3, r.Rate())
		}
		name := fmt.Sprintf("level %d", l)
		if l == 0 {
			name = "level 0 (clean)"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`, gx+barW*len(formats)/2, top+plotH+16, name)
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#616161"/>`, left, w-20, top+plotH, top+plotH)
	b.WriteString(`</svg><div class="legend">`)
	for fi, f := range formats {
		fmt.Fprintf(&b, `<span><i style="background:%s"></i>%s</span>`, formatFill[fi%len(formatFill)], html.EscapeString(f))
	}
	b.WriteString(`</div>`)
	return template.HTML(b.String())
}
