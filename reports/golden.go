package reports

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Golden evidence: a directory with one text file per case, <ID>.golden,
// recorded from a run known to be good, that later runs are compared
// against to find regressions:
//
//	# spdlab golden evidence for TC-PAY-001: MUST deduct the amount ...
//	verdict passed
//	step power-on -> ATR
//	step SELECT 00 A4 04 00 -> 9000
//	step PAY 80 60 00 00 -> 9000
//	step READ PENDING 80 62 00 00 -> error
//
// A step keeps what a conforming device must repeat: the operation, the
// command name and header, and the status word (or that the link failed).
// It leaves out what differs by design from run to run: command and
// response data (signatures, challenges, nonces, keys, times) and ATR
// bytes.

// GoldenExt ends the name of every golden file.
const GoldenExt = ".golden"

// GoldenKind says how a case differs from its golden evidence.
type GoldenKind string

// Kinds of difference.
const (
	GoldenChanged GoldenKind = "changed" // verdict or steps differ
	GoldenMissing GoldenKind = "missing" // golden case not in the run
	GoldenNew     GoldenKind = "new"     // case of the run without golden evidence
	// GoldenUnchecked: the golden case has steps but the run recorded no
	// transcript for it, so its steps could not be compared.
	GoldenUnchecked GoldenKind = "unchecked"
)

// GoldenDiff is one difference between a run and its golden evidence.
type GoldenDiff struct {
	Case string
	Kind GoldenKind
	What string
}

func (d GoldenDiff) String() string { return d.Case + ": " + string(d.Kind) + ": " + d.What }

// Golden is a case's golden evidence.
type Golden struct {
	Verdict Verdict
	Steps   []string
}

// GoldenOf is the golden evidence of one case of a run.
func GoldenOf(cs Case) Golden {
	g := Golden{Verdict: cs.Verdict}
	for _, t := range cs.Transcript {
		for _, s := range DecodeTranscript(t) {
			g.Steps = append(g.Steps, goldenStep(s))
		}
	}
	return g
}

func goldenStep(s Step) string {
	var l string
	if s.Op == "exchange" {
		l = strings.TrimSpace(s.Name + " " + s.Header)
	} else {
		l = s.Op
	}
	switch {
	case s.Error != "":
		return l + " -> error"
	case s.Op != "exchange":
		if s.ATR != "" {
			return l + " -> ATR"
		}
		return l
	}
	sw := s.SW
	if len(sw) == 4 && strings.HasPrefix(sw, "61") {
		// How many bytes remain depends on signature and certificate
		// lengths, which differ by design from run to run.
		sw = "61xx"
	}
	return l + " -> " + sw
}

// Format is the golden file's text for case cs.
func (g Golden) Format(cs Case) string {
	var b strings.Builder
	title := strings.ReplaceAll(cs.Description, "\n", " ")
	fmt.Fprintf(&b, "# spdlab golden evidence for %s: %s\nverdict %s\n", cs.ID, title, g.Verdict)
	for _, s := range g.Steps {
		b.WriteString("step " + s + "\n")
	}
	return b.String()
}

// ParseGolden reads a golden file.
func ParseGolden(b []byte) (Golden, error) {
	var g Golden
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimRight(sc.Text(), "\r")
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "verdict "):
			if g.Verdict != "" {
				return Golden{}, fmt.Errorf("reports: golden line %d: a second verdict", n)
			}
			switch v := Verdict(strings.TrimPrefix(l, "verdict ")); v {
			case Passed, Failed, NotApplicable, NotRun:
				g.Verdict = v
			default:
				return Golden{}, fmt.Errorf("reports: golden line %d: unknown verdict %q", n, v)
			}
		case strings.HasPrefix(l, "step "):
			g.Steps = append(g.Steps, strings.TrimPrefix(l, "step "))
		default:
			return Golden{}, fmt.Errorf("reports: golden line %d: want 'verdict V' or 'step S'", n)
		}
	}
	if err := sc.Err(); err != nil {
		return Golden{}, fmt.Errorf("reports: golden: %w", err)
	}
	if g.Verdict == "" {
		return Golden{}, errors.New("reports: golden file has no verdict")
	}
	return g, nil
}

// RecordGolden writes the golden evidence of every case of c into dir,
// replacing the files of those cases.
func RecordGolden(dir string, c Certificate) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	for _, cs := range c.Cases {
		if !caseIDPattern.MatchString(cs.ID) {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, cs.ID+GoldenExt), []byte(GoldenOf(cs).Format(cs)), 0o644); err != nil {
			return fmt.Errorf("reports: %w", err)
		}
	}
	return nil
}

// CompareGolden compares every case of c with the golden evidence in dir
// and lists the differences, by case ID.
func CompareGolden(dir string, c Certificate) ([]GoldenDiff, error) {
	golden := map[string]Golden{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reports: no golden evidence in %s: record it first", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), GoldenExt)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reports: %w", err)
		}
		g, err := ParseGolden(b)
		if err != nil {
			return nil, fmt.Errorf("%w (%s)", err, e.Name())
		}
		golden[id] = g
	}
	if len(golden) == 0 {
		return nil, fmt.Errorf("reports: no golden evidence in %s: record it first", dir)
	}
	var diffs []GoldenDiff
	seen := map[string]bool{}
	for _, cs := range c.Cases {
		seen[cs.ID] = true
		want, ok := golden[cs.ID]
		if !ok {
			diffs = append(diffs, GoldenDiff{cs.ID, GoldenNew, "no golden evidence (" + string(cs.Verdict) + ")"})
			continue
		}
		diffs = append(diffs, compareCase(cs.ID, want, GoldenOf(cs))...)
	}
	for id := range golden {
		if !seen[id] {
			diffs = append(diffs, GoldenDiff{id, GoldenMissing, "in the golden evidence, not in this run"})
		}
	}
	sort.SliceStable(diffs, func(i, j int) bool { return diffs[i].Case < diffs[j].Case })
	return diffs, nil
}

func compareCase(id string, want, got Golden) []GoldenDiff {
	var d []GoldenDiff
	if want.Verdict != got.Verdict {
		d = append(d, GoldenDiff{id, GoldenChanged, fmt.Sprintf("verdict %s, golden %s", got.Verdict, want.Verdict)})
	}
	switch {
	case len(want.Steps) == 0 || len(got.Steps) == 0 && want.Verdict != got.Verdict:
	case len(got.Steps) == 0:
		d = append(d, GoldenDiff{id, GoldenUnchecked, fmt.Sprintf("the run recorded no transcript; the golden one has %d steps", len(want.Steps))})
	default:
		for i := 0; i < len(want.Steps) || i < len(got.Steps); i++ {
			var w, g string
			if i < len(want.Steps) {
				w = want.Steps[i]
			}
			if i < len(got.Steps) {
				g = got.Steps[i]
			}
			if w != g {
				d = append(d, GoldenDiff{id, GoldenChanged, fmt.Sprintf("step %d is %q, golden %q (%d steps, golden %d)",
					i+1, orEnd(g), orEnd(w), len(got.Steps), len(want.Steps))})
				break
			}
		}
	}
	return d
}

func orEnd(s string) string {
	if s == "" {
		return "(end of transcript)"
	}
	return s
}

// Regressions are the differences that fail a comparison: changed and
// missing cases. New and unchecked cases are reported, not failed.
func Regressions(diffs []GoldenDiff) []GoldenDiff {
	var r []GoldenDiff
	for _, d := range diffs {
		if d.Kind == GoldenChanged || d.Kind == GoldenMissing {
			r = append(r, d)
		}
	}
	return r
}
