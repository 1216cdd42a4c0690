package main

import (
	"context"
	"fmt"

	"github.com/spdlab/spdlab/reports"
)

func init() {
	register("report", "write or verify a certification report from a Ginkgo JSON report", runReport)
}

func runReport(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "report", "--json FILE --dut DUT --out DIR [--key FILE] | --verify DIR")
	jsonPath := flags.String("json", "", "Ginkgo JSON report of a conformance run")
	dut := flags.String("dut", "", "the device under test the run was against")
	out := flags.String("out", "", "directory for report.html, junit.xml, certificate.json, manifest.json")
	keyPath := flags.String("key", reports.DefaultLabKeyPath(), "lab signing key (PEM, EC P-256); made on first use when absent")
	verify := flags.String("verify", "", "verify the manifest and files of a report directory")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *verify != "" {
		m, err := reports.ReadManifest(*verify)
		if err != nil {
			return err
		}
		if err := reports.VerifyManifest(*verify, m, nil); err != nil {
			return err
		}
		verdict := "NOT CERTIFIED"
		if m.Certified {
			verdict = "CERTIFIED"
		}
		fmt.Fprintf(e.stdout, "%s: manifest verifies (%d files, DUT %s, %s)\n", *verify, len(m.Files), m.DUT, verdict)
		return nil
	}
	if *jsonPath == "" || *out == "" || *dut == "" {
		flags.Usage()
		return errUsage
	}
	rs, err := reports.LoadGinkgoJSON(*jsonPath)
	if err != nil {
		return err
	}
	key, err := reports.LabKey(*keyPath)
	if err != nil {
		return err
	}
	c, err := reports.Write(*out, *dut, rs, key)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s\nreport: %s/%s\n", c.Summary(), *out, reports.FileHTML)
	return nil
}
