package reports

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spdlab/spdlab/reference"
)

// ClaimRow is one row of the claims grid.
type ClaimRow struct {
	Claim   string
	Verdict Verdict
}

// NotCovered marks a claim or requirement no case of the run checks.
const NotCovered Verdict = "not covered"

// LabelOnly marks a claim the cases of the run are labelled with but
// none, passing, asserted in its own terms (EntryClaimsAsserted): a label
// is not a check.
const LabelOnly Verdict = "label only"

// Claims is how many claims CLAIMS.md numbers.
const Claims = 50

// ClaimRows lists C1 to C50 in order, with the claims no case of the run
// checks as not covered.
func (c Certificate) ClaimRows() []ClaimRow {
	rows := make([]ClaimRow, 0, Claims)
	for n := 1; n <= Claims; n++ {
		cl := "C" + strconv.Itoa(n)
		v, ok := c.Claims[cl]
		if !ok {
			v = NotCovered
		}
		rows = append(rows, ClaimRow{cl, v})
	}
	for cl, v := range c.Claims { // claims beyond C50, if a suite names any
		if claimNumber(cl) > Claims {
			rows = append(rows, ClaimRow{cl, v})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return claimNumber(rows[i].Claim) < claimNumber(rows[j].Claim) })
	return rows
}

// TraceRow is one requirement of the traceability matrix: the cases that
// cite it and the verdict over them (failed if any failed, else not run if
// any did not run, else passed if any passed, else not applicable; not
// covered when no case cites it).
type TraceRow struct {
	Requirement Requirement
	Text        string
	Cases       []Case
	Verdict     Verdict
	// Defined is false for a requirement a case cites that SPEC.md does
	// not define.
	Defined bool
}

// Traceability is the requirement-by-requirement matrix: every requirement
// of c.Run.Requirements (SPEC.md's, when the run gives none) in order, then
// any requirement a case cites that SPEC.md does not define.
func (c Certificate) Traceability() []TraceRow {
	reqs := c.Run.Requirements
	texts := map[string]string{}
	if len(reqs) == 0 {
		for _, r := range reference.Requirements() {
			reqs = append(reqs, Requirement{ID: r.ID, Claims: r.Claims, Section: r.Section})
			texts[r.ID] = r.Text
		}
	} else {
		for _, r := range reference.Requirements() {
			texts[r.ID] = r.Text
		}
	}
	byReq := map[string][]Case{}
	for _, cs := range c.Cases {
		for _, r := range cs.Requirements {
			byReq[r] = append(byReq[r], cs)
		}
	}
	var rows []TraceRow
	defined := map[string]bool{}
	for _, r := range reqs {
		defined[r.ID] = true
		rows = append(rows, traceRow(r, texts[r.ID], byReq[r.ID], true))
	}
	var extra []string
	for id := range byReq {
		if !defined[id] {
			extra = append(extra, id)
		}
	}
	sort.Strings(extra)
	for _, id := range extra {
		rows = append(rows, traceRow(Requirement{ID: id}, "not defined in SPEC.md", byReq[id], false))
	}
	return rows
}

func traceRow(r Requirement, text string, cases []Case, defined bool) TraceRow {
	row := TraceRow{Requirement: r, Text: text, Cases: cases, Verdict: NotCovered, Defined: defined}
	var v Verdict
	for _, cs := range cases {
		v = merge(v, cs.Verdict)
	}
	if v != "" {
		row.Verdict = v
	}
	return row
}

// ReasonGroup is the cases that share one reason.
type ReasonGroup struct {
	Reason string
	IDs    []string
}

func (c Certificate) byReason(v Verdict) []ReasonGroup {
	idx := map[string]int{}
	var gs []ReasonGroup
	for _, cs := range c.Cases {
		if cs.Verdict != v {
			continue
		}
		i, ok := idx[cs.Reason]
		if !ok {
			i = len(gs)
			idx[cs.Reason] = i
			gs = append(gs, ReasonGroup{Reason: cs.Reason})
		}
		gs[i].IDs = append(gs[i].IDs, cs.ID)
	}
	sort.SliceStable(gs, func(i, j int) bool { return len(gs[i].IDs) > len(gs[j].IDs) })
	return gs
}

// AreaRow counts one area's cases by verdict.
type AreaRow struct {
	Area                           string
	Passed, Failed, NotApp, NotRun int
}

func (c Certificate) areas() []AreaRow {
	idx := map[string]int{}
	var rows []AreaRow
	for _, cs := range c.Cases {
		a := cs.Area()
		i, ok := idx[a]
		if !ok {
			i = len(rows)
			idx[a] = i
			rows = append(rows, AreaRow{Area: a})
		}
		switch cs.Verdict {
		case Passed:
			rows[i].Passed++
		case Failed:
			rows[i].Failed++
		case NotApplicable:
			rows[i].NotApp++
		default:
			rows[i].NotRun++
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Area < rows[j].Area })
	return rows
}

// caseView is a case with its decoded transcript.
type caseView struct {
	Case
	Steps [][]timedStep
}

