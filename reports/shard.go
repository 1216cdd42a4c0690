package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/onsi/ginkgo/v2/types"
)

// A long campaign is split across stations: `spdlab certify --shard i/n`
// runs the cases ShardOf assigns to shard i (by a hash of the case ID, so
// the split is the same on every run and machine) and skips the others
// with OtherShardPrefix. No shard is a certificate; Merge joins the n
// shard reports of one campaign into one run that Write signs.

// OtherShardPrefix starts the Skip message of a case that belongs to
// another shard of the run.
const OtherShardPrefix = "other shard: "

// VerdictShard is the verdict of one shard of a run in which no case
// failed.
const VerdictShard = "SHARD: not a certificate (join the shards with spdlab report --merge)"

// Shard is shard Index (1-based) of Count.
type Shard struct{ Index, Count int }

var shardPattern = regexp.MustCompile(`^([0-9]+)/([0-9]+)$`)

// ParseShard reads "i/n" with 1 <= i <= n.
func ParseShard(s string) (Shard, error) {
	m := shardPattern.FindStringSubmatch(s)
	if m == nil {
		return Shard{}, fmt.Errorf("reports: shard %q is not i/n", s)
	}
	i, _ := strconv.Atoi(m[1])
	n, _ := strconv.Atoi(m[2])
	if n < 1 || i < 1 || i > n || n > 1000 {
		return Shard{}, fmt.Errorf("reports: shard %q: want 1 <= i <= n <= 1000", s)
	}
	return Shard{Index: i, Count: n}, nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// ShardOf is the shard (1..n) that runs case id.
func ShardOf(id string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32()%uint32(n)) + 1
}

// Has reports whether case id belongs to s.
func (s Shard) Has(id string) bool { return ShardOf(id, s.Count) == s.Index }

// SkipReason is the Skip message for case id when it is not in s.
func (s Shard) SkipReason(id string) string {
	return fmt.Sprintf("%scase %s runs in shard %d/%d", OtherShardPrefix, id, ShardOf(id, s.Count), s.Count)
}

// CaseID is the case ID among a spec's labels, or "".
func CaseID(labels []string) string {
	for _, l := range labels {
		if caseIDPattern.MatchString(l) {
			return l
		}
	}
	return ""
}

// otherShard reports whether a spec was skipped as another shard's.
func otherShard(s types.SpecReport) bool {
	return s.State.Is(types.SpecStateSkipped) && strings.HasPrefix(strings.TrimSpace(s.Failure.Message), OtherShardPrefix)
}

// ShardRun is one shard's report directory as Merge reads it.
type ShardRun struct {
	Dir         string
	Certificate Certificate
	Report      types.Report
}

// ErrBadMerge is wrapped by every refusal of Merge.
var ErrBadMerge = errors.New("reports: shards do not make one run")

// Merge verifies each shard directory's manifest against trust, checks that
// the shards are the n shards of one campaign (same suite and profile
// version, case count, ICS, product and DUT kind; each index once; none
// focused, filtered or interrupted; every case run exactly in its own
// shard), and returns the run's RunInfo and Ginkgo report, ready for
// Write.
func Merge(dirs []string, trust Trust) (RunInfo, types.Report, error) {
	var runs []ShardRun
	for _, dir := range dirs {
		if _, err := Verify(dir, trust); err != nil {
			return RunInfo{}, types.Report{}, fmt.Errorf("%w: %s: %w", ErrBadMerge, dir, err)
		}
		c, err := ReadCertificate(dir)
		if err != nil {
			return RunInfo{}, types.Report{}, err
		}
		b, err := os.ReadFile(filepath.Join(dir, FileGinkgo))
		if err != nil {
			return RunInfo{}, types.Report{}, fmt.Errorf("reports: %w", err)
		}
		rs, err := ParseGinkgoJSON(b)
		if err != nil {
			return RunInfo{}, types.Report{}, fmt.Errorf("reports: %s: %w", dir, err)
		}
		if len(rs) != 1 {
			return RunInfo{}, types.Report{}, fmt.Errorf("%w: %s holds %d suites, want 1", ErrBadMerge, dir, len(rs))
		}
		runs = append(runs, ShardRun{Dir: dir, Certificate: c, Report: rs[0]})
	}
	return mergeRuns(runs)
}

