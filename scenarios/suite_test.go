package scenarios

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/reporters"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/dut"
	"github.com/spdlab/spdlab/scenarios/ics"
)

// dutFlags is the repeatable --dut flag: one DUT string per sample.
type dutFlags []string

func (f *dutFlags) String() string     { return strings.Join(*f, ", ") }
func (f *dutFlags) Set(s string) error { *f = append(*f, s); return nil }

var (
	duts      dutFlags
	icsPath   = flag.String("ics", "", "the device's implementation conformance statement (required for a physical DUT)")
	reportDir = flag.String("report-dir", "", "write the certification report (HTML, JUnit, certificate, signed manifest) here")
	against   = flag.String("against", "", "ref: run a reference device in lockstep with every device and report the first response that differs")
	keyPath   = flag.String("key", "", "lab signing key for --report-dir (default: the lab key of `spdlab labkey init`, else a throwaway key recorded as no lab)")
	mutants   = flag.String("mutants", "", "mutation testing (scripts/mutants.sh): a file of lines CASE MUTANT; each case named runs on that mutant of the reference device, on the -dut's transport (ref or usb-emu); never a certificate")

	suiteDriver *DUTDriver
	suiteIDs    []Identity
)

func init() {
	flag.Var(&duts, "dut", "device under test, once per sample: ref, usb-emu, serial-emu, sd-emu, pcsc-emu, faulty:MODE, or pcsc:READER, serial:PATH, usb:VID:PID, sd:DIR (default ref)")
}

func TestConformance(t *testing.T) {
	RegisterFailHandler(Fail)
	if len(duts) == 0 {
		duts = dutFlags{"ref"}
	}
	var stmt *ics.ICS
	if *icsPath != "" {
		b, err := os.ReadFile(*icsPath)
		if err != nil {
			t.Fatalf("set-up: %v", err)
		}
		if stmt, err = ics.Parse(b); err != nil {
			t.Fatalf("set-up: %s is not a valid ICS:\n%v", *icsPath, err)
		}
	}
	d, err := NewDUTDriver(duts, stmt)
	if err != nil {
		t.Fatalf("set-up: %v", err)
	}
	if suiteIDs, err = d.Probe(context.Background()); err != nil {
		t.Fatalf("set-up: %v (nothing was tested)", err)
	}
	d.Against = *against
	if *mutants != "" {
		b, err := os.ReadFile(*mutants)
		if err == nil {
			var m map[string]string
			if m, err = ParseCaseMutants(b); err == nil {
				err = d.MutateCases(m)
			}
		}
		if err == nil && *reportDir != "" {
			err = errors.New("a run with mutated cases is never a certificate: it writes no report (leave out --report-dir)")
		}
		if err != nil {
			t.Fatalf("set-up: --mutants %s: %v", *mutants, err)
		}
	}
	suiteDriver = d
	Define(d)
	suiteConfig, reporterConfig := GinkgoConfiguration()
	// A case's device is swapped in behind the emulator of the last one
	// (serial-emu, sd-emu); they all go once the suite has run.
	d.Options.KeepEmulators = true
	RunSpecs(t, "spdlab conformance on "+d.Profile().Name, suiteConfig, reporterConfig)
	if err := dut.ReleaseIdleEmulators(); err != nil {
		t.Errorf("stopping the emulators: %v", err)
	}
}

// The standalone suite follows certify's rules: it prints the verdict and
// fails unless the device is certified.
var _ = ReportAfterSuite("certification verdict", func(r Report) {
	if suiteDriver.Mutated() {
		msg := fmt.Sprintf("MUTATION RUN: not a certificate: the cases %s names ran on mutants", *mutants)
		fmt.Fprintln(os.Stdout, msg)
		Fail(msg)
	}
	info := suiteDriver.RunInfo(suiteIDs, *icsPath, r)
	var c reports.Certificate
	if *reportDir == "" {
		c = reports.Build(info, []Report{r})
	} else {
		Expect(os.MkdirAll(*reportDir, 0o755)).To(Succeed())
		Expect(reporters.GenerateJSONReport(r, filepath.Join(*reportDir, "ginkgo.json"))).To(Succeed())
		path := *keyPath
		if path == "" {
			path = reports.DefaultLabKeyPath()
		}
		lab, key, err := reports.OpenLab(path)
		if errors.Is(err, reports.ErrNoLabKey) && *keyPath == "" {
			lab, key, err = reports.EphemeralLab()
		}
		Expect(err).NotTo(HaveOccurred())
		info.Lab = lab
		c, err = reports.Write(*reportDir, info, []Report{r}, key)
		Expect(err).NotTo(HaveOccurred())
	}
	fmt.Fprintln(os.Stdout, c.Summary())
	if *against != "" {
		fmt.Fprintln(os.Stdout, divergenceSummary(suiteDriver.Divergences()))
	}
	if !c.Certified {
		Fail(c.Summary())
	}
	// A run that certified the device shows the suite's own gaps: a claim
	// no case is labelled with, or one its cases carry by label alone
	// (claims.go). A dry run asserts nothing.
	var gaps []string
	for _, row := range c.ClaimRows() {
		if r.SuiteConfig.DryRun {
			break
		}
		if row.Verdict == reports.NotCovered || row.Verdict == reports.LabelOnly {
			gaps = append(gaps, row.Claim+" "+string(row.Verdict))
		}
	}
	if len(gaps) > 0 {
		Fail("the suite checks these claims by no assertion: " + strings.Join(gaps, ", "))
	}
})