// timedStep is a transcript step (Step's fields but Raw) with its
// round-trip time, 0 when the case recorded none. It copies the fields
// rather than embed a Step: the template looks up every field of every
// step by name, and reflect finds a field of an embedded struct only by
// searching the embedded structs, with allocations, on each look-up.
type timedStep struct {
	Op, Name, Header, Data, DataTLV string
	Ne                              int
	SW, SWMeaning                   string
	OK                              bool
	Resp, RespTLV, ATR, Error       string
	Time                            time.Duration
}

func newTimedStep(s Step, t time.Duration) timedStep {
	return timedStep{Op: s.Op, Name: s.Name, Header: s.Header, Data: s.Data, DataTLV: s.DataTLV, Ne: s.Ne,
		SW: s.SW, SWMeaning: s.SWMeaning, OK: s.OK, Resp: s.Resp, RespTLV: s.RespTLV, ATR: s.ATR, Error: s.Error, Time: t}
}

// page is what the HTML template renders.
type page struct {
	Certificate
	Identity     []kv
	NA, NotRunBy []ReasonGroup
	Trace        []TraceRow
	TraceSummary map[Verdict]int
	Claimed      []ClaimRow
	Areas        []AreaRow
	AreaPlot     template.HTML
	DurationPlot template.HTML
	LatencyPlot  template.HTML
	OpticalPlot  template.HTML
	RoundTrips   []RoundTrip
	Optical      []OpticalSummary
	Views        []caseView
	Ran          int
	Total        time.Duration
}

type kv struct{ K, V string }

func (c Certificate) page(ts transcripts) page {
	p := page{Certificate: c, NA: c.byReason(NotApplicable), NotRunBy: c.byReason(NotRun),
		Trace: c.Traceability(), Claimed: c.ClaimRows(), Areas: c.areas(), TraceSummary: map[Verdict]int{}}
	for _, r := range p.Trace {
		if r.Defined {
			p.TraceSummary[r.Verdict]++
		}
	}
	for k, cs := range c.Cases {
		v := caseView{Case: cs}
		for i := range cs.Transcript {
			var times []time.Duration
			if i < len(cs.RoundTrips) {
				times = cs.RoundTrips[i]
			}
			var steps []timedStep
			for j, s := range ts[k][i] {
				var t time.Duration
				if j < len(times) {
					t = times[j]
				}
				steps = append(steps, newTimedStep(s, t))
			}
			v.Steps = append(v.Steps, steps)
		}
		p.Views = append(p.Views, v)
		if cs.Verdict == Passed || cs.Verdict == Failed {
			p.Ran++
		}
		p.Total += cs.Duration
	}
	p.AreaPlot = areaPlot(p.Areas)
	p.DurationPlot = durationPlot(c.Cases)
	p.RoundTrips = c.roundTrips(ts)
	p.LatencyPlot = latencyPlot(p.RoundTrips, c.Run.DUT)
	p.Optical = c.OpticalRates()
	p.OpticalPlot = opticalPlot(p.Optical)
	return p
}

// FormatDuration shows d the way the report does: "0.21 s", "12 ms".
func FormatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// certTemplate is the page's template, parsed on first use: a process
// that writes no page (the suite binary of a mutant run, most spdlab
// commands) does not pay for parsing it.
var certTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("cert").Funcs(template.FuncMap{
		"join":  func(s []string) string { return strings.Join(s, ", ") },
		"class": func(v Verdict) string { return strings.ReplaceAll(string(v), " ", "-") },
		"dur":   FormatDuration,
		"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"sub":   func(a, b time.Time) string { return FormatDuration(b.Sub(a)) },
		"verdictClass": func(v string) string {
			switch v {
			case VerdictCertified:
				return "v-certified"
			case VerdictNotCertified:
				return "v-failed"
			}
			return "v-nocert"
		},
		"open":  func(v Verdict) bool { return v == Failed },
		"bytes": func(hex string) int { return len(hex) / 2 },
		"orNone": func(s string) string {
			if s == "" {
				return "none"
			}
			return s
		},
	}).Parse(pageTemplate))
})

// WriteHTML writes the certificate as one self-contained HTML page: no
// script, nothing loaded from anywhere, printable.
func (c Certificate) WriteHTML(w io.Writer) error {
	return c.writeHTML(w, c.decodeTranscripts())
}

// writeHTML is WriteHTML from c's transcripts decoded as ts.
func (c Certificate) writeHTML(w io.Writer, ts transcripts) error {
	if err := certTemplate().Execute(w, c.page(ts)); err != nil {
		return fmt.Errorf("reports: html: %w", err)
	}
	return nil
}

// Summary is the verdict and the counts on one line, then one line per
// finding that kept the run from being a certificate.
func (c Certificate) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d passed, %d failed, %d not applicable, %d not run", c.Verdict, c.Passed, c.Failed, c.NotApplic, c.NotRun)
	if c.Run.CaseCount > 0 {
		fmt.Fprintf(&b, " (suite: %d cases)", c.Run.CaseCount)
	}
	if !c.Certified {
		for _, f := range c.Findings {
			b.WriteString("\n  - " + f)
		}
	}
	return b.String()
}