func mergeRuns(runs []ShardRun) (RunInfo, types.Report, error) {
	bad := func(format string, args ...any) (RunInfo, types.Report, error) {
		return RunInfo{}, types.Report{}, fmt.Errorf("%w: "+format, append([]any{ErrBadMerge}, args...)...)
	}
	if len(runs) == 0 {
		return bad("no shard given")
	}
	first := runs[0].Certificate.Run
	n := 0
	seen := map[int]string{}
	for _, r := range runs {
		info := r.Certificate.Run
		if info.Shard == "" {
			return bad("%s is a whole run, not a shard", r.Dir)
		}
		s, err := ParseShard(info.Shard)
		if err != nil {
			return bad("%s: %v", r.Dir, err)
		}
		if n == 0 {
			n = s.Count
		}
		switch {
		case s.Count != n:
			return bad("%s is shard %s but %s is of %d shards", r.Dir, s, runs[0].Dir, n)
		case seen[s.Index] != "":
			return bad("%s and %s are both shard %s", seen[s.Index], r.Dir, s)
		case info.SuiteVersion != first.SuiteVersion || info.SpecVersion != first.SpecVersion || info.CaseCount != first.CaseCount:
			return bad("%s ran suite %s (profile %s, %d cases), %s suite %s (profile %s, %d cases)", r.Dir, info.SuiteVersion, info.SpecVersion, info.CaseCount,
				runs[0].Dir, first.SuiteVersion, first.SpecVersion, first.CaseCount)
		case info.ICS.SHA256 != first.ICS.SHA256:
			return bad("%s ran under ICS %s, %s under %s: one campaign has one statement", r.Dir, info.ICS.SHA256, runs[0].Dir, first.ICS.SHA256)
		case dutKind(info.DUT) != dutKind(first.DUT):
			return bad("%s tested %q, %s tested %q", r.Dir, info.DUT, runs[0].Dir, first.DUT)
		case len(info.Focus) > 0 || info.LabelFilter != "":
			return bad("%s is a filtered run (focus %q, label filter %q)", r.Dir, info.Focus, info.LabelFilter)
		case info.Interrupted != "":
			return bad("%s was interrupted: %s", r.Dir, info.Interrupted)
		}
		seen[s.Index] = r.Dir
	}
	for i := 1; i <= n; i++ {
		if seen[i] == "" {
			return bad("shard %d/%d is missing", i, n)
		}
	}
	merged := runs[0].Report
	merged.SpecReports = nil
	merged.SuiteSucceeded = true
	owner := map[string]string{}
	info := first
	info.Shard, info.Samples = "", nil
	for _, r := range runs {
		s, _ := ParseShard(r.Certificate.Run.Shard)
		rep := r.Report
		if rep.StartTime.Before(merged.StartTime) {
			merged.StartTime = rep.StartTime
		}
		if rep.EndTime.After(merged.EndTime) {
			merged.EndTime = rep.EndTime
		}
		merged.SuiteSucceeded = merged.SuiteSucceeded && rep.SuiteSucceeded
		merged.SpecialSuiteFailureReasons = append(merged.SpecialSuiteFailureReasons, rep.SpecialSuiteFailureReasons...)
		for _, sp := range r.Certificate.Run.Samples {
			if !slices.Contains(info.Samples, sp) {
				info.Samples = append(info.Samples, sp)
			}
		}
		for _, spec := range rep.SpecReports {
			id := CaseID(spec.Labels())
			if spec.LeafNodeType != types.NodeTypeIt || id == "" {
				if spec.State.Is(types.SpecStateFailureStates) {
					merged.SpecReports = append(merged.SpecReports, spec)
				}
				continue
			}
			mine := s.Has(id)
			switch {
			case mine && otherShard(spec):
				return bad("%s skipped %s as another shard's, but it is shard %s's own", r.Dir, id, s)
			case !mine && !otherShard(spec):
				return bad("%s ran %s, which belongs to shard %d/%d: the shards overlap", r.Dir, id, ShardOf(id, n), n)
			case !mine:
				continue
			case owner[id] != "":
				return bad("%s and %s both hold %s", owner[id], r.Dir, id)
			}
			owner[id] = r.Dir
			merged.SpecReports = append(merged.SpecReports, spec)
		}
	}
	if len(owner) != info.CaseCount {
		return bad("the shards hold %d of the suite's %d cases", len(owner), info.CaseCount)
	}
	info.Started, info.Finished = merged.StartTime, merged.EndTime
	var names []string
	for _, r := range runs {
		names = append(names, r.Certificate.Run.DUT)
	}
	info.DUT = strings.Join(names, " | ")
	return info, merged, nil
}

// dutKind is what must agree between shards: the DUT kinds (pcsc, serial,
// ref, ...), not the readers or ports of each station.
func dutKind(dut string) string {
	var kinds []string
	for _, s := range strings.Split(dut, " + ") {
		k, _, _ := strings.Cut(strings.TrimSpace(s), ":")
		kinds = append(kinds, k)
	}
	return strings.Join(kinds, "+")
}

// WriteGinkgoJSON writes one Ginkgo report in Ginkgo's JSON report format
// (a list of suite reports, what ginkgo --json-report writes), unindented
// and ending in a newline, streamed into the file. Programs read it
// (LoadGinkgoJSON, spdlab report --json); indenting a run's 9 MB cost
// about as much CPU as encoding it.
func WriteGinkgoJSON(path string, r types.Report) error {
	return writeFile(path, func(w io.Writer) error {
		if err := json.NewEncoder(w).Encode([]types.Report{r}); err != nil {
			return fmt.Errorf("reports: %w", err)
		}
		return nil
	})
}
