package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/formatter"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/dut"
	"github.com/spdlab/spdlab/rigs/trace"
	"github.com/spdlab/spdlab/scenarios"
)

// certify --procs N runs one suite in N processes of this program on one
// station, each with its own devices, and joins what they report into the
// one report a serial run makes (reports.MergeProcesses): the same cases
// in the same order with the same outcomes, evidence and transcripts; one
// trace, one certificate. The cases are handed out as processes get free
// (reports.SpecClaims), so the slow cases spread over the processes.
//
// A process of a run is `spdlab certify` started by the run with
// envProcess set to "K/N SEED SHARE CLAIMS": it is process K of N, orders
// the specs with SEED as every process of the run does, holds at most
// SHARE devices of a rig the processes share (0: no limit), claims specs
// in the directory CLAIMS, writes its Ginkgo report and trace to its own
// --out,
// and prints one JSON object a line on standard output for the run's
// progress (procEvent); what else it prints goes to its standard error,
// which the run shows when the process fails. It signs nothing: the run
// does.

// envProcess marks a process started by certify --procs.
const envProcess = "SPDLAB_CERTIFY_PROCESS"

// maxProcs bounds --procs.
const maxProcs = 64

// autoProcs is how many processes an emulated DUT gets by default: one a
// CPU, at most 4 (the cases wait on links and timers as much as they
// compute, but each process also builds its own devices and keys).
func autoProcs() int { return min(runtime.NumCPU(), 4) }

// certifyProcs decides how many processes run the cases: asked, or the
// default for the DUT when asked is 0. Only emulated DUTs run in
// parallel: each process makes its own devices. The samples of a physical
// DUT (and a replayed trace) are one rig that the cases take in turn, and
// pcsc-emu's processes share the two vpcd slots of pcscd.
func certifyProcs(asked int, specs []string, emulated bool) (int, error) {
	name := strings.Join(specs, " + ")
	switch {
	case asked < 0 || asked > maxProcs:
		return 0, usageErrorf("--procs %d: want 1 to %d processes, or 0 for the DUT's default", asked, maxProcs)
	case !emulated && asked > 1:
		return 0, usageErrorf("--procs %d: %s is a physical device (or a recording): its samples are one rig and the cases take it in turn; run it with --procs 1", asked, name)
	case !emulated:
		return 1, nil
	case strings.HasPrefix(specs[0], "pcsc-emu") && asked > dut.PCSCEmuSlots:
		return 0, usageErrorf("--procs %d: pcsc-emu's processes share the %d vpcd slots of pcscd: at most --procs %d", asked, dut.PCSCEmuSlots, dut.PCSCEmuSlots)
	case strings.HasPrefix(specs[0], "pcsc-emu") && asked == 0:
		return 1, nil
	case asked == 0:
		return autoProcs(), nil
	}
	return asked, nil
}

// certifyProcess is what envProcess tells a process of a run.
type certifyProcess struct {
	Index, Count int
	Seed         int64
	Share        int
	Claims       string
}

func (p certifyProcess) env() string {
	return fmt.Sprintf("%s=%d/%d %d %d %s", envProcess, p.Index, p.Count, p.Seed, p.Share, p.Claims)
}

// processFromEnv reads envProcess, nil when it is unset, and unsets it so
// that nothing this process starts takes it for its own.
func processFromEnv() (*certifyProcess, error) {
	v, ok := os.LookupEnv(envProcess)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(envProcess)
	f := strings.SplitN(v, " ", 4)
	if len(f) != 4 {
		return nil, fmt.Errorf("%s=%q: want \"K/N SEED SHARE DIR\"", envProcess, v)
	}
	k, n, err := reports.ParseProcess(f[0])
	if err != nil {
		return nil, err
	}
	seed, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: seed %q: %w", envProcess, f[1], err)
	}
	share, err := strconv.Atoi(f[2])
	if err != nil || share < 0 {
		return nil, fmt.Errorf("%s: share %q is not a number of devices", envProcess, f[2])
	}
	return &certifyProcess{Index: k, Count: n, Seed: seed, Share: share, Claims: f[3]}, nil
}

