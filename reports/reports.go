// Package reports turns the conformance suite's Ginkgo JSON report into a
// certification report: an HTML certificate a person reads, a JUnit XML file
// CI systems read, certificate.json for programs, and a manifest signed with
// the lab's key that binds every file of the run directory together. The
// evidence a case records besides its verdict (evidence.go: transcripts,
// round-trip times, coded-medium images, optical decode rates) becomes
// decoded transcripts, PNG files under media/ and plots of the page.
//
// A conformance case is a Ginkgo spec labelled with its case ID (TC-PAY-001),
// the requirements of reference/SPEC.md it checks (SPD-PAY-3) and the claims
// of shared/CLAIMS.md behind them (C2). A spec skipped with a message that
// starts with NotApplicablePrefix is "not applicable": the implementation
// conformance statement (ICS) or the rig excludes it. Any other skip means
// the case did not run, and a run with such a case is not a certificate.
// The verdict rules are those of Build.
package reports

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reference"
)

// Verdict of one case.
type Verdict string

// Case verdicts.
const (
	Passed        Verdict = "passed"
	Failed        Verdict = "failed"
	NotApplicable Verdict = "not applicable"
	NotRun        Verdict = "not run"
)

// Run verdicts: Certificate.Verdict is one of these.
const (
	VerdictCertified    = "CERTIFIED"
	VerdictNotCertified = "NOT CERTIFIED"
	VerdictPartial      = "PARTIAL RUN: not a certificate"
	VerdictInterrupted  = "INTERRUPTED: not a certificate"
	VerdictIncomplete   = "INCOMPLETE: not a certificate"
)

// NotApplicablePrefix starts the skip message of a case that the ICS or the
// rig excludes; it is the same text as scenarios.NotApplicablePrefix.
const NotApplicablePrefix = "not applicable: "

// Ginkgo's own messages for specs it skipped without running them.
const (
	ginkgoOrderedFailed  = "Spec skipped because an earlier spec in an ordered container failed"
	ginkgoBeforeAllFail  = "Spec skipped because a BeforeAll node failed"
	ginkgoBeforeAllSkip  = "Spec skipped because Skip() was called in "
	reasonNotReached     = "not run: the run stopped before this case"
	reasonFiltered       = "not run: outside the focus or label filter of this run"
	reasonNoMessage      = "not run: skipped without a reason"
	reasonPending        = "not run: the case is marked pending"
	reasonInterruptedRun = "not run: interrupted while running"
)

var (
	caseIDPattern = regexp.MustCompile(`^TC-[A-Z]+-[0-9]+$`)
	reqPattern    = regexp.MustCompile(`^SPD-[A-Z]+-[0-9]+$`)
	claimPattern  = regexp.MustCompile(`^C([0-9]+)$`)
)

// Case is one conformance case's outcome. Reason is empty only for a
// passed case.
type Case struct {
	ID           string        `json:"id"`
	Description  string        `json:"description"`
	Requirements []string      `json:"requirements"`
	Claims       []string      `json:"claims"`
	Verdict      Verdict       `json:"verdict"`
	Reason       string        `json:"reason,omitempty"`
	Location     string        `json:"location,omitempty"`
	Duration     time.Duration `json:"duration_ns"`
	Transcript   []string      `json:"transcript,omitempty"`
	// RoundTrips are the round-trip times of each transcript's lines,
	// RoundTrips[i][j] for line j of Transcript[i].
	RoundTrips [][]time.Duration `json:"round_trips_ns,omitempty"`
	// Media are the coded-medium images the case made.
	Media []Medium `json:"media,omitempty"`
	// Optical are the case's optical decode rates.
	Optical []OpticalRate `json:"optical,omitempty"`
	// Asserted are the claims of Claims the case checked in their own
	// terms (EntryClaimsAsserted); the others it carries by label alone.
	Asserted []string `json:"asserted,omitempty"`
	// Notes are report entries of the case that could not be read.
	Notes []string `json:"notes,omitempty"`
}

// Area is the case's area: "TC-PAY" for TC-PAY-001.
func (c Case) Area() string {
	if i := strings.LastIndexByte(c.ID, '-'); i > 0 {
		return c.ID[:i]
	}
	return c.ID
}

