package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reports"
)

func runReport(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "report", "--json FILE --dut DUT --out DIR [--key FILE] | --verify DIR (--lab-key PUB | --trust FILE) | --merge --out DIR [--key FILE] (--lab-key PUB | --trust FILE) SHARD_DIR... | --times DIR... | --golden GDIR (--record DIR | --compare DIR)")
	jsonPath := flags.String("json", "", "Ginkgo JSON report of a conformance run")
	dut := flags.String("dut", "", "the device under test the run was against")
	out := flags.String("out", "", "directory for report.html, junit.xml, certificate.json, manifest.json: new, empty, or holding an earlier report, which this one replaces; the manifest signs every file in it")
	keyPath := flags.String("key", reports.DefaultLabKeyPath(), "lab signing key (PEM, EC P-256), made once with 'spdlab labkey init'")
	verify := flags.String("verify", "", "verify the manifest and every file of a report directory")
	labKey := flags.String("lab-key", "", "with --verify or --merge: the trusted lab's public key (PEM, as 'spdlab labkey init' writes it)")
	trustPath := flags.String("trust", "", "with --verify or --merge: a file of trusted lab keys (PEM public keys, or one fingerprint per line)")
	merge := flags.Bool("merge", false, "join the shard reports named after the flags (certify --shard i/n) into one signed report in --out; each shard must verify against --lab-key or --trust")
	times := flags.Bool("times", false, "print each report directory's suite time (and its ratio to the first's) and the median and p99 of its case times")
	golden := flags.String("golden", "", "golden evidence directory (one <case>.golden file per case): with --record, write it from a report; with --compare, check a report against it")
	record := flags.String("record", "", "with --golden: the report directory whose cases become the golden evidence")
	compare := flags.String("compare", "", "with --golden: the report directory to compare with the golden evidence; fails on a changed or missing case")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if len(args) == 0 {
		flags.Usage()
		return errUsage
	}
	if *golden != "" {
		if flags.NArg() != 0 {
			return usageErrorf("unexpected argument %q with --golden", flags.Arg(0))
		}
		if (*record == "") == (*compare == "") {
			return usageErrorf("--golden DIR takes one of --record REPORT_DIR or --compare REPORT_DIR")
		}
		return goldenReport(e, *golden, *record, *compare)
	}
	if *times {
		return printTimes(e, flags.Args())
	}
	if *merge {
		if *out == "" {
			return usageErrorf("--merge needs --out DIR, the directory of the merged report")
		}
		if flags.NArg() == 0 {
			return usageErrorf("--merge needs the shard report directories after the flags")
		}
		for _, dir := range flags.Args() {
			if within(*out, dir) || within(dir, *out) {
				return usageErrorf("--out %s and the shard report %s are one inside the other: the merged report replaces what --out holds, and each shard's manifest signs every file in its directory; give --out a directory of its own", *out, dir)
			}
		}
		return mergeReports(e, flags.Args(), *out, *keyPath, *labKey, *trustPath)
	}
	if flags.NArg() != 0 {
		return usageErrorf("unexpected argument %q (only --merge and --times take directories after the flags)", flags.Arg(0))
	}
	if *verify != "" {
		return verifyReport(e, *verify, *labKey, *trustPath)
	}
	for _, f := range []struct{ name, value, what string }{
		{"json", *jsonPath, "FILE, the Ginkgo JSON report of the run"},
		{"dut", *dut, "DUT, the device the run was against"},
		{"out", *out, "DIR, the directory the report is written to"},
	} {
		if f.value == "" {
			return usageErrorf("to write a report, give --%s %s (--verify, --merge, --times and --golden are the other uses)", f.name, f.what)
		}
	}
	lab, key, err := reports.OpenLab(*keyPath)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(*jsonPath)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	rs, err := reports.ParseGinkgoJSON(raw)
	if err != nil {
		return fmt.Errorf("report: %s: %w", *jsonPath, err)
	}
	// The Ginkgo report is the run's evidence: keep it in the directory
	// the manifest signs, which holds this report alone (an earlier one
	// there is replaced; it may have been the source of the JSON, read
	// above).
	if err := replaceOutDir(*out); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(*out, reports.FileGinkgo), raw, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	c, err := reports.Write(*out, reports.RunInfo{DUT: *dut, Lab: lab}, rs, key)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s\nreport: %s\n", c.Summary(), filepath.Join(*out, reports.FileHTML))
	return nil
}

