package reports

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/onsi/ginkgo/v2/types"
)

// One run of the suite split across processes on one station (`spdlab
// certify --procs N`): every process walks the same specs in the same
// order (one random seed) and runs a spec only when it claims it first
// (SpecClaims); it skips the others with OtherProcessPrefix. The cases are
// handed out as the processes get free, as Ginkgo's own parallel mode
// does, so one slow case does not hold back the cases behind it.
// MergeProcesses joins the processes' reports into the report a serial
// run would have made: the same specs, in the same order, each as the
// process that ran it reported it.

// OtherProcessPrefix starts the Skip message of a spec another process of
// the run has claimed.
const OtherProcessPrefix = "other process: "

// DeferredPrefix starts the Skip message of a spec a process of a run left
// for a later process: it needs more of a rig the processes share than
// this process holds. The run gives the specs every process left so to one
// process of their own, which holds the whole rig.
const DeferredPrefix = "deferred: "

// SpecClaims are one process's claims on specs, kept as files in a directory
// every process of the run shares: the first process to create a spec's
// file (a hard link, which fails when the name exists) runs it.
type SpecClaims struct {
	dir  string
	proc int
	mine map[string]bool
}

// NewSpecClaims returns process proc's claims in dir, which must exist.
func NewSpecClaims(dir string, proc int) *SpecClaims {
	return &SpecClaims{dir: dir, proc: proc, mine: map[string]bool{}}
}

// Take claims key for this process. It reports false, and the process
// holding it, when another process took it first.
func (c *SpecClaims) Take(key string) (ok bool, owner string, err error) {
	if c.mine[key] {
		return true, "", nil
	}
	sum := sha256.Sum256([]byte(key))
	path := filepath.Join(c.dir, hex.EncodeToString(sum[:12]))
	// The claim is written whole, then linked into place: link fails when
	// the name exists, and a claim read is never half written.
	tmp, err := os.CreateTemp(c.dir, ".claim-")
	if err != nil {
		return false, "", fmt.Errorf("reports: claiming a spec: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := fmt.Fprintf(tmp, "%d\n", c.proc)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		return false, "", fmt.Errorf("reports: claiming a spec: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, "", fmt.Errorf("reports: reading a claim: %w", err)
		}
		return false, strings.TrimSpace(string(b)), nil
	} else if err != nil {
		return false, "", fmt.Errorf("reports: claiming a spec: %w", err)
	}
	c.mine[key] = true
	return true, "", nil
}

// SpecKey names a spec the same way in every process of a run: its
// containers, its text and where it is defined.
func SpecKey(s types.SpecReport) string {
	var b strings.Builder
	for i, t := range s.ContainerHierarchyTexts {
		b.WriteString(t)
		if i < len(s.ContainerHierarchyLocations) {
			b.WriteString(" @" + s.ContainerHierarchyLocations[i].String())
		}
		b.WriteString(" / ")
	}
	b.WriteString(s.LeafNodeText + " @" + s.LeafNodeLocation.String())
	return b.String()
}

// ClaimKey is what a process claims to run spec s: the spec itself, or,
// for a spec of an Ordered container, its outermost container, so that a
// stateful flow (BeforeAll, then each spec in turn on its device) runs
// whole in one process. (A spec report does not say which of its
// containers is the Ordered one; the outermost holds it.)
func ClaimKey(s types.SpecReport) string {
	if s.IsInOrderedContainer && len(s.ContainerHierarchyTexts) > 0 {
		k := "ordered: " + s.ContainerHierarchyTexts[0]
		if len(s.ContainerHierarchyLocations) > 0 {
			k += " @" + s.ContainerHierarchyLocations[0].String()
		}
		return k
	}
	return SpecKey(s)
}

// OtherProcessReason is the Skip message for a spec process owner holds.
func OtherProcessReason(owner string) string {
	return OtherProcessPrefix + "runs in process " + owner
}

// otherProcess reports whether a spec was skipped as another process's,
// or deferred to a later one.
func otherProcess(s types.SpecReport) bool {
	msg := strings.TrimSpace(s.Failure.Message)
	return s.State.Is(types.SpecStateSkipped) && (strings.HasPrefix(msg, OtherProcessPrefix) || strings.HasPrefix(msg, DeferredPrefix))
}

// LeftOver lists the claim keys of the specs of rs (the reports of the
// processes of a run so far, process 1 first) that no process ran: each
// was deferred by the process that claimed it. Run them in a process of
// their own, with the claims of every other spec taken (Done).
func LeftOver(rs []types.Report) (left, done []string) {
	ran := map[string]bool{}
	for _, r := range rs {
		for _, s := range r.SpecReports {
			if s.LeafNodeType == types.NodeTypeIt && !otherProcess(s) {
				ran[SpecKey(s)] = true
			}
		}
	}
	if len(rs) == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	for _, s := range rs[0].SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			continue
		}
		k := ClaimKey(s)
		if seen[k] {
			continue
		}
		seen[k] = true
		if ran[SpecKey(s)] {
			done = append(done, k)
		} else {
			left = append(left, k)
		}
	}
	return left, done
}