// Certificate is the whole certification outcome of one run.
type Certificate struct {
	// Verdict is one of the Verdict* constants; Certified is true only
	// for VerdictCertified.
	Verdict   string  `json:"verdict"`
	Certified bool    `json:"certified"`
	Run       RunInfo `json:"run"`
	Suite     string  `json:"suite"`
	Cases     []Case  `json:"cases"`
	Passed    int     `json:"passed"`
	Failed    int     `json:"failed"`
	NotApplic int     `json:"not_applicable"`
	NotRun    int     `json:"not_run"`
	// Missing is how many of the suite's RunInfo.CaseCount cases the
	// report does not hold at all.
	Missing int `json:"missing"`
	// SuiteFailures are failures outside any case: BeforeSuite,
	// AfterSuite, ReportAfterSuite and the like.
	SuiteFailures []string `json:"suite_failures,omitempty"`
	// Findings say why the run is not CERTIFIED, one line each.
	Findings []string `json:"findings,omitempty"`
	// Claims maps each claim (C1..C50) to the verdict summed over its
	// cases: failed if any failed, passed if any passed, else not applicable.
	// A case that passed counts for a claim only if it asserted it (Case
	// Asserted); a claim whose cases all passed without asserting it is
	// LabelOnly.
	Claims map[string]Verdict `json:"claims"`
}

// LoadGinkgoJSON reads a report written by ginkgo --json-report or
// reporters.GenerateJSONReport.
func LoadGinkgoJSON(path string) ([]types.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	rs, err := ParseGinkgoJSON(b)
	if err != nil {
		return nil, fmt.Errorf("reports: %s: %w", path, err)
	}
	return rs, nil
}

// ParseGinkgoJSON parses a Ginkgo JSON report.
func ParseGinkgoJSON(b []byte) ([]types.Report, error) {
	var rs []types.Report
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("reports: not a Ginkgo JSON report: %w", err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("reports: the Ginkgo JSON report holds no suite")
	}
	return rs, nil
}

// Build makes the Certificate of a run from its Ginkgo reports. Specs
// without a case ID label are not conformance cases and are left out.
//
// The run is CERTIFIED only when all of these hold: no focus and no label
// filter (in info or in the suite configuration the report records), the
// run was not interrupted, no case failed, no case is "not run", the
// report holds every one of the suite's info.CaseCount cases, every
// not-applicable case says why with NotApplicablePrefix, at least one case
// passed, and nothing failed outside the cases. Otherwise the verdict is,
// in this order of precedence: NOT CERTIFIED when a case or the suite
// failed, PARTIAL RUN when focused or filtered, INTERRUPTED when the run
// stopped early, INCOMPLETE for anything else.
//
// A spec Ginkgo skipped because an earlier spec of its Ordered container
// or a BeforeAll failed counts as failed; a spec never reached because the
// run stopped, or skipped without NotApplicablePrefix, is not run.
func Build(info RunInfo, rs []types.Report) Certificate {
	c := Certificate{Claims: map[string]Verdict{}}
	labelOnly := map[string]bool{}
	for i, r := range rs {
		if i == 0 {
			c.Suite = r.SuiteDescription
			if info.Started.IsZero() {
				info.Started = r.StartTime
			}
			if info.Finished.IsZero() {
				info.Finished = r.EndTime
			}
		}
		if len(info.Focus) == 0 {
			info.Focus = append(info.Focus, r.SuiteConfig.FocusStrings...)
			info.Focus = append(info.Focus, r.SuiteConfig.FocusFiles...)
		}
		if info.LabelFilter == "" {
			info.LabelFilter = r.SuiteConfig.LabelFilter
		}
		if info.Interrupted == "" {
			info.Interrupted = interruption(r)
		}
	}
	info.ICS.File = modulePath(info.ICS.File)
	if info.SpecVersion == "" {
		info.SpecVersion = reference.Version()
	}
	info.Started, info.Finished = info.Started.UTC(), info.Finished.UTC()
	c.Run = info
	partial := len(info.Focus) > 0 || info.LabelFilter != ""
	stopped := info.Interrupted != ""

	seen := map[string]bool{}
	for _, r := range rs {
		naInContainer := map[string]string{}
		for _, s := range r.SpecReports {
			if otherShard(s) {
				continue // another shard's case: Merge takes it from there
			}
			if s.LeafNodeType != types.NodeTypeIt {
				if f := suiteFailure(s); f != "" {
					c.SuiteFailures = append(c.SuiteFailures, f)
				}
				continue
			}
			cs, ok := caseOf(s, partial, stopped, naInContainer)
			if !ok {
				continue
			}
			if seen[cs.ID] {
				c.Findings = append(c.Findings, "case "+cs.ID+" appears more than once")
			}
			seen[cs.ID] = true
			c.Cases = append(c.Cases, cs)
		}
	}
	sort.SliceStable(c.Cases, func(i, j int) bool { return c.Cases[i].ID < c.Cases[j].ID })
	for _, cs := range c.Cases {
		switch cs.Verdict {
		case Passed:
			c.Passed++
		case Failed:
			c.Failed++
		case NotApplicable:
			c.NotApplic++
		case NotRun:
			c.NotRun++
		}
		for _, cl := range cs.Claims {
			if cs.Verdict == Passed && !slices.Contains(cs.Asserted, cl) {
				// A pass that asserted nothing of the claim does not
				// carry it.
				labelOnly[cl] = true
				continue
			}
			c.Claims[cl] = merge(c.Claims[cl], cs.Verdict)
		}
	}
	for cl := range labelOnly {
		if _, ok := c.Claims[cl]; !ok {
			c.Claims[cl] = LabelOnly
		}
	}
	c.verdict()
	return c
}

