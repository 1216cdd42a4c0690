package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/trace"
	"github.com/spdlab/spdlab/scenarios"
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
	divergences, differential, err := mergeDivergences(dirs, merged)
	if err != nil {
		return err
	}
	if err := replaceOutDir(out); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := reports.WriteGinkgoJSON(filepath.Join(out, reports.FileGinkgo), merged); err != nil {
		return err
	}
	if err := mergeTraces(dirs, merged, filepath.Join(out, reports.FileTrace)); err != nil {
		return err
	}
	if differential {
		if err := writeDivergences(out, divergences); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s\n", scenarios.DivergenceSummary(divergences))
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

// mergeTraces writes to path the traces of the shard reports in dirs
// (each signed with its shard, which Merge verified), joined as one run's:
// first each shard's sections outside any case (its probe of the
// samples), in the order of dirs, then every case's links in the order
// the merged run has its cases. Shards without a trace add nothing; when
// none has one, no file is written.
func mergeTraces(dirs []string, merged types.Report, path string) error {
	rank := caseRank(merged)
	var sections []trace.Section
	found := false
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, reports.FileTrace))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		found = true
		s, err := trace.Sections(b)
		if err != nil {
			return fmt.Errorf("report: %s: %w", filepath.Join(dir, reports.FileTrace), err)
		}
		sections = append(sections, s...)
	}
	if !found {
		return nil
	}
	slices.SortStableFunc(sections, func(a, b trace.Section) int {
		return sectionRank(rank, a) - sectionRank(rank, b)
	})
	var joined []byte
	for _, s := range sections {
		joined = append(joined, s.Bytes...)
	}
	if err := os.WriteFile(path, joined, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// sectionRank orders a section outside any case before every case's.
func sectionRank(rank func(string) int, s trace.Section) int {
	if s.Case == "" {
		return -1
	}
	return rank(s.Case)
}

// caseRank returns the rank of a case ID in r, the order r has its cases
// in (their first spec); an ID r lacks comes after all of them.
func caseRank(r types.Report) func(id string) int {
	order := map[string]int{}
	for i, s := range r.SpecReports {
		if id := reports.CaseID(s.Labels()); id != "" {
			if _, ok := order[id]; !ok {
				order[id] = i
			}
		}
	}
	return func(id string) int {
		if i, ok := order[id]; ok {
			return i
		}
		return len(order)
	}
}

// mergeDivergences joins the divergences the shards in dirs found from
// the reference device (certify --against: its divergences.json, an
// empty list when none), in the joined run's order of their cases. A
// campaign is differential in every shard or in none: false when none
// has the file, and an error naming the first shard without it when only
// some have.
func mergeDivergences(dirs []string, merged types.Report) ([]scenarios.Divergence, bool, error) {
	var all []scenarios.Divergence
	var with, without []string
	for _, dir := range dirs {
		path := filepath.Join(dir, reports.FileDivergences)
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			without = append(without, dir)
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("report: %w", err)
		}
		var ds []scenarios.Divergence
		if err := json.Unmarshal(b, &ds); err != nil {
			return nil, false, fmt.Errorf("report: %s: %w", path, err)
		}
		with = append(with, dir)
		all = append(all, ds...)
	}
	switch {
	case len(with) == 0:
		return nil, false, nil
	case len(without) > 0:
		return nil, false, fmt.Errorf("%w: %s ran against the reference device (%s) and %s did not: a campaign is differential in all its shards or in none",
			reports.ErrBadMerge, with[0], reports.FileDivergences, without[0])
	}
	rank := caseRank(merged)
	slices.SortStableFunc(all, func(a, b scenarios.Divergence) int { return rank(a.Case) - rank(b.Case) })
	return all, true, nil
}
