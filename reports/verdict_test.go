package reports

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
)

// The verdict rules are checked on reports of real Ginkgo runs: the test
// binary runs itself once per tiny suite below (Ginkgo runs one suite per
// process) and reads back the JSON report it wrote.

const suiteEnv = "SPDLAB_REPORTS_GINKGO_SUITE"

// tinySuite is a suite definition and the Ginkgo configuration it runs with.
type tinySuite struct {
	define    func()
	configure func(*types.SuiteConfig)
}

func pass(id string) {
	ginkgo.It("passes "+id, ginkgo.Label(id, "SPD-APP-1", "C1"), func() {
		ginkgo.AddReportEntry(EntryClaimsAsserted, []string{"C1"}, ginkgo.ReportEntryVisibilityNever)
	})
}

func na(id, why string) {
	ginkgo.It("needs a feature "+id, ginkgo.Label(id, "SPD-BIO-1", "C32"), func() { ginkgo.Skip(NotApplicablePrefix + why) })
}

var tinySuites = map[string]tinySuite{
	"certified": {define: func() {
		pass("TC-A-001")
		pass("TC-A-002")
		na("TC-B-001", "ICS features.Biometric is false")
		ginkgo.It("is a helper spec, not a case", func() {})
	}},
	"failed": {define: func() {
		pass("TC-A-001")
		ginkgo.It("fails", ginkgo.Label("TC-A-002", "SPD-PAY-1", "C2"), func() { ginkgo.Fail("expected 6985, got 9000") })
		na("TC-B-001", "ICS features.Biometric is false")
	}},
	"label-only": {define: func() {
		pass("TC-A-001")
		ginkgo.It("passes with a label it does not assert", ginkgo.Label("TC-A-002", "SPD-PAY-1", "C2", "C3"), func() {
			ginkgo.AddReportEntry(EntryClaimsAsserted, []string{"C2"}, ginkgo.ReportEntryVisibilityNever)
		})
		ginkgo.It("passes asserting nothing", ginkgo.Label("TC-A-003", "SPD-PAY-1", "C2", "C4"), func() {})
		na("TC-B-001", "ICS features.Biometric is false")
	}},
	"transcripts-pass": {define: func() { paymentCases(false) }},
	"transcripts-fail": {define: func() { paymentCases(true) }},
	"ordered": {define: func() {
		ginkgo.Describe("PIN flow", ginkgo.Ordered, func() {
			ginkgo.It("blocks the PIN", ginkgo.Label("TC-A-001", "SPD-PIN-3", "C32"), func() { ginkgo.Fail("PIN not blocked") })
			ginkgo.It("unblocks it", ginkgo.Label("TC-A-002", "SPD-PIN-3", "C32"), func() {})
		})
		pass("TC-B-001")
	}},
	"beforeall-failed": {define: func() {
		ginkgo.Describe("flow", ginkgo.Ordered, func() {
			ginkgo.BeforeAll(func() { ginkgo.Fail("personalising: 6A80") })
			ginkgo.It("one", ginkgo.Label("TC-A-001"), func() {})
			ginkgo.It("two", ginkgo.Label("TC-A-002"), func() {})
		})
		pass("TC-B-001")
	}},
	"beforeall-na": {define: func() {
		ginkgo.Describe("flow", ginkgo.Ordered, func() {
			ginkgo.BeforeAll(func() { ginkgo.Skip(NotApplicablePrefix + "rig lacks Fresh (pcsc:X)") })
			ginkgo.It("one", ginkgo.Label("TC-A-001"), func() {})
			ginkgo.It("two", ginkgo.Label("TC-A-002"), func() {})
		})
		pass("TC-B-001")
	}},
	"beforeall-skip": {define: func() {
		ginkgo.Describe("flow", ginkgo.Ordered, func() {
			ginkgo.BeforeAll(func() { ginkgo.Skip("reader busy") })
			ginkgo.It("one", ginkgo.Label("TC-A-001"), func() {})
			ginkgo.It("two", ginkgo.Label("TC-A-002"), func() {})
		})
		pass("TC-B-001")
	}},
	"label-filter": {define: func() {
		pass("TC-A-001")
		pass("TC-A-002")
	}, configure: func(c *types.SuiteConfig) { c.LabelFilter = "TC-A-001" }},
	"focus": {define: func() {
		pass("TC-A-001")
		pass("TC-A-002")
	}, configure: func(c *types.SuiteConfig) { c.FocusStrings = []string{"TC-A-001"} }},
	"interrupted": {define: func() {
		ginkgo.Describe("in order", ginkgo.Ordered, func() {
			pass("TC-A-001")
			ginkgo.It("is interrupted", ginkgo.Label("TC-A-002"), func(ctx ginkgo.SpecContext) {
				if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
					ginkgo.Fail(err.Error())
				}
				<-ctx.Done()
			})
			pass("TC-A-003")
		})
	}},
	"suite-timeout": {define: func() {
		ginkgo.Describe("in order", ginkgo.Ordered, func() {
			pass("TC-A-001")
			ginkgo.It("outlives the suite", ginkgo.Label("TC-A-002"), func(ctx ginkgo.SpecContext) { <-ctx.Done() })
			pass("TC-A-003")
		})
	}, configure: func(c *types.SuiteConfig) { c.Timeout = 500 * time.Millisecond }},
	"case-timeout": {define: func() {
		pass("TC-A-001")
		ginkgo.It("is too slow", ginkgo.Label("TC-A-002"), func(ctx ginkgo.SpecContext) { <-ctx.Done() }, ginkgo.SpecTimeout(50*time.Millisecond))
	}},
	"plain-skip": {define: func() {
		pass("TC-A-001")
		ginkgo.It("skips", ginkgo.Label("TC-A-002"), func() { ginkgo.Skip("the device was busy") })
	}},
	"all-na": {define: func() {
		na("TC-A-001", "ICS features.Tokens is false")
		na("TC-A-002", "ICS features.Transfers is false")
	}},
	"before-suite-failed": {define: func() {
		ginkgo.BeforeSuite(func() { ginkgo.Fail("cannot open the DUT") })
		pass("TC-A-001")
	}},
	"after-suite-failed": {define: func() {
		ginkgo.AfterSuite(func() { ginkgo.Fail("leaked a device") })
		pass("TC-A-001")
	}},
	"report-after-suite-failed": {define: func() {
		ginkgo.ReportAfterSuite("broken", func(ginkgo.Report) { ginkgo.Fail("report writer broke") })
		pass("TC-A-001")
	}},
}