func (c *Certificate) verdict() {
	info := c.Run
	var f []string
	if c.Failed > 0 {
		f = append(f, strconv.Itoa(c.Failed)+" case(s) failed: "+failedIDs(c.Cases))
	}
	for _, s := range c.SuiteFailures {
		f = append(f, "suite failure: "+s)
	}
	if len(info.Focus) > 0 {
		f = append(f, "focused on "+strings.Join(info.Focus, ", "))
	}
	if info.LabelFilter != "" {
		f = append(f, "label filter "+info.LabelFilter)
	}
	if info.Interrupted != "" {
		f = append(f, "interrupted: "+info.Interrupted)
	}
	if c.NotRun > 0 {
		f = append(f, strconv.Itoa(c.NotRun)+" case(s) not run")
	}
	switch distinct := len(uniqueIDs(c.Cases)); {
	case info.CaseCount <= 0:
		f = append(f, "the suite's case count is not recorded, so completeness cannot be checked")
	case distinct < info.CaseCount:
		c.Missing = info.CaseCount - distinct
		f = append(f, fmt.Sprintf("%d of the suite's %d cases are missing from the report", c.Missing, info.CaseCount))
	case distinct > info.CaseCount:
		f = append(f, fmt.Sprintf("the report holds %d cases, the suite defines %d", distinct, info.CaseCount))
	}
	if c.Passed == 0 {
		f = append(f, "no case passed")
	}
	c.Findings = append(f, c.Findings...)
	switch {
	case c.Failed > 0 || len(c.SuiteFailures) > 0:
		c.Verdict = VerdictNotCertified
	case len(info.Focus) > 0 || info.LabelFilter != "":
		c.Verdict = VerdictPartial
	case info.Shard != "":
		c.Verdict = VerdictShard
	case info.Interrupted != "":
		c.Verdict = VerdictInterrupted
	case len(c.Findings) > 0:
		c.Verdict = VerdictIncomplete
	default:
		c.Verdict = VerdictCertified
	}
	c.Certified = c.Verdict == VerdictCertified
}

