package reports

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

func TestParseShard(t *testing.T) {
	for _, ok := range []string{"1/1", "2/3", "3/3"} {
		if _, err := ParseShard(ok); err != nil {
			t.Errorf("ParseShard(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "0/3", "4/3", "1/0", "a/b", "1/3/4", " 1/3", "-1/3"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
}

// TestShardOfIsStable pins the split: stations running different builds
// must agree on which shard runs a case.
func TestShardOfIsStable(t *testing.T) {
	got := []int{ShardOf("TC-PAY-001", 3), ShardOf("TC-APP-001", 3), ShardOf("TC-SVC-040", 4), ShardOf("TC-XFR-002", 7)}
	want := []int{fnvShard("TC-PAY-001", 3), fnvShard("TC-APP-001", 3), fnvShard("TC-SVC-040", 4), fnvShard("TC-XFR-002", 7)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ShardOf: %v, want %v (FNV-1a 32 of the case ID, mod n, plus 1)", got, want)
	}
	for n := 1; n <= 5; n++ {
		counts := make([]int, n+1)
		for i := 0; i < 200; i++ {
			s := ShardOf(fmt.Sprintf("TC-X-%03d", i), n)
			if s < 1 || s > n {
				t.Fatalf("ShardOf(.., %d) = %d", n, s)
			}
			counts[s]++
		}
		for s := 1; s <= n; s++ {
			if counts[s] == 0 {
				t.Errorf("%d shards: shard %d gets no case of 200", n, s)
			}
		}
	}
}

// fnvShard is FNV-1a 32 written out, the specification of ShardOf.
func fnvShard(id string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h%uint32(n)) + 1
}

func spec(id string, state types.SpecState, msg string) types.SpecReport {
	return types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeText: "case " + id, LeafNodeLabels: []string{id},
		State: state, Failure: types.Failure{Message: msg}}
}

// shardRuns makes the n shard runs of a suite of ids, each case passed in
// its own shard and skipped as another shard's elsewhere.
func shardRuns(n int, ids []string) []ShardRun {
	var runs []ShardRun
	for i := 1; i <= n; i++ {
		s := Shard{Index: i, Count: n}
		r := types.Report{SuiteSucceeded: true}
		for _, id := range ids {
			if s.Has(id) {
				r.SpecReports = append(r.SpecReports, spec(id, types.SpecStatePassed, ""))
			} else {
				r.SpecReports = append(r.SpecReports, spec(id, types.SpecStateSkipped, s.SkipReason(id)))
			}
		}
		info := RunInfo{DUT: fmt.Sprintf("pcsc:Station %d", i), Shard: s.String(), SuiteVersion: "2", SpecVersion: "1",
			CaseCount: len(ids), ICS: ICS{SHA256: "ab"}}
		runs = append(runs, ShardRun{Dir: fmt.Sprintf("shard%d", i), Certificate: Certificate{Run: info}, Report: r})
	}
	return runs
}

func TestMergeJoinsShardsIntoOneRun(t *testing.T) {
	var ids []string
	for i := 1; i <= 40; i++ {
		ids = append(ids, fmt.Sprintf("TC-PAY-%03d", i))
	}
	info, merged, err := mergeRuns(shardRuns(3, ids))
	if err != nil {
		t.Fatal(err)
	}
	if len(merged.SpecReports) != len(ids) || info.Shard != "" || info.CaseCount != len(ids) {
		t.Fatalf("merged %d specs, shard %q, case count %d", len(merged.SpecReports), info.Shard, info.CaseCount)
	}
	info.Lab = Lab{Name: "t"}
	c := Build(info, []types.Report{merged})
	if !c.Certified {
		t.Fatalf("merged run: %s %v", c.Verdict, c.Findings)
	}
	// One shard alone is not a certificate.
	one := shardRuns(3, ids)[0]
	if c := Build(one.Certificate.Run, []types.Report{one.Report}); c.Certified || c.Verdict != VerdictShard {
		t.Fatalf("a shard alone: %s", c.Verdict)
	}
}

func TestMergeRefusesShardsThatDoNotMakeOneRun(t *testing.T) {
	ids := []string{"TC-A-001", "TC-A-002", "TC-A-003", "TC-A-004", "TC-A-005", "TC-A-006", "TC-A-007", "TC-A-008"}
	for name, tc := range map[string]struct {
		edit func(rs []ShardRun) []ShardRun
		want string
	}{
		"missing shard":  {func(rs []ShardRun) []ShardRun { return rs[:2] }, "shard 3/3 is missing"},
		"shard twice":    {func(rs []ShardRun) []ShardRun { return append(rs, rs[1]) }, "are both shard 2/3"},
		"other ICS":      {func(rs []ShardRun) []ShardRun { rs[1].Certificate.Run.ICS.SHA256 = "cd"; return rs }, "one campaign has one statement"},
		"other suite":    {func(rs []ShardRun) []ShardRun { rs[2].Certificate.Run.SuiteVersion = "1"; return rs }, "ran suite 1"},
		"other DUT kind": {func(rs []ShardRun) []ShardRun { rs[2].Certificate.Run.DUT = "serial:/dev/ttyUSB0"; return rs }, "tested"},
		"filtered shard": {func(rs []ShardRun) []ShardRun { rs[0].Certificate.Run.LabelFilter = "C2"; return rs }, "filtered run"},
		"interrupted":    {func(rs []ShardRun) []ShardRun { rs[0].Certificate.Run.Interrupted = "timeout"; return rs }, "interrupted"},
		"whole run":      {func(rs []ShardRun) []ShardRun { rs[0].Certificate.Run.Shard = ""; return rs }, "whole run, not a shard"},
		"other count":    {func(rs []ShardRun) []ShardRun { rs[1].Certificate.Run.Shard = "2/4"; return rs }, "of 3 shards"},
		"overlap": {func(rs []ShardRun) []ShardRun {
			for i, s := range rs[0].Report.SpecReports {
				if strings.HasPrefix(s.Failure.Message, OtherShardPrefix) {
					rs[0].Report.SpecReports[i] = spec(ids[i], types.SpecStatePassed, "")
					break
				}
			}
			return rs
		}, "the shards overlap"},
		"case left out": {func(rs []ShardRun) []ShardRun {
			for i, s := range rs[1].Report.SpecReports {
				if s.State == types.SpecStatePassed {
					rs[1].Report.SpecReports[i] = spec(ids[i], types.SpecStateSkipped, OtherShardPrefix+"lied")
					break
				}
			}
			return rs
		}, "it is shard 2/3's own"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := mergeRuns(tc.edit(shardRuns(3, ids)))
			if !errors.Is(err, ErrBadMerge) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("merge: %v, want ErrBadMerge saying %q", err, tc.want)
			}
		})
	}
}
