package main

import (
	"fmt"
	"path/filepath"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reports"
)

// mergeReports joins the shard reports of one campaign (certify --shard)
// into one signed report in out. Every shard must verify against the
// trust anchor; shards that disagree, overlap or leave cases out are
// refused with the reason.
func mergeReports(e *env, dirs []string, out, keyPath, labKey, trustPath string) error {
	trust, err := loadTrust(labKey, trustPath)
	if err != nil {
		return err
	}
	if len(trust) == 0 {
		return fmt.Errorf("report: refusing to merge without a trust anchor: every shard must verify; pass the lab's public key with --lab-key FILE or --trust FILE")
	}
	lab, key, err := reports.OpenLab(keyPath)
	if err != nil {
		return err
	}
	info, merged, err := reports.Merge(dirs, trust)
	if err != nil {
		return err
	}
	info.Lab = lab
	if err := replaceOutDir(out); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := reports.WriteGinkgoJSON(filepath.Join(out, reports.FileGinkgo), merged); err != nil {
		return err
	}
	c, err := reports.Write(out, info, []types.Report{merged}, key)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "merged %d shards\n%s\nreport: %s\n", len(dirs), c.Summary(), filepath.Join(out, reports.FileHTML))
	if !c.Certified {
		return fmt.Errorf("report: merged run: %s", c.Verdict)
	}
	return nil
}
