package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/dut"
	"github.com/spdlab/spdlab/scenarios"
	"github.com/spdlab/spdlab/scenarios/ics"
)

// suiteT is the testing.T stand-in Ginkgo reports the suite's outcome to.
type suiteT struct{ failed bool }

func (t *suiteT) Fail() { t.failed = true }

// dutList is a repeatable --dut flag: one DUT string per sample.
type dutList []string

func (l *dutList) String() string { return strings.Join(*l, ", ") }
func (l *dutList) Set(s string) error {
	if err := dut.Check(s); err != nil {
		return err
	}
	*l = append(*l, s)
	return nil
}

func runCertify(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "certify", "--dut DUT [--dut DUT2 ...] [--ics FILE] --out DIR [--shard i/n] [--focus REGEX] [--label-filter EXPR] [--key FILE] [--trace FILE] [--timeout D]")
	var duts dutList
	flags.Var(&duts, "dut", certifyDUTUsage())
	icsPath := flags.String("ics", "", "the device's implementation conformance statement (required for a physical DUT; 'spdlab ics template' writes one); an emulated DUT uses the reference device's")
	out := flags.String("out", "", "directory for the report (report.html, junit.xml, certificate.json, manifest.json, ginkgo.json)")
	focus := focusFlag(flags, "run only cases whose description matches this regular expression (a partial run: never a certificate)")
	labels := labelFilterFlag(flags, "run only cases matching this Ginkgo label expression, e.g. 'C2 || C4' or 'TC-PAY-001' (a partial run: never a certificate)")
	keyPath := flags.String("key", reports.DefaultLabKeyPath(), "lab signing key (PEM, EC P-256), made by 'spdlab labkey init'")
	tracePath := flags.String("trace", "", "record every APDU exchange as pcapng (GSMTAP) in this file (default: trace.pcapng in --out, signed with the report; off: no trace)")
	timeout := flags.Duration("timeout", time.Hour, "stop the suite after this long (the run is then interrupted: not a certificate)")
	goldenDir := flags.String("golden", "", "golden evidence directory: an empty or new one records each case's verdict and exchanges; an existing one is compared with this run, and any changed or missing case fails the command")
	against := flags.String("against", "", "ref: run a reference device in lockstep with every device and report the first response that differs (divergences.json)")
	shardFlag := flags.String("shard", "", "run only shard i/n of the cases (the same split on every run and machine); join the n shard reports with spdlab report --merge")
	if err := flags.Parse(args); err != nil {
		return err
	}
	switch {
	case len(args) == 0:
		flags.Usage()
		return errUsage
	case len(duts) == 0:
		return usageErrorf("--dut DUT is required: the device to certify (%s)", dut.Usage)
	case *out == "":
		return usageErrorf("--out DIR is required: the directory the report is written to")
	case flags.NArg() != 0:
		return usageErrorf("unexpected argument %q (every option is a flag)", flags.Arg(0))
	}
	var shard *reports.Shard
	if *shardFlag != "" {
		s, err := reports.ParseShard(*shardFlag)
		if err != nil {
			return err
		}
		shard = &s
	}
	var statement *ics.ICS
	if *icsPath != "" {
		s, err := loadICS(*icsPath)
		if err != nil {
			return err
		}
		statement = s
	}
	driver, err := scenarios.NewDUTDriver(duts, statement)
	if err != nil {
		return fmt.Errorf("set-up: %w", err)
	}
	lab, key, err := reports.OpenLab(*keyPath)
	if err != nil {
		return fmt.Errorf("set-up: %w", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if *tracePath == "" {
		*tracePath = filepath.Join(*out, "trace.pcapng")
	}
	var traceFile *os.File
	if *tracePath != "off" {
		tf, err := os.Create(*tracePath)
		if err != nil {
			return err
		}
		defer tf.Close()
		traceFile = tf
		driver.Options = dut.Options{Trace: tf, TraceCase: scenarios.CurrentCase}
	}
	driver.Against = *against
	ids, err := driver.Probe(ctx)
	if err != nil {
		return fmt.Errorf("set-up: %w (no report written: nothing was tested)", err)
	}
	for _, id := range ids {
		fmt.Fprintf(e.stdout, "sample %s: reader %q, ATR %s, state %v, device ID %s\n", id.Spec, id.Reader, orNone(id.ATR), id.State, orNone(id.DeviceID))
	}
	if !driver.Emulated() && driver.Profile().MaxDevices < 2 {
		fmt.Fprintln(e.stdout, "note: one sample named; cases that need two devices (transfers) are not applicable. Name a second sample with another --dut.")
	}

	if shard != nil {
		ginkgo.BeforeEach(func() {
			if id := reports.CaseID(ginkgo.CurrentSpecReport().Labels()); id != "" && !shard.Has(id) {
				ginkgo.Skip(shard.SkipReason(id))
			}
		})
	}
	scenarios.Define(driver)
	gomega.RegisterFailHandler(ginkgo.Fail)
	suiteConfig, reporterConfig := ginkgo.GinkgoConfiguration()
	if *focus != "" {
		suiteConfig.FocusStrings = []string{*focus}
	}
	suiteConfig.LabelFilter = *labels
	suiteConfig.Timeout = *timeout
	jsonPath := filepath.Join(*out, "ginkgo.json")
	reporterConfig.JSONReport = jsonPath
	var t suiteT
	name := strings.Join(duts, " + ")
	reporterConfig = startProgress(e, reporterConfig)
	ginkgo.RunSpecs(&t, "spdlab conformance on "+name, suiteConfig, reporterConfig)

	rs, err := reports.LoadGinkgoJSON(jsonPath)
	if err != nil {
		return err
	}
	if *against != "" {
		b, err := json.MarshalIndent(driver.Divergences(), "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*out, "divergences.json"), append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "\n%s\n", scenarios.DivergenceSummary(driver.Divergences()))
	}
	if traceFile != nil {
		// The trace is complete: close it before the manifest digests it.
		if err := traceFile.Close(); err != nil {
			return fmt.Errorf("trace: %w", err)
		}
	}
	info := driver.RunInfo(ids, *icsPath, rs[0])
	info.Lab = lab
	if shard != nil {
		info.Shard = shard.String()
	}
	c, err := reports.Write(*out, info, rs, key)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\n%s\nreport: %s\n", c.Summary(), filepath.Join(*out, reports.FileHTML))
	if *goldenDir != "" {
		if err := certifyGolden(e, *goldenDir, c); err != nil {
			return err
		}
	}
	if !c.Certified {
		return fmt.Errorf("%s: %s", name, c.Verdict)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// certifyGolden records the run as golden evidence in dir when dir holds
// none, and otherwise compares the run with it.
func certifyGolden(e *env, dir string, c reports.Certificate) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if len(entries) == 0 {
		if err := reports.RecordGolden(dir, c); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "golden: recorded %d cases in %s; later runs with --golden %s are compared with them\n", len(c.Cases), dir, dir)
		return nil
	}
	diffs, err := reports.CompareGolden(dir, c)
	if err != nil {
		return err
	}
	if len(diffs) == 0 {
		fmt.Fprintf(e.stdout, "golden: every case matches the evidence in %s\n", dir)
		return nil
	}
	fmt.Fprintf(e.stdout, "golden: %d difference(s) from %s:\n", len(diffs), dir)
	for _, d := range diffs {
		fmt.Fprintf(e.stdout, "  %s\n", d)
	}
	return fmt.Errorf("golden: the run differs from the evidence in %s", dir)
}