// Owners maps the case ID of every spec of merged, a report MergeProcesses
// made from rs, to the index in rs of the process that ran it.
func Owners(rs []types.Report) map[string]int {
	o := map[string]int{}
	for i, r := range rs {
		for _, s := range r.SpecReports {
			if s.LeafNodeType == types.NodeTypeIt && !otherProcess(s) {
				if id := CaseID(s.Labels()); id != "" {
					if _, ok := o[id]; !ok {
						o[id] = i
					}
				}
			}
		}
	}
	return o
}

// ErrBadProcesses is wrapped by every refusal of MergeProcesses.
var ErrBadProcesses = errors.New("reports: process reports do not make one run")

// MergeProcesses joins the Ginkgo reports of the processes of one run
// (one report each, process 1 first) into one report: process 1's specs
// in its order, each taken from the process that ran it; suite-level
// nodes from process 1, and any other process's that failed. Every spec
// must have been run (or left out by a filter) by exactly one process:
// a spec every process skipped as another's means a process died
// without reporting it.
func MergeProcesses(rs []types.Report) (types.Report, error) {
	bad := func(format string, args ...any) (types.Report, error) {
		return types.Report{}, fmt.Errorf("%w: "+format, append([]any{ErrBadProcesses}, args...)...)
	}
	if len(rs) == 0 {
		return bad("no process report")
	}
	stopped := Stopped(rs)
	ran := map[string]types.SpecReport{}
	for i, r := range rs {
		for _, s := range r.SpecReports {
			if s.LeafNodeType != types.NodeTypeIt || otherProcess(s) {
				continue
			}
			k := SpecKey(s)
			if prev, dup := ran[k]; dup {
				switch {
				case notRun(prev) && notRun(s):
					// A filter left it out: every process says so.
					continue
				case skipped(s) && stopped:
					// The run stopped before this process reached it.
					continue
				case skipped(prev) && stopped:
					// ... or before the other one did.
				default:
					return bad("process %d ran %q, which another process ran too", i+1, s.LeafNodeText)
				}
			}
			ran[k] = s
		}
	}
	merged := rs[0]
	merged.SpecReports = nil
	merged.SpecialSuiteFailureReasons = nil
	merged.SuiteSucceeded = true
	seen := map[string]bool{}
	for i, r := range rs {
		if r.StartTime.Before(merged.StartTime) {
			merged.StartTime = r.StartTime
		}
		if r.EndTime.After(merged.EndTime) {
			merged.EndTime = r.EndTime
		}
		merged.SuiteSucceeded = merged.SuiteSucceeded && r.SuiteSucceeded
		for _, why := range r.SpecialSuiteFailureReasons {
			if !containsString(merged.SpecialSuiteFailureReasons, why) {
				merged.SpecialSuiteFailureReasons = append(merged.SpecialSuiteFailureReasons, why)
			}
		}
		for _, s := range r.SpecReports {
			if s.LeafNodeType == types.NodeTypeIt {
				if i > 0 {
					continue
				}
				k := SpecKey(s)
				got, ok := ran[k]
				switch {
				case !ok && stopped:
					// The run was cut short before any process ran it: it
					// stays as process 1 skipped it, a case not run.
					got = s
				case !ok:
					return bad("no process ran %q (a process stopped before it)", s.LeafNodeText)
				}
				seen[k] = true
				merged.SpecReports = append(merged.SpecReports, got)
				continue
			}
			if i == 0 || s.State.Is(types.SpecStateFailureStates) {
				merged.SpecReports = append(merged.SpecReports, s)
			}
		}
	}
	if n := countSeen(seen, ran); n != len(ran) {
		return bad("processes ran %d specs that process 1 does not have", len(ran)-n)
	}
	merged.RunTime = merged.EndTime.Sub(merged.StartTime)
	return merged, nil
}

// Stopped reports whether any of the processes' reports says its run was
// interrupted, timed out or aborted.
func Stopped(rs []types.Report) bool {
	for _, r := range rs {
		if interruption(r) != "" {
			return true
		}
	}
	return false
}

// skipped reports whether a spec did not run (skipped, pending).
func skipped(s types.SpecReport) bool {
	return s.State.Is(types.SpecStateSkipped | types.SpecStatePending)
}

// countSeen is how many of the specs processes ran the join has taken.
func countSeen(seen map[string]bool, ran map[string]types.SpecReport) int {
	n := 0
	for k := range ran {
		if seen[k] {
			n++
		}
	}
	return n
}

// notRun reports whether a spec was left out before any of its nodes ran
// (a focus, a label filter or Pending), as every process reports it alike.
func notRun(s types.SpecReport) bool {
	return s.State.Is(types.SpecStateSkipped|types.SpecStatePending) && s.Failure.Message == "" && s.RunTime == 0
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ParseProcess reads "k/n", process k (1-based) of n.
func ParseProcess(s string) (k, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	k, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || k < 1 || k > n {
		return 0, 0, fmt.Errorf("reports: process %q is not k/n with 1 <= k <= n", s)
	}
	return k, n, nil
}