// failedIDs names the failed cases in the order of the report, the first
// maxNamed of them, and says how many more there are.
func failedIDs(cs []Case) string {
	const maxNamed = 10
	var ids []string
	seen := map[string]bool{}
	more := 0
	for _, c := range cs {
		switch {
		case c.Verdict != Failed || seen[c.ID]:
		case len(ids) < maxNamed:
			ids = append(ids, c.ID)
		default:
			more++
		}
		seen[c.ID] = true
	}
	s := strings.Join(ids, ", ")
	if more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

func uniqueIDs(cs []Case) map[string]bool {
	m := map[string]bool{}
	for _, c := range cs {
		m[c.ID] = true
	}
	return m
}

// interruption is why Ginkgo says the run stopped early, or "".
func interruption(r types.Report) string {
	var why []string
	for _, s := range r.SpecialSuiteFailureReasons {
		l := strings.ToLower(s)
		if strings.Contains(l, "interrupt") || strings.Contains(l, "timeout") || strings.Contains(l, "abort") {
			why = append(why, s)
		}
	}
	for _, s := range r.SpecReports {
		if s.State.Is(types.SpecStateAborted) {
			why = append(why, "aborted in "+s.FullText()+": "+strings.TrimSpace(s.Failure.Message))
			break
		}
	}
	return strings.Join(why, "; ")
}

// suiteFailure describes a failed suite-level node, or returns "".
func suiteFailure(s types.SpecReport) string {
	if !s.LeafNodeType.Is(types.NodeTypesForSuiteLevelNodes|types.NodeTypeCleanupAfterSuite|types.NodeTypeReportBeforeSuite|types.NodeTypeReportAfterSuite) ||
		!s.State.Is(types.SpecStateFailureStates) {
		return ""
	}
	msg := strings.TrimSpace(s.Failure.Message)
	if msg == "" {
		msg = s.State.String()
	}
	return s.LeafNodeType.String() + ": " + msg
}

func merge(old, v Verdict) Verdict {
	switch {
	case old == Failed || v == Failed:
		return Failed
	case old == NotRun || v == NotRun:
		return NotRun
	case old == Passed || v == Passed:
		return Passed
	case old == "":
		return v
	}
	return old
}

// containerKey names the container a spec sits in.
func containerKey(s types.SpecReport) string {
	var b strings.Builder
	for _, l := range s.ContainerHierarchyLocations {
		b.WriteString(l.String())
		b.WriteByte('|')
	}
	return b.String()
}

func caseOf(s types.SpecReport, partial, stopped bool, naInContainer map[string]string) (Case, bool) {
	var cs Case
	for _, l := range s.Labels() {
		switch {
		case caseIDPattern.MatchString(l):
			cs.ID = l
		case reqPattern.MatchString(l):
			cs.Requirements = append(cs.Requirements, l)
		case claimPattern.MatchString(l):
			cs.Claims = append(cs.Claims, l)
		}
	}
	if cs.ID == "" {
		return cs, false
	}
	sort.Strings(cs.Requirements)
	sort.Slice(cs.Claims, func(i, j int) bool { return claimNumber(cs.Claims[i]) < claimNumber(cs.Claims[j]) })
	cs.Description = s.LeafNodeText
	cs.Duration = s.RunTime
	cs.Location = modulePath(s.LeafNodeLocation.String())
	msg := stripPaths(strings.TrimSpace(s.Failure.Message))
	switch {
	case s.State.Is(types.SpecStatePassed):
		cs.Verdict = Passed
	case s.State.Is(types.SpecStateSkipped) && strings.HasPrefix(msg, NotApplicablePrefix):
		cs.Verdict, cs.Reason = NotApplicable, msg
		if s.Failure.FailureNodeType.Is(types.NodeTypeBeforeAll) {
			naInContainer[containerKey(s)] = msg
		}
	case s.State.Is(types.SpecStateSkipped) && strings.HasPrefix(msg, ginkgoBeforeAllSkip):
		if why, ok := naInContainer[containerKey(s)]; ok {
			cs.Verdict, cs.Reason = NotApplicable, why
		} else {
			cs.Verdict, cs.Reason = NotRun, "not run: "+msg
		}
	case s.State.Is(types.SpecStateSkipped) && (msg == ginkgoOrderedFailed || msg == ginkgoBeforeAllFail):
		cs.Verdict, cs.Reason = Failed, msg
	case s.State.Is(types.SpecStateSkipped) && msg != "":
		cs.Verdict, cs.Reason = NotRun, "not run: "+msg
	case s.State.Is(types.SpecStateSkipped) && stopped:
		cs.Verdict, cs.Reason = NotRun, reasonNotReached
	case s.State.Is(types.SpecStateSkipped) && partial:
		cs.Verdict, cs.Reason = NotRun, reasonFiltered
	case s.State.Is(types.SpecStateSkipped):
		cs.Verdict, cs.Reason = NotRun, reasonNoMessage
	case s.State.Is(types.SpecStatePending):
		cs.Verdict, cs.Reason = NotRun, reasonPending
	case s.State.Is(types.SpecStateInterrupted),
		// The suite's own deadline cut the case short: the run stopped,
		// the device did not fail (a case's own SpecTimeout still fails).
		s.State.Is(types.SpecStateTimedout) && stopped && strings.Contains(msg, "suite timeout"):
		cs.Verdict, cs.Reason = NotRun, reasonInterruptedRun
		if msg != "" {
			cs.Reason += ": " + msg
		}
	case s.State.Is(types.SpecStateFailureStates):
		cs.Verdict, cs.Reason = Failed, msg
		if cs.Reason == "" {
			cs.Reason = s.State.String()
		}
		if s.Failure.Location.FileName != "" {
			cs.Location = modulePath(s.Failure.Location.String())
		}
	default:
		cs.Verdict, cs.Reason = NotRun, "not run: state "+s.State.String()
	}
	cs.readEntries(s.ReportEntries)
	return cs, true
}

func claimNumber(c string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(c, "C"))
	return n
}

// moduleDirs are the top-level directories of the spdlab module; a path
// through one of them is shown relative to the module root.
var moduleDirs = []string{"cmd", "emulator", "reference", "reports", "rigs", "scenarios"}

// modulePath rewrites an absolute path (with an optional ":line") inside
// the spdlab module to a module-relative one, and any other absolute path
// to its base name, so that no report shows the machine it ran on.
func modulePath(p string) string {
	if p == "" || !strings.HasPrefix(p, "/") && !(len(p) > 2 && p[1] == ':' && (p[2] == '\\' || p[2] == '/')) {
		return p
	}
	s := strings.ReplaceAll(p, "\\", "/")
	best := -1
	for _, d := range moduleDirs {
		if i := strings.LastIndex(s, "/"+d+"/"); i > best {
			best = i
		}
	}
	if best >= 0 {
		return s[best+1:]
	}
	return s[strings.LastIndexByte(s, '/')+1:]
}

var goPath = regexp.MustCompile(`(?:[A-Za-z]:)?[/\\][^\s"'()<>]*\.go(?::[0-9]+)?`)

// stripPaths rewrites the Go source paths in a message as modulePath does.
func stripPaths(s string) string {
	return goPath.ReplaceAllStringFunc(s, modulePath)
}
