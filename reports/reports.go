// Package reports turns the conformance suite's Ginkgo JSON report into a
// certification report: an HTML certificate a person reads, a JUnit XML file
// CI systems read, and a signed manifest that binds them together.
//
// A conformance case is a Ginkgo spec labelled with its case ID (TC-PAY-001),
// the requirements of reference/SPEC.md it checks (SPD-PAY-3) and the claims
// of CLAIMS.md behind them (C2). A skipped spec is "not applicable": the
// device did not declare the capability the case needs. A device is
// certified when no applicable case failed and at least one passed.
package reports

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// Verdict of one case.
type Verdict string

const (
	Passed        Verdict = "passed"
	Failed        Verdict = "failed"
	NotApplicable Verdict = "not applicable"
	NotRun        Verdict = "not run"
)

var (
	caseIDPattern = regexp.MustCompile(`^TC-[A-Z]+-[0-9]+$`)
	reqPattern    = regexp.MustCompile(`^SPD-[A-Z]+-[0-9]+$`)
	claimPattern  = regexp.MustCompile(`^C([0-9]+)$`)
)

// Case is one conformance case's outcome.
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
}

// Certificate is the whole certification outcome of one device.
type Certificate struct {
	Suite     string    `json:"suite"`
	DUT       string    `json:"dut"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	Cases     []Case    `json:"cases"`
	Passed    int       `json:"passed"`
	Failed    int       `json:"failed"`
	NotApplic int       `json:"not_applicable"`
	Certified bool      `json:"certified"`
	// Claims maps each claim (C1..C50) to the verdict summed over its
	// cases: failed if any failed, passed if any passed, else not applicable.
	Claims map[string]Verdict `json:"claims"`
}

// LoadGinkgoJSON reads a report written by ginkgo --json-report or
// reporters.GenerateJSONReport.
func LoadGinkgoJSON(path string) ([]types.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	var rs []types.Report
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("reports: %s is not a Ginkgo JSON report: %w", path, err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("reports: %s holds no suite", path)
	}
	return rs, nil
}

// Build makes a Certificate from Ginkgo reports of a run against dut. Specs
// without a case ID label are not conformance cases and are left out.
func Build(dut string, rs []types.Report) Certificate {
	c := Certificate{DUT: dut, Claims: map[string]Verdict{}}
	for i, r := range rs {
		if i == 0 {
			c.Suite, c.Started, c.Finished = r.SuiteDescription, r.StartTime, r.EndTime
		}
		for _, s := range r.SpecReports {
			if s.LeafNodeType != types.NodeTypeIt {
				continue
			}
			cs, ok := caseOf(s)
			if !ok {
				continue
			}
			c.Cases = append(c.Cases, cs)
		}
	}
	sort.Slice(c.Cases, func(i, j int) bool { return c.Cases[i].ID < c.Cases[j].ID })
	for _, cs := range c.Cases {
		switch cs.Verdict {
		case Passed:
			c.Passed++
		case Failed:
			c.Failed++
		case NotApplicable:
			c.NotApplic++
		}
		for _, cl := range cs.Claims {
			c.Claims[cl] = merge(c.Claims[cl], cs.Verdict)
		}
	}
	c.Certified = c.Failed == 0 && c.Passed > 0
	return c
}

func merge(old, v Verdict) Verdict {
	switch {
	case old == Failed || v == Failed:
		return Failed
	case old == Passed || v == Passed:
		return Passed
	case old == "":
		return v
	}
	return old
}

func caseOf(s types.SpecReport) (Case, bool) {
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
	cs.Location = s.LeafNodeLocation.String()
	switch {
	case s.State.Is(types.SpecStatePassed):
		cs.Verdict = Passed
	case s.State.Is(types.SpecStateSkipped | types.SpecStatePending):
		cs.Verdict = NotApplicable
		cs.Reason = strings.TrimSpace(s.Failure.Message)
	case s.State.Is(types.SpecStateFailureStates):
		cs.Verdict = Failed
		cs.Reason = strings.TrimSpace(s.Failure.Message)
		if s.Failure.Location.FileName != "" {
			cs.Location = s.Failure.Location.String()
		}
	default:
		cs.Verdict = NotRun
	}
	for _, e := range s.ReportEntries {
		if e.Name == "transcript" {
			cs.Transcript = append(cs.Transcript, e.StringRepresentation())
		}
	}
	return cs, true
}

func claimNumber(c string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(c, "C"))
	return n
}
