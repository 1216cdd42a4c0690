package reports

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

// Of processes claiming the same specs at once, exactly one gets each, and
// a process keeps what it took.
func TestSpecClaims(t *testing.T) {
	dir := t.TempDir()
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	won := make([][]string, 4)
	var wg sync.WaitGroup
	for p := range won {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := NewSpecClaims(dir, p+1)
			for _, k := range keys {
				ok, owner, err := c.Take(k)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					won[p] = append(won[p], k)
					if again, _, _ := c.Take(k); !again {
						t.Errorf("process %d lost %s it took", p+1, k)
					}
				} else if owner == "" || owner == string(rune('0'+p+1)) {
					t.Errorf("process %d: %s held by %q", p+1, k, owner)
				}
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, w := range won {
		n += len(w)
	}
	if n != len(keys) {
		t.Errorf("%d claims granted for %d specs: %v", n, len(keys), won)
	}
}

func procSpec(text string, state types.SpecState, msg string) types.SpecReport {
	return types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeText: text, ContainerHierarchyTexts: []string{"suite"},
		LeafNodeLabels: []string{"TC-PAY-00" + text}, State: state, Failure: types.Failure{Message: msg}}
}

var claimed = OtherProcessReason("2")

// MergeProcesses takes each spec from the process that ran it, in process
// 1's order, fails the run when any process's spec failed, and refuses
// reports that leave a spec unrun or run it twice.
func TestMergeProcesses(t *testing.T) {
	p1 := types.Report{SuiteSucceeded: true, SpecReports: types.SpecReports{
		procSpec("1", types.SpecStatePassed, ""), procSpec("2", types.SpecStateSkipped, claimed), procSpec("3", types.SpecStatePassed, ""),
		procSpec("4", types.SpecStateSkipped, ""), // a filter left it out
	}}
	p2 := types.Report{SuiteSucceeded: false, SpecReports: types.SpecReports{
		procSpec("1", types.SpecStateSkipped, claimed), procSpec("2", types.SpecStateFailed, "6985 want 9000"), procSpec("3", types.SpecStateSkipped, claimed),
		procSpec("4", types.SpecStateSkipped, ""),
	}}
	m, err := MergeProcesses([]types.Report{p1, p2})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range m.SpecReports {
		got = append(got, s.LeafNodeText+" "+s.State.String())
	}
	if strings.Join(got, ", ") != "1 passed, 2 failed, 3 passed, 4 skipped" || m.SuiteSucceeded {
		t.Errorf("merged %v, suite succeeded %v", got, m.SuiteSucceeded)
	}
	c := Build(RunInfo{CaseCount: 4}, []types.Report{m})
	if c.Verdict != VerdictNotCertified || c.Failed != 1 {
		t.Errorf("merged run: %s, %d failed", c.Verdict, c.Failed)
	}

	lost := p2
	lost.SpecReports = types.SpecReports{procSpec("1", types.SpecStateSkipped, claimed), procSpec("2", types.SpecStateSkipped, claimed), procSpec("3", types.SpecStateSkipped, claimed)}
	if _, err := MergeProcesses([]types.Report{p1, lost}); !errors.Is(err, ErrBadProcesses) || !strings.Contains(err.Error(), `no process ran "2"`) {
		t.Errorf("a spec no process ran: %v", err)
	}
	twice := p2
	twice.SpecReports = types.SpecReports{procSpec("1", types.SpecStatePassed, ""), procSpec("2", types.SpecStatePassed, ""), procSpec("3", types.SpecStateSkipped, claimed)}
	if _, err := MergeProcesses([]types.Report{p1, twice}); !errors.Is(err, ErrBadProcesses) || !strings.Contains(err.Error(), "ran \"1\", which another process ran too") {
		t.Errorf("a spec two processes ran: %v", err)
	}
}

// The specs every process deferred are left over for a process of their
// own, with the claims of the others taken; Owners says who ran each case.
func TestLeftOver(t *testing.T) {
	deferred := DeferredPrefix + "the case needs more than the 1 device(s) this process holds of the rig"
	p1 := types.Report{SpecReports: types.SpecReports{
		procSpec("1", types.SpecStatePassed, ""), procSpec("2", types.SpecStateSkipped, claimed), procSpec("3", types.SpecStateSkipped, deferred),
	}}
	p2 := types.Report{SpecReports: types.SpecReports{
		procSpec("1", types.SpecStateSkipped, claimed), procSpec("2", types.SpecStatePassed, ""), procSpec("3", types.SpecStateSkipped, claimed),
	}}
	left, done := LeftOver([]types.Report{p1, p2})
	if len(left) != 1 || !strings.Contains(left[0], "3 @") || len(done) != 2 {
		t.Fatalf("left %q, done %q", left, done)
	}
	if _, err := MergeProcesses([]types.Report{p1, p2}); err == nil {
		t.Error("merged reports in which no process ran a deferred spec")
	}
	p3 := types.Report{SpecReports: types.SpecReports{
		procSpec("1", types.SpecStateSkipped, claimed), procSpec("2", types.SpecStateSkipped, claimed), procSpec("3", types.SpecStatePassed, ""),
	}}
	m, err := MergeProcesses([]types.Report{p1, p2, p3})
	if err != nil || len(m.SpecReports) != 3 || m.SpecReports[2].State != types.SpecStatePassed {
		t.Errorf("merged %v, %v", m.SpecReports, err)
	}
	if o := Owners([]types.Report{p1, p2, p3}); o["TC-PAY-001"] != 0 || o["TC-PAY-002"] != 1 || o["TC-PAY-003"] != 2 {
		t.Errorf("owners %v", o)
	}
}

// A run cut short keeps the specs no process reached as not run, so that
// its verdict is INTERRUPTED rather than no report at all.
func TestMergeProcessesInterrupted(t *testing.T) {
	p1 := types.Report{SpecReports: types.SpecReports{procSpec("1", types.SpecStatePassed, ""), procSpec("2", types.SpecStateSkipped, claimed)}}
	// Process 2 claimed spec 2 and was interrupted before it ran it.
	p2 := types.Report{SpecialSuiteFailureReasons: []string{"Interrupted by User"},
		SpecReports: types.SpecReports{procSpec("1", types.SpecStateSkipped, claimed), procSpec("2", types.SpecStateSkipped, claimed)}}
	m, err := MergeProcesses([]types.Report{p1, p2})
	if err != nil {
		t.Fatal(err)
	}
	c := Build(RunInfo{CaseCount: 2}, []types.Report{m})
	if c.Verdict != VerdictInterrupted || c.Passed != 1 || c.NotRun != 1 {
		t.Errorf("interrupted run: %s, %d passed, %d not run", c.Verdict, c.Passed, c.NotRun)
	}
}