// verifyReport checks dir against a trust anchor and prints the signer's
// fingerprint and the verdict.
func verifyReport(e *env, dir, labKey, trustPath string) error {
	trust, err := loadTrust(labKey, trustPath)
	if err != nil {
		return err
	}
	if len(trust) == 0 {
		return fmt.Errorf("report: refusing to verify %s without a trust anchor: a manifest proves only that someone signed it; "+
			"pass the lab's public key with --lab-key FILE (the lab prints it with 'spdlab labkey show') or a file of trusted fingerprints with --trust FILE", dir)
	}
	m, err := reports.Verify(dir, trust)
	if m.KeyFingerprint != "" {
		fmt.Fprintf(e.stdout, "%s: signed by %s (lab %q)\n", dir, m.KeyFingerprint, m.Run.Lab.Name)
	}
	if err != nil {
		if errors.Is(err, reports.ErrUntrusted) {
			return fmt.Errorf("report: %s is NOT signed by a trusted lab key: %w", dir, err)
		}
		return fmt.Errorf("report: %s does NOT verify: %w", dir, err)
	}
	fmt.Fprintf(e.stdout, "%s: manifest verifies: %d files intact, signer trusted, DUT %s\nverdict: %s\n", dir, len(m.Files), m.Run.DUT, m.Verdict)
	return nil
}

// loadTrust reads the trust anchors given on the command line: a lab's
// public key and a file of trusted keys or fingerprints.
func loadTrust(labKey, trustPath string) (reports.Trust, error) {
	trust := reports.Trust{}
	if labKey != "" {
		b, err := os.ReadFile(labKey)
		if err != nil {
			return nil, fmt.Errorf("report: --lab-key: %w", err)
		}
		name, pub, err := reports.ParsePublicKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("report: --lab-key %s: %w", labKey, err)
		}
		trust.Add(pub, name)
	}
	if trustPath != "" {
		b, err := os.ReadFile(trustPath)
		if err != nil {
			return nil, fmt.Errorf("report: --trust: %w", err)
		}
		t, err := reports.ParseTrust(b)
		if err != nil {
			return nil, fmt.Errorf("report: --trust %s: %w", trustPath, err)
		}
		for fp, n := range t {
			trust[fp] = n
		}
	}
	return trust, nil
}

// printTimes prints, for each report directory, the suite's run time as a
// ratio to the first directory's, and the median and p99 of its case run
// times (cases that ran: passed or failed).
func printTimes(e *env, dirs []string) error {
	if len(dirs) == 0 {
		return errors.New("report: --times needs report directories")
	}
	var first time.Duration
	fmt.Fprintf(e.stdout, "%-30s %5s %9s %7s %12s %9s %s\n", "report", "cases", "suite", "ratio", "case median", "case p99", "slowest case")
	for i, dir := range dirs {
		rs, err := reports.LoadGinkgoJSON(filepath.Join(dir, "ginkgo.json"))
		if err != nil {
			return err
		}
		var suite time.Duration
		var cases []time.Duration
		slowest, slowestID := time.Duration(0), ""
		for _, r := range rs {
			suite += r.RunTime
			for _, sp := range r.SpecReports {
				if sp.LeafNodeType != types.NodeTypeIt || (sp.State != types.SpecStatePassed && sp.State != types.SpecStateFailed) {
					continue
				}
				cases = append(cases, sp.RunTime)
				if sp.RunTime > slowest {
					slowest, slowestID = sp.RunTime, caseID(sp.Labels())
				}
			}
		}
		if i == 0 {
			first = suite
		}
		slices.Sort(cases)
		ratio := "-"
		if first > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(suite)/float64(first))
		}
		fmt.Fprintf(e.stdout, "%-30s %5d %8.2fs %7s %10.1fms %7.1fms %s %.0fms\n", dir, len(cases), suite.Seconds(), ratio,
			ms(percentile(cases, 50)), ms(percentile(cases, 99)), slowestID, ms(slowest))
	}
	return nil
}

// percentile is the p-th percentile of sorted ds (nearest rank).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := (len(ds)*p + 99) / 100
	return ds[max(0, min(len(ds), i)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// caseID is the TC- label among a spec's labels.
func caseID(labels []string) string {
	for _, l := range labels {
		if strings.HasPrefix(l, "TC-") {
			return l
		}
	}
	return "?"
}

// goldenReport records a report's cases as golden evidence, or compares a
// report with it and fails on regressions.
func goldenReport(e *env, golden, record, compare string) error {
	if record != "" {
		c, err := reports.ReadCertificate(record)
		if err != nil {
			return err
		}
		if err := reports.RecordGolden(golden, c); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "golden: recorded %d cases of %s (%s) in %s\n", len(c.Cases), record, c.Verdict, golden)
		return nil
	}
	c, err := reports.ReadCertificate(compare)
	if err != nil {
		return err
	}
	diffs, err := reports.CompareGolden(golden, c)
	if err != nil {
		return err
	}
	for _, d := range diffs {
		fmt.Fprintln(e.stdout, d)
	}
	regressions := reports.Regressions(diffs)
	fmt.Fprintf(e.stdout, "golden: %d cases compared with %s: %d regressions, %d other differences\n",
		len(c.Cases), golden, len(regressions), len(diffs)-len(regressions))
	if len(regressions) > 0 {
		return fmt.Errorf("report: %s differs from the golden evidence in %s", compare, golden)
	}
	return nil
}