// sampleTranscript is the start of a case's transcript as the suite
// records it: a cold reset, SELECT, a GET DATA answered in two parts and a
// wrong PIN.
const sampleTranscript = "reset-cold -> 3BF81300008131FE454A434F5076323431B7\n" +
	"00A4040008F05350444C41420100 -> 6F0C8408F05350444C414201A5009000\n" +
	"00CADF0400 -> DF040800000000000027106105\n" +
	"00CADF0400 -> DF040800000000000027109000\n" +
	"002000800430303030 -> 63C2\n" +
	"00B0000000 -> error link: card removed\n"

// sampleRoundTrips are the round-trip times of the lines of the
// transcripts below (the reset, then one per exchange).
var sampleRoundTrips = []time.Duration{40 * time.Millisecond, 900 * time.Microsecond, 1200 * time.Microsecond,
	1100 * time.Microsecond, 15 * time.Millisecond, 3 * time.Millisecond, 14 * time.Millisecond, 2 * time.Millisecond}

// sampleMedia are coded media as the suite records them, one per format.
var sampleMedia = []struct {
	name   string
	format medium.Format
	text   string
}{
	{"merchant code", medium.QR, sampleMerchantCode},
	{"receipt", medium.DataMatrix, "SPDLAB RECEIPT 0042 EUR 2.50"},
	{"token reference", medium.Code128, "SPDTWCVJBSU3YO44B5YRMVRQAAAAAE"},
}

// sampleMerchantCode is an EMV merchant-presented code with its CRC.
var sampleMerchantCode = func() string {
	body := "000201010212" + "26240006spdlab0110OPT-SHOP-1" + "5303978" + "54042.50" + "5910Optik Cafe" + "6004Koln" + "62120108ORDER-77" + "6304"
	return fmt.Sprintf("%s%04X", body, merchant.Checksum(body))
}()