// procEvent is one line a process prints for the run's progress: the
// number of cases about to run, or a case it ran.
type procEvent struct {
	Total int               `json:"total,omitempty"`
	Spec  *types.SpecReport `json:"spec,omitempty"`
}

// claimSpecs makes the suite about to run in process p run only the specs
// p claims first; when the processes share a rig, the Serial specs are
// left to the process that runs after them with the whole rig. Register it before any other BeforeEach, so that the
// process that claims a spec is the one that decides anything else about
// it (another shard's, not applicable).
func claimSpecs(p *certifyProcess) {
	claims := reports.NewSpecClaims(p.Claims, p.Index)
	ginkgo.BeforeEach(func() {
		s := ginkgo.CurrentSpecReport()
		if p.Share > 0 && s.IsSerial {
			// Serial: the case power-cycles or tears the rig, which the
			// processes share: it runs in the process that has the rig
			// alone, after them.
			ginkgo.Skip(reports.DeferredPrefix + "a Serial case runs alone on the rig the processes share")
		}
		ok, owner, err := claims.Take(reports.ClaimKey(s))
		if err != nil {
			ginkgo.Fail(err.Error())
		}
		if !ok {
			ginkgo.Skip(reports.OtherProcessReason(owner))
		}
	})
}

// reportProgress makes the suite about to run print procEvents to w, and
// silences Ginkgo's console output; it returns rc adjusted.
func reportProgress(w io.Writer, rc types.ReporterConfig) types.ReporterConfig {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	emit := func(ev procEvent) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(ev)
	}
	ginkgo.ReportBeforeSuite(func(r ginkgo.Report) { emit(procEvent{Total: r.PreRunStats.SpecsThatWillRun}) })
	ginkgo.ReportAfterEach(func(s ginkgo.SpecReport) {
		if s.LeafNodeType != types.NodeTypeIt || strings.HasPrefix(s.Failure.Message, reports.OtherProcessPrefix) ||
			strings.HasPrefix(s.Failure.Message, reports.DeferredPrefix) {
			return
		}
		// The progress line needs the outcome, not the evidence.
		s.ReportEntries, s.SpecEvents, s.ProgressReports = nil, nil, nil
		s.CapturedGinkgoWriterOutput, s.CapturedStdOutErr = "", ""
		emit(procEvent{Spec: &s})
	})
	// The run prints the end of the joined report; this node stands for
	// the serial run's own, so that the joined report has the same nodes.
	ginkgo.ReportAfterSuite("progress", func(ginkgo.Report) {})
	formatter.ColorableStdOut = io.Discard
	rc.NoColor = true
	rc.Succinct = true
	return rc
}

// certifyRun is what the processes of a run are given, from certify's
// flags.
type certifyRun struct {
	duts                          []string
	icsPath, focus, labels, shard string
	against                       string
	timeout                       time.Duration
	trace                         bool
}

// args are the certify arguments of a process writing into dir.
func (r certifyRun) args(dir string) []string {
	a := []string{"certify", "--procs", "1", "--out", dir, "--timeout", r.timeout.String()}
	for _, d := range r.duts {
		a = append(a, "--dut", d)
	}
	add := func(flag, v string) {
		if v != "" {
			a = append(a, flag, v)
		}
	}
	add("--ics", r.icsPath)
	add("--focus", r.focus)
	add("--label-filter", r.labels)
	add("--shard", r.shard)
	add("--against", r.against)
	if r.trace {
		a = append(a, "--trace", filepath.Join(dir, reports.FileTrace))
	} else {
		a = append(a, "--trace", "off")
	}
	return a
}

// procResult is what a run of processes leaves: the joined Ginkgo
// report, and the divergences every process found, in the report's
// order of cases.
type procResult struct {
	report      types.Report
	divergences []scenarios.Divergence
}

