package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/formatter"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/scenarios"
)

// progress prints one line per case as a run goes, in place of Ginkgo's
// dots:
//
//	[12/70] TC-PAY-003 passed 0.21 s, about 40 s left
//
// and, at the end, how many cases passed, failed and were not applicable.
// Colour only on a terminal, and never with NO_COLOR set.
type progress struct {
	w     io.Writer
	color bool
	now   func() time.Time

	mu      sync.Mutex
	total   int
	done    int
	started time.Time
	counts  map[string]int
}

func newProgress(w io.Writer, color bool) *progress {
	return &progress{w: w, color: color, now: time.Now, counts: map[string]int{}}
}

// colorWanted reports whether w is a terminal and NO_COLOR
// (https://no-color.org) is unset or empty.
func colorWanted(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// startProgress hooks a progress printer to e.stdout into the suite about
// to run and silences Ginkgo's own console output (its report files are
// unaffected). Call it after Define, before RunSpecs, with the reporter
// configuration RunSpecs will get; it returns that configuration adjusted.
func startProgress(e *env, rc types.ReporterConfig) types.ReporterConfig {
	p := newProgress(e.stdout, colorWanted(e.stdout))
	ginkgo.ReportBeforeSuite(func(r ginkgo.Report) { p.begin(r.PreRunStats.SpecsThatWillRun) })
	ginkgo.ReportAfterEach(func(s ginkgo.SpecReport) { p.spec(s) })
	ginkgo.ReportAfterSuite("progress", func(r ginkgo.Report) { p.end(r) })
	formatter.ColorableStdOut = io.Discard
	rc.NoColor = true
	rc.Succinct = true
	return rc
}

func (p *progress) begin(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total, p.started = total, p.now()
	fmt.Fprintf(p.w, "running %d cases\n", total)
}

const (
	ansiGreen  = "\x1b[32m"
	ansiRed    = "\x1b[31;1m"
	ansiYellow = "\x1b[33m"
	ansiReset  = "\x1b[0m"
)

// outcome names a spec's end state as the certificate counts it.
func outcome(s types.SpecReport) (word, colour string) {
	switch {
	case s.State == types.SpecStatePassed:
		return "passed", ansiGreen
	case s.State == types.SpecStateSkipped && strings.HasPrefix(s.Failure.Message, scenarios.NotApplicablePrefix):
		return "not applicable", ansiYellow
	case s.State == types.SpecStateSkipped:
		return "skipped", ansiYellow
	case s.State == types.SpecStatePending:
		return "pending", ansiYellow
	case s.State == types.SpecStateInterrupted:
		return "INTERRUPTED", ansiRed
	case s.State == types.SpecStateTimedout:
		return "TIMED OUT", ansiRed
	}
	return "FAILED", ansiRed
}

// specName is a spec's case ID label, or its text when it has none.
func specName(s types.SpecReport) string {
	for _, l := range s.Labels() {
		if caseLabel.MatchString(l) {
			return l
		}
	}
	return s.LeafNodeText
}

func (p *progress) spec(s types.SpecReport) {
	if s.LeafNodeType != types.NodeTypeIt {
		return
	}
	// Cases a filter left out are not part of the run.
	if s.State == types.SpecStateSkipped && s.Failure.Message == "" && s.RunTime == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	word, colour := outcome(s)
	p.counts[word]++
	line := fmt.Sprintf("[%d/%d] %s %s %.2f s", p.done, p.total, specName(s), p.paint(word, colour), s.RunTime.Seconds())
	if left := p.total - p.done; left > 0 {
		per := p.now().Sub(p.started) / time.Duration(p.done)
		line += ", about " + roughDuration(per*time.Duration(left)) + " left"
	}
	fmt.Fprintln(p.w, line)
	if word != "passed" && s.Failure.Message != "" {
		msg := strings.TrimSpace(s.Failure.Message)
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i] + " ..."
		}
		loc := s.Failure.Location
		if loc.FileName != "" && word != "not applicable" {
			msg = fmt.Sprintf("%s:%d: %s", baseName(loc.FileName), loc.LineNumber, msg)
		}
		fmt.Fprintf(p.w, "        %s\n", msg)
	}
}

func (p *progress) end(r types.Report) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	for _, w := range []string{"passed", "FAILED", "TIMED OUT", "INTERRUPTED", "not applicable", "skipped", "pending"} {
		if n := p.counts[w]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, w))
		}
	}
	fmt.Fprintf(p.w, "ran %d of %d cases in %s: %s\n", p.done, p.total, roughDuration(r.RunTime), strings.Join(parts, ", "))
}

func (p *progress) paint(s, colour string) string {
	if !p.color {
		return s
	}
	return colour + s + ansiReset
}

// roughDuration rounds d for a person: 40 s, 3 min 20 s, 1 h 05 min.
func roughDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "under 1 s"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		d = d.Round(10 * time.Second)
		return fmt.Sprintf("%d min %02d s", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%d h %02d min", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

func baseName(path string) string {
	if i := strings.LastIndexAny(path, `/\`); i >= 0 {
		return path[i+1:]
	}
	return path
}
