package reports

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// JUnit XML as CI viewers read it (the Ant/Jenkins layout, with the
// per-testcase <properties> that pytest and Jenkins use):
//
//	<testsuites name="spdlab conformance on DUT" tests= failures= errors= skipped= time=>
//	  <testsuite name="TC-PAY" ...>                    one per case area
//	    <properties>  verdict, DUT, lab key, tool commit, ICS digest of the run,
//	                  capabilities (the ICS features and the rig's abilities)
//	    <testcase name="TC-PAY-001 MUST deduct ..." classname="TC-PAY" time="0.210">
//	      <properties> id, requirements, claims (comma-separated), verdict, location
//	      <failure message="first line">reason, location</failure>   a failed case
//	      <skipped message="not applicable: ..."/>                   not applicable or not run
//	      <system-out>the decoded transcript</system-out>
//	  <testsuite name="suite">  BeforeSuite, AfterSuite, ... failures, as <error>
//
// Nothing of Ginkgo's configuration is written.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties *junitPropertys `xml:"properties,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitPropertys struct {
	List []junitProperty `xml:"property"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name       string          `xml:"name,attr"`
	Classname  string          `xml:"classname,attr"`
	Time       string          `xml:"time,attr"`
	Properties *junitPropertys `xml:"properties,omitempty"`
	Skipped    *junitResult    `xml:"skipped,omitempty"`
	Failure    *junitResult    `xml:"failure,omitempty"`
	Error      *junitResult    `xml:"error,omitempty"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitResult struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// firstLine is the first line of s, cut to 200 characters.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// WriteJUnit writes the certificate as JUnit XML: one testsuite per case
// area, one testcase per case, named by its ID and title.
func (c Certificate) WriteJUnit(w io.Writer) error {
	return c.writeJUnit(w, c.decodeTranscripts())
}

// writeJUnit is WriteJUnit from c's transcripts decoded as ts.
func (c Certificate) writeJUnit(w io.Writer, ts transcripts) error {
	run := []junitProperty{
		{"spdlab.verdict", c.Verdict},
		{"spdlab.dut", c.Run.DUT},
		{"spdlab.lab", c.Run.Lab.Name},
		{"spdlab.lab.key_fingerprint", c.Run.Lab.KeyFingerprint},
		{"spdlab.tool", c.Run.Tool.Version + " " + c.Run.Tool.Commit},
		{"spdlab.spec_version", c.Run.SpecVersion},
		{"capabilities", c.Run.Capabilities.String()},
	}
	if c.Run.ICS.SHA256 != "" {
		run = append(run, junitProperty{"spdlab.ics.sha256", c.Run.ICS.SHA256})
	}
	if c.Run.LabelFilter != "" {
		run = append(run, junitProperty{"spdlab.label_filter", c.Run.LabelFilter})
	}
	if len(c.Run.Focus) > 0 {
		run = append(run, junitProperty{"spdlab.focus", strings.Join(c.Run.Focus, ", ")})
	}
	top := junitSuites{Name: c.Suite}
	if top.Name == "" {
		top.Name = "spdlab conformance on " + c.Run.DUT
	}
	byArea := map[string]*junitSuite{}
	var areas []string
	var total time.Duration
	for k, cs := range c.Cases {
		a := cs.Area()
		s, ok := byArea[a]
		if !ok {
			s = &junitSuite{Name: a, Properties: &junitPropertys{List: run}}
			if !c.Run.Started.IsZero() {
				s.Timestamp = c.Run.Started.UTC().Format("2006-01-02T15:04:05")
			}
			byArea[a] = s
			areas = append(areas, a)
		}
		props := []junitProperty{{"id", cs.ID}, {"requirements", strings.Join(cs.Requirements, ", ")},
			{"claims", strings.Join(cs.Claims, ", ")}, {"verdict", string(cs.Verdict)}}
		if cs.Location != "" {
			props = append(props, junitProperty{"location", cs.Location})
		}
		tc := junitCase{Name: cs.ID + " " + cs.Description, Classname: a, Time: seconds(cs.Duration),
			Properties: &junitPropertys{List: props}}
		switch cs.Verdict {
		case Failed:
			tc.Failure = &junitResult{Message: firstLine(cs.Reason), Type: "failed", Body: cs.Reason + "\n" + cs.Location}
			s.Failures++
		case NotApplicable, NotRun:
			tc.Skipped = &junitResult{Message: cs.Reason}
			s.Skipped++
		}
		var out strings.Builder
		for i, steps := range ts[k] {
			if i > 0 {
				out.WriteString("\n")
			}
			for _, st := range steps {
				out.WriteString(st.String())
				out.WriteByte('\n')
			}
		}
		tc.SystemOut = out.String()
		s.Tests++
		s.Time = seconds(parseSeconds(s.Time) + cs.Duration)
		total += cs.Duration
		s.Cases = append(s.Cases, tc)
	}
	sort.Strings(areas)
	for _, a := range areas {
		top.Suites = append(top.Suites, *byArea[a])
	}
	if len(c.SuiteFailures) > 0 {
		s := junitSuite{Name: "suite", Properties: &junitPropertys{List: run}, Time: seconds(0)}
		for _, f := range c.SuiteFailures {
			node, msg, _ := strings.Cut(f, ": ")
			s.Cases = append(s.Cases, junitCase{Name: node, Classname: "suite", Time: seconds(0),
				Error: &junitResult{Message: firstLine(msg), Type: node, Body: msg}})
			s.Tests++
			s.Errors++
		}
		top.Suites = append(top.Suites, s)
	}
	for _, s := range top.Suites {
		top.Tests += s.Tests
		top.Failures += s.Failures
		top.Errors += s.Errors
		top.Skipped += s.Skipped
	}
	top.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("reports: junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(top); err != nil {
		return fmt.Errorf("reports: junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("reports: junit: %w", err)
	}
	return nil
}

func parseSeconds(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Second))
}
