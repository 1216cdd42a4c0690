package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
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

// certifyGCPercent is the garbage collector's target (GOGC) of a certify
// process that runs the suite itself (--procs 1, and each process of
// --procs N), unless GOGC is set. Such a process is short-lived and its
// live heap stays small (some 25 MB for ref) while it allocates many times
// that (devices, keys, images, transcripts, the reports): at Go's default
// of 100 a certify --dut ref --procs 1 run collects some 85 times, at 400
// some 17, for about 7% less CPU; its peak resident memory goes from about
// 120 MB to about 230 MB. The run that joins the reports of its --procs N
// processes keeps the default: it holds them all at once, and at 400 its
// heap grew to 300 MB and the run took more CPU, not less (fresh memory is
// paid for in page faults).
const certifyGCPercent = 400

func runCertify(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "certify", "--dut DUT [--dut DUT2 ...] [--ics FILE] --out DIR [--procs N] [--shard i/n] [--focus REGEX] [--label-filter EXPR] [--key FILE] [--trace FILE] [--timeout D]")
	var duts dutList
	flags.Var(&duts, "dut", certifyDUTUsage())
	icsPath := flags.String("ics", "", "the device's implementation conformance statement (required for a physical DUT; 'spdlab ics template' writes one); an emulated DUT uses the reference device's")
	out := flags.String("out", "", "directory for the report (report.html, junit.xml, certificate.json, manifest.json, ginkgo.json, trace.pcapng): new, empty, or holding an earlier report, which this one replaces; the manifest signs every file in it")
	focus := focusFlag(flags, "run only cases whose description matches this regular expression (a partial run: never a certificate)")
	labels := labelFilterFlag(flags, "run only cases matching this Ginkgo label expression, e.g. 'C2 || C4' or 'TC-PAY-001' (a partial run: never a certificate)")
	keyPath := flags.String("key", reports.DefaultLabKeyPath(), "lab signing key (PEM, EC P-256), made by 'spdlab labkey init'")
	tracePath := flags.String("trace", "", "record every APDU exchange as pcapng (GSMTAP) in this file (default: trace.pcapng in --out, signed with the report; off: no trace)")
	timeout := flags.Duration("timeout", time.Hour, "stop the suite after this long (the run is then interrupted: not a certificate)")
	goldenDir := flags.String("golden", "", "golden evidence directory: an empty or new one records each case's verdict and exchanges; an existing one is compared with this run, and any changed or missing case fails the command")
	against := flags.String("against", "", "ref: run a reference device in lockstep with every device and report the first response that differs (divergences.json)")
	shardFlag := flags.String("shard", "", "run only shard i/n of the cases (the same split on every run and machine); join the n shard reports with spdlab report --merge")
	procsFlag := flags.Int("procs", 0, fmt.Sprintf("run the cases in this many processes at once, each with its own devices, and join them into one report, the same as a serial run's (0: %d for an emulated DUT on this machine, one a CPU up to 4; 1 for pcsc-emu, whose processes share the two vpcd slots, at most 2, the cases that need both slots run after them; a physical DUT or a replay runs its cases one at a time and refuses more than 1)", autoProcs()))
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
	case *goldenDir != "" && within(*goldenDir, *out):
		return usageErrorf("--golden %s is inside --out %s: the report's manifest signs every file there, and golden evidence is not the run's; give a directory outside it", *goldenDir, *out)
	case *tracePath != "" && *tracePath != "off" && clobbersReport(*tracePath, *out):
		return usageErrorf("--trace %s is a file of the report in --out %s, which the report would overwrite or be overwritten by; leave --trace out for %s there, or name a file of your own", *tracePath, *out, reports.FileTrace)
	}
	var shard *reports.Shard
	if *shardFlag != "" {
		s, err := reports.ParseShard(*shardFlag)
		if err != nil {
			return err
		}
		shard = &s
	}
	proc, err := processFromEnv()
	if err != nil {
		return err
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
	procs, err := certifyProcs(*procsFlag, duts, driver.Emulated())
	if err != nil {
		return err
	}
	if proc != nil {
		procs = 1
	}
	if procs == 1 && os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(certifyGCPercent))
	}
	var lab reports.Lab
	var key *ecdsa.PrivateKey
	if proc == nil {
		if lab, key, err = reports.OpenLab(*keyPath); err != nil {
			return fmt.Errorf("set-up: %w", err)
		}
	}
	// Until the suite runs nothing in --out changes: a run whose set-up
	// fails leaves an earlier report there, and its trace, as they were,
	// and no directory it made. A report's manifest signs every file in
	// its directory: --out may hold an earlier report, which the run
	// replaces whole, and nothing else.
	var stale []string
	if proc == nil {
		if stale, err = reports.OutDirFiles(*out); err != nil {
			return fmt.Errorf("set-up: %w", err)
		}
	}
	made, err := makeDirs(*out)
	if err != nil {
		return err
	}
	if *tracePath == "" {
		*tracePath = filepath.Join(*out, reports.FileTrace)
	}
	var traceFile *os.File
	var trace *pendingFile // the run's trace, named when its report is written
	defer func() { trace.discard() }()
	if *tracePath != "off" {
		if proc != nil {
			// A process writes in a directory of the run's own.
			if traceFile, err = os.Create(*tracePath); err != nil {
				return err
			}
			defer traceFile.Close()
		} else {
			if trace, err = createPending(*tracePath); err != nil {
				removeDirs(made)
				return err
			}
			traceFile = trace.File
		}
	}
	if traceFile != nil && proc == nil {
		driver.Options = dut.Options{Trace: traceFile, TraceCase: scenarios.CurrentCase}
	}
	driver.Against = *against
	if proc != nil {
		driver.Share = proc.Share
	}
	ids, err := driver.Probe(ctx)
	if err != nil {
		trace.discard()
		removeDirs(made)
		return fmt.Errorf("set-up: %w (no report written: nothing was tested)", err)
	}
	if err := reports.ClearOutDir(*out, stale); err != nil {
		return err
	}
	if proc != nil {
		// A process of a run: its trace holds its cases' links alone (the
		// run's trace has the probe once).
		if traceFile != nil {
			driver.Options = dut.Options{Trace: traceFile, TraceCase: scenarios.CurrentCase}
		}
		return runCertifyProcess(e, proc, driver, shard, *focus, *labels, *timeout, *out, traceFile)
	}
	for _, id := range ids {
		fmt.Fprintf(e.stdout, "sample %s: reader %q, ATR %s, state %v, device ID %s\n", id.Spec, id.Reader, orNone(id.ATR), id.State, orNone(id.DeviceID))
	}
	if !driver.Emulated() && driver.Profile().MaxDevices < 2 {
		fmt.Fprintln(e.stdout, "note: one sample named; cases that need two devices (transfers) are not applicable. Name a second sample with another --dut.")
	}

	name := strings.Join(duts, " + ")
	jsonPath := filepath.Join(*out, reports.FileGinkgo)
	var rs []types.Report
	var divergences []scenarios.Divergence
	if procs > 1 {
		// The processes open the DUT's devices themselves: the vpcd slots
		// the probe's pcsc-emu device left idle go to them at once.
		if err := dut.ReleaseIdleSlots(); err != nil {
			return fmt.Errorf("set-up: %w", err)
		}
		run := certifyRun{duts: duts, icsPath: *icsPath, focus: *focus, labels: *labels, shard: *shardFlag,
			against: *against, timeout: *timeout, trace: traceFile != nil}
		var traceOut io.Writer
		if traceFile != nil {
			traceOut = traceFile
		}
		res, err := runProcesses(ctx, e, procs, run, traceOut)
		if err != nil {
			return err
		}
		if err := reports.WriteGinkgoJSON(jsonPath, res.report); err != nil {
			return err
		}
		rs, divergences = []types.Report{res.report}, res.divergences
	} else {
		skipOtherShards(shard)
		scenarios.Define(driver)
		gomega.RegisterFailHandler(ginkgo.Fail)
		suiteConfig, reporterConfig := ginkgo.GinkgoConfiguration()
		if *focus != "" {
			suiteConfig.FocusStrings = []string{*focus}
		}
		suiteConfig.LabelFilter = *labels
		suiteConfig.Timeout = *timeout
		var t suiteT
		reporterConfig = startProgress(e, reporterConfig)
		// Last, as Ginkgo's own --json-report: the report holds the
		// ReportAfterSuite nodes before it.
		suiteReport := reportGinkgoJSON(jsonPath)
		// A case's device is swapped in behind the emulator of the last
		// one (serial-emu, sd-emu); they all go once the suite has run.
		driver.Options.KeepEmulators = true
		// pcsc-emu's second vpcd slot, ready before the first case that
		// needs two devices.
		if err := driver.Warm(ctx); err != nil {
			fmt.Fprintf(e.stdout, "note: %v; the cases open their own\n", err)
		}
		ginkgo.RunSpecs(&t, "spdlab conformance on "+name, suiteConfig, reporterConfig)
		_ = dut.ReleaseIdleEmulators()
		if r, ok := suiteReport(); ok {
			rs = []types.Report{r}
		} else if rs, err = reports.LoadGinkgoJSON(jsonPath); err != nil {
			// The suite never reached its report (it did not start).
			return err
		}
		divergences = driver.Divergences()
	}

	if *against != "" {
		if err := writeDivergences(*out, divergences); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "\n%s\n", scenarios.DivergenceSummary(divergences))
	}
	if trace != nil {
		// The trace is complete: it takes its name before the manifest
		// digests it.
		if err := trace.commit(); err != nil {
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

// skipOtherShards makes the suite about to run skip the cases of other
// shards than s (nil: none).
func skipOtherShards(s *reports.Shard) {
	if s == nil {
		return
	}
	ginkgo.BeforeEach(func() {
		if id := reports.CaseID(ginkgo.CurrentSpecReport().Labels()); id != "" && !s.Has(id) {
			ginkgo.Skip(s.SkipReason(id))
		}
	})
}

// reportGinkgoJSON registers, before the suite runs, the ReportAfterSuite
// node that writes the suite's Ginkgo report to path (reports.WriteGinkgoJSON:
// Ginkgo's JSON report format, unindented), in place of Ginkgo's own
// --json-report, which indents it. The function it returns gives the
// report the node wrote, and false if the node never ran.
func reportGinkgoJSON(path string) func() (types.Report, bool) {
	var (
		report types.Report
		done   bool
	)
	ginkgo.ReportAfterSuite("Ginkgo JSON report", func(r ginkgo.Report) {
		report, done = r, true
		if err := reports.WriteGinkgoJSON(path, r); err != nil {
			ginkgo.Fail(fmt.Sprintf("Failed to generate JSON report:\n%s", err))
		}
	})
	return func() (types.Report, bool) { return report, done }
}

// writeDivergences writes ds as dir's divergences.json.
func writeDivergences(dir string, ds []scenarios.Divergence) error {
	b, err := json.MarshalIndent(ds, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, reports.FileDivergences), append(b, '\n'), 0o644)
}

// runCertifyProcess runs the suite as process p of a run (procs.go): the
// specs it claims first, in the run's order, its Ginkgo report, trace and
// divergences in out, its progress as procEvents on e.stdout.
func runCertifyProcess(e *env, p *certifyProcess, driver *scenarios.DUTDriver, shard *reports.Shard, focus, labels string, timeout time.Duration, out string, traceFile *os.File) error {
	// Standard output carries the progress events alone; the suite's own
	// prints (the tearing sweep's total) go to standard error.
	events := e.stdout
	os.Stdout = os.Stderr
	claimSpecs(p)
	skipOtherShards(shard)
	scenarios.Define(driver)
	gomega.RegisterFailHandler(ginkgo.Fail)
	suiteConfig, reporterConfig := ginkgo.GinkgoConfiguration()
	if focus != "" {
		suiteConfig.FocusStrings = []string{focus}
	}
	suiteConfig.LabelFilter = labels
	suiteConfig.Timeout = timeout
	suiteConfig.RandomSeed = p.Seed
	reporterConfig = reportProgress(events, reporterConfig)
	reportGinkgoJSON(filepath.Join(out, reports.FileGinkgo))
	var t suiteT
	driver.Options.KeepEmulators = true
	ginkgo.RunSpecs(&t, "spdlab conformance on "+strings.Join(driver.Specs, " + "), suiteConfig, reporterConfig)
	_ = dut.ReleaseIdleEmulators()
	if driver.Against != "" {
		if err := writeDivergences(out, driver.Divergences()); err != nil {
			return err
		}
	}
	if traceFile != nil {
		return traceFile.Close()
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
