package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/linktest"
	"github.com/spdlab/spdlab/rigs/trace"
)

// The merged report carries its shards' traces whole: each shard's probe
// first, in the order the shards are given, then every case's links in
// the merged run's order of its cases; no shard trace, no trace.
func TestMergeTraces(t *testing.T) {
	dir := t.TempDir()
	shard := func(name string, cases ...string) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for _, id := range cases {
			l := trace.WrapCase(link.NewDirect(&linktest.ScriptCard{}, name, []byte{0x3B, 0x00}), &b, nil, func() string { return id })
			if _, err := l.Exchange(context.Background(), []byte{0x00, 0xA4, 0x04, 0x00}); err != nil {
				t.Fatal(err)
			}
			l.Close()
		}
		if err := os.WriteFile(filepath.Join(d, reports.FileTrace), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	dirs := []string{shard("shard1", "", "TC-B-001", "TC-D-001"), shard("shard2", "", "TC-C-001", "TC-A-001")}
	var merged types.Report
	for _, id := range []string{"TC-A-001", "TC-B-001", "TC-C-001", "TC-D-001"} {
		merged.SpecReports = append(merged.SpecReports, types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeLabels: []string{id}})
	}
	out := filepath.Join(dir, "merged.pcapng")
	if err := mergeTraces(dirs, merged, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sections, err := trace.Sections(b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sections {
		got = append(got, s.Case)
	}
	if want := []string{"", "", "TC-A-001", "TC-B-001", "TC-C-001", "TC-D-001"}; !slices.Equal(got, want) {
		t.Errorf("merged trace's sections by case %q, want %q", got, want)
	}
	// The same bytes as the shards': their probes in shard order, then
	// the cases'.
	s1, s2 := shardSections(t, dirs[0]), shardSections(t, dirs[1])
	for i, want := range [][]byte{s1[0], s2[0], s2[2], s1[1], s2[1], s1[2]} {
		if i < len(sections) && !bytes.Equal(sections[i].Bytes, want) {
			t.Errorf("merged trace's section %d (%s) is not the shard's", i, sections[i].Case)
		}
	}
	var whole int
	for _, d := range dirs {
		fi, err := os.Stat(filepath.Join(d, reports.FileTrace))
		if err != nil {
			t.Fatal(err)
		}
		whole += int(fi.Size())
	}
	if len(b) != whole {
		t.Errorf("merged trace of %d bytes, the shards' are %d in all", len(b), whole)
	}

	none := filepath.Join(dir, "none.pcapng")
	if err := mergeTraces([]string{t.TempDir()}, merged, none); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(none); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("shards without a trace made %s (%v)", none, err)
	}
	if err := os.WriteFile(filepath.Join(dirs[1], reports.FileTrace), b[:len(b)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := mergeTraces(dirs, merged, filepath.Join(dir, "broken.pcapng")); err == nil {
		t.Error("a truncated shard trace was merged without an error")
	}
}

// shardSections returns the bytes of each section of dir's trace.
func shardSections(t *testing.T, dir string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, reports.FileTrace))
	if err != nil {
		t.Fatal(err)
	}
	s, err := trace.Sections(b)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, x := range s {
		out = append(out, x.Bytes)
	}
	return out
}

// The shards' divergences from the reference device join in the merged
// run's order of their cases; a campaign with none has none, and one
// differential in only some shards is refused, naming one of each.
func TestMergeDivergences(t *testing.T) {
	var merged types.Report
	for _, id := range []string{"TC-A-001", "TC-B-001", "TC-C-001"} {
		merged.SpecReports = append(merged.SpecReports, types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeLabels: []string{id}})
	}
	shard := func(divergences string) string {
		d := t.TempDir()
		if divergences != "" {
			if err := os.WriteFile(filepath.Join(d, reports.FileDivergences), []byte(divergences), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	one := shard(`[{"case": "TC-C-001", "name": "PAY"}, {"case": "TC-A-001", "name": "SELECT"}]`)
	two := shard(`[]`)
	three := shard(`[{"case": "TC-B-001", "name": "VERIFY"}]`)
	ds, differential, err := mergeDivergences([]string{one, two, three}, merged)
	if err != nil || !differential {
		t.Fatalf("mergeDivergences: %v, differential %v", err, differential)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Case+" "+d.Name)
	}
	if want := []string{"TC-A-001 SELECT", "TC-B-001 VERIFY", "TC-C-001 PAY"}; !slices.Equal(got, want) {
		t.Errorf("merged divergences %q, want %q", got, want)
	}
	if ds, differential, err := mergeDivergences([]string{shard(""), shard("")}, merged); err != nil || differential || ds != nil {
		t.Errorf("shards without divergences: %v, %v, %v", ds, differential, err)
	}
	plain := shard("")
	_, _, err = mergeDivergences([]string{one, plain}, merged)
	if !errors.Is(err, reports.ErrBadMerge) || !strings.Contains(err.Error(), one) || !strings.Contains(err.Error(), plain) {
		t.Errorf("a campaign differential in one shard of two: %v", err)
	}
	if _, _, err := mergeDivergences([]string{shard("{not json")}, merged); err == nil {
		t.Error("a divergences.json that does not parse was merged")
	}
}
