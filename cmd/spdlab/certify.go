package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/dut"
	"github.com/spdlab/spdlab/scenarios"
)

func init() {
	register("certify", "run the conformance suite against a device and write the signed certification report", runCertify)
}

// suiteT is the testing.T stand-in Ginkgo reports the suite's outcome to.
type suiteT struct{ failed bool }

func (t *suiteT) Fail() { t.failed = true }

func runCertify(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "certify", "--dut DUT --out DIR [--focus REGEX] [--label-filter EXPR] [--key FILE] [--trace FILE]")
	dutSpec := flags.String("dut", "", "device under test (ref, usb-emu, serial-emu, sd-emu, pcsc-emu, pcsc[:READER], serial:PATH, usb:VID:PID, sd:DIR)")
	out := flags.String("out", "", "directory for the report (report.html, junit.xml, certificate.json, manifest.json, ginkgo.json)")
	focus := flags.String("focus", "", "run only cases whose description matches this regular expression")
	labels := flags.String("label-filter", "", "run only cases matching this Ginkgo label expression, e.g. 'C2 || C4' or 'TC-PAY-001'")
	keyPath := flags.String("key", reports.DefaultLabKeyPath(), "lab signing key (PEM, EC P-256); made on first use when absent")
	tracePath := flags.String("trace", "", "record every APDU exchange as pcapng (GSMTAP) in this file")
	timeout := flags.Duration("timeout", time.Hour, "stop the suite after this long")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *dutSpec == "" || *out == "" || flags.NArg() != 0 {
		flags.Usage()
		return errUsage
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	key, err := reports.LabKey(*keyPath)
	if err != nil {
		return err
	}
	driver := &scenarios.DUTDriver{Specs: []string{*dutSpec}}
	if *tracePath != "" {
		tf, err := os.Create(*tracePath)
		if err != nil {
			return err
		}
		defer tf.Close()
		driver.Options = dut.Options{Trace: tf}
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
	ginkgo.RunSpecs(&t, "spdlab conformance on "+*dutSpec, suiteConfig, reporterConfig)

	rs, err := reports.LoadGinkgoJSON(jsonPath)
	if err != nil {
		return err
	}
	c, err := reports.Write(*out, *dutSpec, rs, key)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\n%s\nreport: %s\n", c.Summary(), filepath.Join(*out, reports.FileHTML))
	if !c.Certified {
		return fmt.Errorf("%s is not certified", *dutSpec)
	}
	return nil
}