// sampleRates are optical decode rates of two formats at two levels.
var sampleRates = []OpticalRate{
	{Medium: "merchant code", Format: "QR", Level: 0, Read: 1, Tried: 1},
	{Medium: "merchant code", Format: "QR", Level: 1, Read: 3, Tried: 4, Faults: []string{"blur 1", "rotation 4", "noise 15", "low-contrast 0.6"}, Failed: []string{"noise 15"}},
	{Medium: "receipt", Format: "DataMatrix", Level: 0, Read: 1, Tried: 1},
	{Medium: "receipt", Format: "DataMatrix", Level: 1, Read: 2, Tried: 4, Faults: []string{"blur 1", "rotation 4", "noise 15", "low-contrast 0.6"}, Failed: []string{"blur 1", "noise 15"}},
}

// addMedium records an image of drawn in format f, claiming it encodes
// text, as the suite's recordMedium does.
func addMedium(name string, f medium.Format, text, drawn string) {
	b, err := medium.RenderPNG(drawn, f, 4)
	if err != nil {
		panic(err)
	}
	ginkgo.AddReportEntry(EntryMedium, MediumEntry{Name: name, Format: f.String(), Text: text, PNG: b}, ginkgo.ReportEntryVisibilityNever)
}

// paymentCases is a suite of two cases with transcripts, the second of
// which fails when broken, and a not-applicable one.
func paymentCases(broken bool) {
	ginkgo.Describe("payments", ginkgo.Ordered, func() {
		ginkgo.It("pays", ginkgo.Label("TC-PAY-001", "SPD-PAY-1", "C2"), func() {
			ginkgo.AddReportEntry(EntryTranscript, sampleTranscript+"00200080043235383000 -> 9000\n8060000003DF2801 -> 9000\n")
			ginkgo.AddReportEntry(EntryRoundTrips, sampleRoundTrips, ginkgo.ReportEntryVisibilityNever)
			for _, m := range sampleMedia {
				addMedium(m.name, m.format, m.text, m.text)
			}
			ginkgo.AddReportEntry(EntryOpticalRates, sampleRates)
		})
		ginkgo.It("refuses PAY before VERIFY", ginkgo.Label("TC-PIN-001", "SPD-PIN-1", "C32"), func() {
			if broken {
				ginkgo.AddReportEntry("transcript", sampleTranscript+"8060000003DF2801 -> 9000\n")
				ginkgo.AddReportEntry(EntryRoundTrips, sampleRoundTrips[:7], ginkgo.ReportEntryVisibilityNever)
				// A medium whose image does not encode the text the case
				// claims: the report must say it does not read back.
				addMedium("forged receipt", medium.QR, "SPDLAB RECEIPT 0001", "SPDLAB RECEIPT 9999")
				ginkgo.Fail("PAY before VERIFY: expected 6982, got 9000")
			}
			ginkgo.AddReportEntry("transcript", sampleTranscript+"8060000003DF2801 -> 6982\n")
			ginkgo.AddReportEntry(EntryRoundTrips, sampleRoundTrips[:7], ginkgo.ReportEntryVisibilityNever)
		})
	})
	na("TC-BIO-001", "ICS features.Biometric is false")
}

// suiteT is the testing.T stand-in a tiny suite reports to.
type suiteT struct{}

func (suiteT) Fail() {}