// rigShare is how many devices each of n processes may hold of the rig
// they share (0: each has its own devices).
func rigShare(specs []string, n int) int {
	switch {
	case n > 1 && strings.HasPrefix(specs[0], "pcsc-emu"):
		return max(dut.PCSCEmuSlots/n, 1)
	case n > 1:
		return sharedRigForTest
	}
	return 0
}

// sharedRigForTest, when above 0, makes every parallel run share a rig of
// this many devices a process, as pcsc-emu's do: only the tests set it,
// to run that path on ref.
var sharedRigForTest = 0

// procRun is one process of a run as runProcesses starts it.
type procRun struct {
	certifyProcess
	dir    string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// runProcesses runs the suite in n processes of this program, shows their
// progress on e.stdout, appends their traces to traceOut (nil: no trace)
// in the order of the cases, and returns the joined report. When the
// processes share a rig (pcsc-emu), each holds its share of the devices,
// and the cases that need more run afterwards in one more process that
// holds the whole rig.
func runProcesses(ctx context.Context, e *env, n int, run certifyRun, traceOut io.Writer) (procResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return procResult{}, fmt.Errorf("--procs: %w", err)
	}
	// Returning early stops the processes already started.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work, err := os.MkdirTemp("", "spdlab-certify-")
	if err != nil {
		return procResult{}, err
	}
	defer os.RemoveAll(work)
	claims := filepath.Join(work, "claims")
	if err := os.Mkdir(claims, 0o755); err != nil {
		return procResult{}, err
	}
	seed := time.Now().Unix()
	share := rigShare(run.duts, n)
	if share > 0 {
		fmt.Fprintf(e.stdout, "%d processes sharing the rig, %d device(s) each; cases that need more run after them in one process (--procs %d)\n", n, share, n)
	} else {
		fmt.Fprintf(e.stdout, "%d processes, each with its own devices (--procs %d)\n", n, n)
	}

	p := newProgress(e.stdout, colorWanted(e.stdout))
	var begin sync.Once
	// phase runs procs to their end.
	phase := func(procs []*procRun) error {
		for _, pr := range procs {
			if err := os.Mkdir(pr.dir, 0o755); err != nil {
				return err
			}
			pr.done = make(chan error, 1)
			pr.cmd = exec.CommandContext(ctx, exe, run.args(pr.dir)...)
			pr.cmd.Env = append(os.Environ(), pr.env())
			pr.cmd.Stderr = &pr.stderr
			// An interrupted run lets each process write what it has.
			pr.cmd.Cancel = func() error { return pr.cmd.Process.Signal(os.Interrupt) }
			pr.cmd.WaitDelay = 30 * time.Second
			out, err := pr.cmd.StdoutPipe()
			if err != nil {
				return err
			}
			if err := pr.cmd.Start(); err != nil {
				return fmt.Errorf("--procs: starting process %d: %w", pr.Index, err)
			}
			go func() {
				sc := bufio.NewScanner(out)
				sc.Buffer(nil, 16<<20)
				for sc.Scan() {
					var ev procEvent
					if json.Unmarshal(sc.Bytes(), &ev) != nil {
						fmt.Fprintf(e.stdout, "process %d: %s\n", pr.Index, sc.Bytes())
						continue
					}
					if ev.Total > 0 {
						begin.Do(func() { p.begin(ev.Total) })
					}
					if ev.Spec != nil {
						p.spec(*ev.Spec)
					}
				}
				pr.done <- pr.cmd.Wait()
			}()
		}
		var failed []string
		for _, pr := range procs {
			if err := <-pr.done; err != nil {
				msg := strings.TrimSpace(pr.stderr.String())
				if len(msg) > 2000 {
					msg = "..." + msg[len(msg)-2000:]
				}
				failed = append(failed, fmt.Sprintf("process %d: %v\n%s", pr.Index, err, msg))
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("--procs: %s", strings.Join(failed, "\n"))
		}
		return nil
	}
	load := func(procs []*procRun) ([]types.Report, error) {
		var rs []types.Report
		for _, pr := range procs {
			r, err := reports.LoadGinkgoJSON(filepath.Join(pr.dir, reports.FileGinkgo))
			if err != nil {
				return nil, fmt.Errorf("--procs: process %d: %w", pr.Index, err)
			}
			if len(r) != 1 {
				return nil, fmt.Errorf("--procs: process %d reported %d suites, want 1", pr.Index, len(r))
			}
			rs = append(rs, r[0])
		}
		return rs, nil
	}

	var procs []*procRun
	for k := 1; k <= n; k++ {
		procs = append(procs, &procRun{certifyProcess: certifyProcess{Index: k, Count: n, Seed: seed, Share: share, Claims: claims},
			dir: filepath.Join(work, fmt.Sprintf("process-%d", k))})
	}
	if err := phase(procs); err != nil {
		return procResult{}, err
	}
	rs, err := load(procs)
	if err != nil {
		return procResult{}, err
	}
	if left, done := reports.LeftOver(rs); share > 0 && len(left) > 0 && !reports.Stopped(rs) {
		// The deferred cases, in a process of their own that holds the
		// whole rig: it may claim them alone.
		last := filepath.Join(work, "claims-last")
		if err := os.Mkdir(last, 0o755); err != nil {
			return procResult{}, err
		}
		taken := reports.NewSpecClaims(last, 0)
		for _, k := range done {
			if _, _, err := taken.Take(k); err != nil {
				return procResult{}, err
			}
		}
		fmt.Fprintf(e.stdout, "%d case(s) need more of the rig than a process holds: process %d runs them, holding the whole rig\n", len(left), n+1)
		pr := &procRun{certifyProcess: certifyProcess{Index: n + 1, Count: n + 1, Seed: seed, Claims: last},
			dir: filepath.Join(work, fmt.Sprintf("process-%d", n+1))}
		if err := phase([]*procRun{pr}); err != nil {
			return procResult{}, err
		}
		r, err := load([]*procRun{pr})
		if err != nil {
			return procResult{}, err
		}
		procs, rs = append(procs, pr), append(rs, r...)
	}
	var res procResult
	if res.report, err = reports.MergeProcesses(rs); err != nil {
		return procResult{}, err
	}
	if s := scenarios.TearPointsSummary(res.report); s != "" {
		fmt.Fprintln(e.stdout, s)
	}
	p.end(res.report)

	rank := caseRank(res.report)
	// A process that deferred a case may have opened a device for it
	// first: only what the process that ran a case recorded is the case's.
	owners := reports.Owners(rs)
	if run.against != "" {
		for i, pr := range procs {
			b, err := os.ReadFile(filepath.Join(pr.dir, reports.FileDivergences))
			if err != nil {
				return procResult{}, fmt.Errorf("--procs: %w", err)
			}
			var ds []scenarios.Divergence
			if err := json.Unmarshal(b, &ds); err != nil {
				return procResult{}, fmt.Errorf("--procs: %s: %w", pr.dir, err)
			}
			for _, d := range ds {
				if o, ok := owners[d.Case]; !ok || o == i {
					res.divergences = append(res.divergences, d)
				}
			}
		}
		slices.SortStableFunc(res.divergences, func(a, b scenarios.Divergence) int { return rank(a.Case) - rank(b.Case) })
	}
	if traceOut != nil {
		var sections []trace.Section
		for i, pr := range procs {
			b, err := os.ReadFile(filepath.Join(pr.dir, reports.FileTrace))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return procResult{}, fmt.Errorf("--procs: %w", err)
			}
			s, err := trace.Sections(b)
			if err != nil {
				return procResult{}, fmt.Errorf("--procs: %s: %w", pr.dir, err)
			}
			for _, x := range s {
				if o, ok := owners[x.Case]; !ok || o == i {
					sections = append(sections, x)
				}
			}
		}
		// Each case's links in the order the run has its cases, as a
		// serial run writes them.
		slices.SortStableFunc(sections, func(a, b trace.Section) int { return rank(a.Case) - rank(b.Case) })
		for _, s := range sections {
			if _, err := traceOut.Write(s.Bytes); err != nil {
				return procResult{}, fmt.Errorf("trace: %w", err)
			}
		}
	}
	return res, nil
}