func TestMain(m *testing.M) {
	if name := os.Getenv(suiteEnv); name != "" {
		s := tinySuites[name]
		s.define()
		sc, rc := ginkgo.GinkgoConfiguration()
		if s.configure != nil {
			s.configure(&sc)
		}
		rc.JSONReport = os.Getenv(suiteEnv + "_JSON")
		ginkgo.RunSpecs(suiteT{}, "tiny "+name, sc, rc)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runTiny runs one tiny suite in a child process and returns its report:
// for a test that compares two runs of a suite. A test that needs a run's
// report as its input takes runTinyOnce's.
func runTiny(t *testing.T, name string) []types.Report {
	t.Helper()
	rs, err := ParseGinkgoJSON(runTinyJSON(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// runTinyJSON runs one tiny suite in a child process and returns its
// Ginkgo JSON report.
func runTinyJSON(t *testing.T, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), FileGinkgo)
	cmd := exec.CommandContext(context.Background(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), suiteEnv+"="+name, suiteEnv+"_JSON="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tiny suite %s: %v\n%s", name, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tinyReports holds the Ginkgo JSON report of each tiny suite run by
// runTinyOnce.
var tinyReports struct {
	sync.Mutex
	runs map[string]*tinyRun
}

// tinyRun is one run of a tiny suite, made by the first test that needs it.
type tinyRun struct {
	once sync.Once
	json []byte
}

// runTinyOnce returns the report of one run of a tiny suite, run by the
// first caller, parsed anew for each: for the tests that need a run's
// report as their input (writeRun's, the verdict rules, the page, JUnit,
// media and browser tests, about thirty), not a run of the same suite
// each. A child process of the race-built test binary takes a quarter to
// half a second of CPU. Callers wanting different suites do not wait for
// each other.
func runTinyOnce(t *testing.T, name string) []types.Report {
	t.Helper()
	tinyReports.Lock()
	r := tinyReports.runs[name]
	if r == nil {
		r = &tinyRun{}
		if tinyReports.runs == nil {
			tinyReports.runs = map[string]*tinyRun{}
		}
		tinyReports.runs[name] = r
	}
	tinyReports.Unlock()
	r.once.Do(func() { r.json = runTinyJSON(t, name) })
	if r.json == nil {
		t.Fatalf("tiny suite %s did not run: see the first test that ran it", name)
	}
	rs, err := ParseGinkgoJSON(r.json)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestVerdictRules(t *testing.T) {
	tests := []struct {
		suite     string
		info      RunInfo
		verdict   string
		counts    [4]int            // passed, failed, not applicable, not run
		reasons   map[string]string // case ID -> reason prefix
		verdicts  map[string]Verdict
		finding   string
		suiteFail string
	}{
		{suite: "certified", info: RunInfo{CaseCount: 3}, verdict: VerdictCertified, counts: [4]int{2, 0, 1, 0},
			reasons: map[string]string{"TC-B-001": "not applicable: ICS features.Biometric is false"}},
		{suite: "certified", info: RunInfo{CaseCount: 4}, verdict: VerdictIncomplete, counts: [4]int{2, 0, 1, 0},
			finding: "1 of the suite's 4 cases are missing"},
		{suite: "certified", info: RunInfo{}, verdict: VerdictIncomplete, counts: [4]int{2, 0, 1, 0},
			finding: "case count is not recorded"},
		{suite: "certified", info: RunInfo{CaseCount: 3, Focus: []string{"TC-A"}}, verdict: VerdictPartial, counts: [4]int{2, 0, 1, 0}},
		{suite: "certified", info: RunInfo{CaseCount: 3, Interrupted: "SIGTERM"}, verdict: VerdictInterrupted, counts: [4]int{2, 0, 1, 0}},
		{suite: "failed", info: RunInfo{CaseCount: 3}, verdict: VerdictNotCertified, counts: [4]int{1, 1, 1, 0},
			reasons: map[string]string{"TC-A-002": "expected 6985, got 9000"}},
		{suite: "failed", info: RunInfo{CaseCount: 3, LabelFilter: "TC-A"}, verdict: VerdictNotCertified, counts: [4]int{1, 1, 1, 0}},
		{suite: "ordered", info: RunInfo{CaseCount: 3}, verdict: VerdictNotCertified, counts: [4]int{1, 2, 0, 0},
			verdicts: map[string]Verdict{"TC-A-002": Failed},
			reasons:  map[string]string{"TC-A-002": "Spec skipped because an earlier spec in an ordered container failed"}},
		{suite: "beforeall-failed", info: RunInfo{CaseCount: 3}, verdict: VerdictNotCertified, counts: [4]int{1, 2, 0, 0},
			reasons: map[string]string{"TC-A-001": "personalising: 6A80", "TC-A-002": "Spec skipped because"}},
		{suite: "beforeall-na", info: RunInfo{CaseCount: 3}, verdict: VerdictCertified, counts: [4]int{1, 0, 2, 0},
			reasons: map[string]string{"TC-A-001": "not applicable: rig lacks Fresh", "TC-A-002": "not applicable: rig lacks Fresh"}},
		{suite: "beforeall-skip", info: RunInfo{CaseCount: 3}, verdict: VerdictIncomplete, counts: [4]int{1, 0, 0, 2},
			reasons: map[string]string{"TC-A-001": "not run: reader busy", "TC-A-002": "not run: Spec skipped because Skip() was called in BeforeAll"}},
		{suite: "label-filter", info: RunInfo{CaseCount: 2}, verdict: VerdictPartial, counts: [4]int{1, 0, 0, 1},
			reasons: map[string]string{"TC-A-002": reasonFiltered}, finding: "label filter TC-A-001"},
		{suite: "focus", info: RunInfo{CaseCount: 2}, verdict: VerdictPartial, counts: [4]int{1, 0, 0, 1},
			reasons: map[string]string{"TC-A-002": reasonFiltered}, finding: "focused on TC-A-001"},
		{suite: "suite-timeout", info: RunInfo{CaseCount: 3}, verdict: VerdictInterrupted, counts: [4]int{1, 0, 0, 2},
			reasons: map[string]string{"TC-A-002": reasonInterruptedRun}, finding: "interrupted: Suite Timeout Elapsed"},
		{suite: "case-timeout", info: RunInfo{CaseCount: 2}, verdict: VerdictNotCertified, counts: [4]int{1, 1, 0, 0}},
		{suite: "interrupted", info: RunInfo{CaseCount: 3}, verdict: VerdictInterrupted, counts: [4]int{1, 0, 0, 2},
			reasons: map[string]string{"TC-A-002": reasonInterruptedRun, "TC-A-003": reasonNotReached}, finding: "interrupted: Interrupted by User"},
		{suite: "plain-skip", info: RunInfo{CaseCount: 2}, verdict: VerdictIncomplete, counts: [4]int{1, 0, 0, 1},
			reasons: map[string]string{"TC-A-002": "not run: the device was busy"}},
		{suite: "all-na", info: RunInfo{CaseCount: 2}, verdict: VerdictIncomplete, counts: [4]int{0, 0, 2, 0}, finding: "no case passed"},
		{suite: "before-suite-failed", info: RunInfo{CaseCount: 1}, verdict: VerdictNotCertified, counts: [4]int{0, 0, 0, 0},
			finding: "1 of the suite's 1 cases are missing", suiteFail: "BeforeSuite: cannot open the DUT"},
		{suite: "after-suite-failed", info: RunInfo{CaseCount: 1}, verdict: VerdictNotCertified, counts: [4]int{1, 0, 0, 0},
			suiteFail: "AfterSuite: leaked a device"},
		{suite: "report-after-suite-failed", info: RunInfo{CaseCount: 1}, verdict: VerdictNotCertified, counts: [4]int{1, 0, 0, 0},
			suiteFail: "ReportAfterSuite: report writer broke"},
	}
	for _, tc := range tests {
		name := tc.suite + "/" + tc.verdict
		t.Run(name, func(t *testing.T) {
			// A tiny suite's child process mostly waits (it starts,
			// writes its report, ends): the rules run side by side.
			t.Parallel()
			c := Build(tc.info, runTinyOnce(t, tc.suite))
			if c.Verdict != tc.verdict || c.Certified != (tc.verdict == VerdictCertified) {
				t.Errorf("verdict %q certified=%v, want %q\n%s", c.Verdict, c.Certified, tc.verdict, c.Summary())
			}
			if got := [4]int{c.Passed, c.Failed, c.NotApplic, c.NotRun}; got != tc.counts {
				t.Errorf("passed/failed/n-a/not run = %v, want %v", got, tc.counts)
			}
			for _, cs := range c.Cases {
				if cs.Verdict != Passed && cs.Reason == "" {
					t.Errorf("%s is %s with no reason", cs.ID, cs.Verdict)
				}
				if cs.Verdict == NotApplicable && !strings.HasPrefix(cs.Reason, NotApplicablePrefix) {
					t.Errorf("%s is not applicable with reason %q", cs.ID, cs.Reason)
				}
				if want, ok := tc.reasons[cs.ID]; ok && !strings.HasPrefix(cs.Reason, want) {
					t.Errorf("%s reason %q, want it to start with %q", cs.ID, cs.Reason, want)
				}
				if want, ok := tc.verdicts[cs.ID]; ok && cs.Verdict != want {
					t.Errorf("%s verdict %s, want %s", cs.ID, cs.Verdict, want)
				}
				if strings.Contains(cs.Location, "/work/") || filepath.IsAbs(cs.Location) {
					t.Errorf("%s location %q is a machine path", cs.ID, cs.Location)
				}
			}
			if tc.finding != "" && !strings.Contains(strings.Join(c.Findings, "\n"), tc.finding) {
				t.Errorf("findings %q lack %q", c.Findings, tc.finding)
			}
			if tc.suiteFail != "" && !strings.Contains(strings.Join(c.SuiteFailures, "\n"), tc.suiteFail) {
				t.Errorf("suite failures %q lack %q", c.SuiteFailures, tc.suiteFail)
			}
			if !strings.HasPrefix(c.Summary(), tc.verdict+": ") {
				t.Errorf("summary %q", c.Summary())
			}
			if c.Certified && len(c.Findings) > 0 {
				t.Errorf("certified with findings %q", c.Findings)
			}
		})
	}
}

// TestClaimsByAssertion checks that a claim counts as passed only by a
// passing case that asserted it: one carried by labels alone is LabelOnly,
// whatever other claims its cases asserted.
func TestClaimsByAssertion(t *testing.T) {
	c := Build(RunInfo{CaseCount: 4}, runTinyOnce(t, "label-only"))
	want := map[string]Verdict{"C1": Passed, "C2": Passed, "C3": LabelOnly, "C4": LabelOnly, "C32": NotApplicable}
	for cl, v := range want {
		if c.Claims[cl] != v {
			t.Errorf("%s is %q, want %q (claims %v)", cl, c.Claims[cl], v, c.Claims)
		}
	}
	for _, cs := range c.Cases {
		if cs.ID == "TC-A-002" && !slices.Equal(cs.Asserted, []string{"C2"}) {
			t.Errorf("TC-A-002 asserted %v, want [C2]", cs.Asserted)
		}
	}
	rows := c.ClaimRows()
	if rows[2].Claim != "C3" || rows[2].Verdict != LabelOnly || rows[4].Verdict != NotCovered {
		t.Errorf("claim rows %v", rows[:5])
	}
	if !c.Certified {
		t.Errorf("a label without an assertion is the suite's gap, not the device's: %s", c.Summary())
	}
}

func TestSummary(t *testing.T) {
	c := Build(RunInfo{CaseCount: 3}, runTinyOnce(t, "failed"))
	want := "NOT CERTIFIED: 1 passed, 1 failed, 1 not applicable, 0 not run (suite: 3 cases)\n  - 1 case(s) failed: TC-A-002"
	if c.Summary() != want {
		t.Fatalf("summary\n%s\nwant\n%s", c.Summary(), want)
	}
	if c.Claims["C2"] != Failed || c.Claims["C1"] != Passed || c.Claims["C32"] != NotApplicable {
		t.Fatalf("claims %v", c.Claims)
	}
}

// The verdict names the failed cases, ten at most, so that the banner of
// the report and certify's output say which cases to look at.
func TestFailedIDs(t *testing.T) {
	var cs []Case
	for i := 1; i <= 13; i++ {
		v := Failed
		if i%2 == 0 {
			v = Passed
		}
		cs = append(cs, Case{ID: fmt.Sprintf("TC-X-%03d", i), Verdict: v})
	}
	if got, want := failedIDs(cs[:4]), "TC-X-001, TC-X-003"; got != want {
		t.Errorf("failedIDs of 4 cases = %q, want %q", got, want)
	}
	for i := 14; i <= 30; i++ {
		cs = append(cs, Case{ID: fmt.Sprintf("TC-X-%03d", i), Verdict: Failed})
	}
	cs = append(cs, Case{ID: "TC-X-001", Verdict: Failed}) // a case twice (shards) counts once
	want := "TC-X-001, TC-X-003, TC-X-005, TC-X-007, TC-X-009, TC-X-011, TC-X-013, TC-X-014, TC-X-015, TC-X-016 and 14 more"
	if got := failedIDs(cs); got != want {
		t.Errorf("failedIDs = %q, want %q", got, want)
	}
}
