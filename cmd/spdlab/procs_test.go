package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/trace"
)

// envCLI makes this test binary run as spdlab with its arguments, for the
// tests that run spdlab as a program (a suite runs once per process).
// envSharedRig makes it share the rig of a parallel run as pcsc-emu's
// processes do, one device a process (sharedRigForTest).
const (
	envCLI       = "SPDLAB_TEST_AS_CLI"
	envSharedRig = "SPDLAB_TEST_SHARED_RIG"
)

// TestMain runs this test binary as spdlab when it is started as a process
// of certify --procs (which starts os.Executable) or by certifyCLI.
func TestMain(m *testing.M) {
	if os.Getenv(envSharedRig) != "" {
		sharedRigForTest = 1
	}
	if os.Getenv(envProcess) != "" || os.Getenv(envCLI) != "" {
		os.Unsetenv(envCLI)
		os.Exit(run(context.Background(), &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
	}
	code := m.Run()
	if parallelRef.dir != "" {
		os.RemoveAll(parallelRef.dir)
	}
	os.Exit(code)
}

// parallelRef is one run of `certify --dut ref --procs 2` on the whole
// suite (on the payment and application cases under the race detector),
// made once for the two tests that look at such a run, which each made
// their own before (a whole run of ref takes about 9 s of CPU):
// TestCertifyProcsWholeSuite compares it with a serial run, and
// TestDissectorNamesEveryCommandWholeSuite dissects its trace. TestMain
// removes its directory.
var parallelRef struct {
	once sync.Once
	dir  string // holds the lab key and the run's --out, out
	run  cliRun
	err  error
}

// parallelRefRun returns the --out directory and the result of the
// parallelRef run, made by the first caller; ok is false, with an error
// reported on t, when the run could not be made (a run that fails is the
// callers' to judge).
func parallelRefRun(t *testing.T) (out string, r cliRun, ok bool) {
	t.Helper()
	parallelRef.once.Do(func() {
		if parallelRef.dir, parallelRef.err = os.MkdirTemp("", "spdlab-procs-test-"); parallelRef.err != nil {
			return
		}
		key := filepath.Join(parallelRef.dir, "lab.pem")
		if _, parallelRef.err = reports.InitLab(key, "procs test lab"); parallelRef.err != nil {
			return
		}
		args := []string{"--dut", "ref", "--procs", "2", "--key", key}
		if raceDetector {
			args = append(args, raceProcsFilter...)
		}
		parallelRef.run = certifyCLI(t, filepath.Join(parallelRef.dir, "out"), nil, args...)
	})
	if parallelRef.err != nil {
		t.Errorf("the --procs 2 run of ref: %v", parallelRef.err)
		return "", cliRun{}, false
	}
	return filepath.Join(parallelRef.dir, "out"), parallelRef.run, true
}

// raceProcsFilter narrows the runs of ref of TestCertifyProcsWholeSuite
// under the race detector, where the whole suite takes minutes: the
// payment and application cases are enough to race the run's goroutines,
// and a filtered run is a partial one.
var raceProcsFilter = []string{"--label-filter", "/^TC-(PAY|APP)-/"}

// cliRun is one spdlab run as a program.
type cliRun struct {
	code           int
	stdout, stderr string
	cert           reports.Certificate
	traceCases     map[string]int // sections of the trace per case
}

// certifyCLI runs spdlab certify with args as a program, writing into out.
func certifyCLI(t *testing.T, out string, env []string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"certify", "--out", out}, args...)...)
	cmd.Env = append(append(os.Environ(), envCLI+"=1"), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := cliRun{stdout: o.String(), stderr: e.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Errorf("certify %v: %v", args, err)
		return r
	}
	if r.cert, err = reports.ReadCertificate(out); err != nil {
		t.Errorf("certify %v (exit %d): %v\n%s\n%s", args, r.code, err, r.stdout, r.stderr)
		return r
	}
	b, err := os.ReadFile(filepath.Join(out, "trace.pcapng"))
	if err != nil {
		t.Error(err)
		return r
	}
	sections, err := trace.Sections(b)
	if err != nil {
		t.Errorf("certify %v: trace: %v", args, err)
	}
	r.traceCases = map[string]int{}
	for _, s := range sections {
		r.traceCases[s.Case]++
	}
	return r
}

// outcomes are a certificate's cases as "ID verdict", with the number
// of steps of each transcript, sorted.
func outcomes(c reports.Certificate) []string {
	var o []string
	for _, cs := range c.Cases {
		b, _ := json.Marshal(cs)
		var v struct {
			Transcript []json.RawMessage `json:"transcript"`
		}
		json.Unmarshal(b, &v)
		o = append(o, cs.ID+" "+string(cs.Verdict)+" "+strings.Repeat("|", len(v.Transcript)))
	}
	slices.Sort(o)
	return o
}

// A run of ref in two processes has the verdict, cases, outcomes,
// transcripts and trace of a serial run; a device that fails one case
// (a mutant) fails the whole run whichever process ran the case.
func TestCertifyProcsWholeSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite twice")
	}
	// Side by side with the dissector's test, which waits for the same
	// --procs 2 run and then spends seconds in tshark.
	t.Parallel()
	dir := t.TempDir()
	key := filepath.Join(dir, "lab.pem")
	if code, _, stderr := spdlab(t, "labkey", "init", "--key", key, "--name", "procs test lab"); code != 0 {
		t.Fatal(stderr)
	}
	whole := reports.VerdictCertified
	var part []string
	if raceDetector {
		whole, part = reports.VerdictPartial, raceProcsFilter
	}
	runs := map[string][]string{
		"serial": append([]string{"--dut", "ref", "--procs", "1"}, part...),
		// The --procs 2 run is parallelRef's, shared with the dissector's
		// test.
		"parallel": nil,
		// stale-result answers a PAY replayed after a tear with the old
		// result: TC-PAY-006 fails on it (scripts/mutant-killers.txt), among
		// the other payment cases, which pass.
		"mutant": {"--dut", "faulty:stale-result", "--procs", "2", "--label-filter", "/^TC-PAY-/"},
		// The processes share a rig of one device each, as pcsc-emu's
		// do: the cases that need two run after them, in a third.
		"shared": append([]string{"--dut", "ref", "--procs", "2"}, part...),
	}
	got := map[string]cliRun{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, args := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var env []string
			if name == "shared" {
				env = []string{envSharedRig + "=1"}
			}
			var r cliRun
			if name == "parallel" {
				var ok bool
				if _, r, ok = parallelRefRun(t); !ok {
					return
				}
			} else {
				r = certifyCLI(t, filepath.Join(dir, name), env, append(args, "--key", key)...)
			}
			mu.Lock()
			got[name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	serial, parallel, mutant := got["serial"], got["parallel"], got["mutant"]
	if serial.cert.Verdict != whole {
		t.Fatalf("serial run of ref: exit %d, %s\n%s", serial.code, serial.cert.Verdict, serial.stderr)
	}
	if parallel.code != serial.code || parallel.cert.Verdict != serial.cert.Verdict {
		t.Errorf("--procs 2 run of ref: exit %d, %s; --procs 1: %s\n%s", parallel.code, parallel.cert.Verdict, serial.cert.Verdict, parallel.stderr)
	}
	if !strings.Contains(parallel.stdout, "2 processes") {
		t.Errorf("--procs 2 does not say it runs 2 processes:\n%s", parallel.stdout)
	}
	if a, b := outcomes(serial.cert), outcomes(parallel.cert); !slices.Equal(a, b) {
		t.Errorf("--procs 2 cases differ from --procs 1's:\n%v\n%v", b, a)
	}
	if serial.cert.Passed != parallel.cert.Passed || serial.cert.NotApplic != parallel.cert.NotApplic || serial.cert.Run.CaseCount != parallel.cert.Run.CaseCount {
		t.Errorf("--procs 2 counts %d passed, %d not applicable of %d; --procs 1 %d, %d of %d", parallel.cert.Passed, parallel.cert.NotApplic,
			parallel.cert.Run.CaseCount, serial.cert.Passed, serial.cert.NotApplic, serial.cert.Run.CaseCount)
	}
	if len(serial.traceCases) < 20 || !mapsEqual(serial.traceCases, parallel.traceCases) {
		t.Errorf("trace sections per case: --procs 2 %v, --procs 1 %v", parallel.traceCases, serial.traceCases)
	}
	shared := got["shared"]
	if shared.code != serial.code || shared.cert.Verdict != serial.cert.Verdict || !slices.Equal(outcomes(shared.cert), outcomes(serial.cert)) ||
		!mapsEqual(serial.traceCases, shared.traceCases) {
		t.Errorf("--procs 2 sharing a rig of one device a process: exit %d, %s, cases %v, trace sections %v; --procs 1: %s, %v, %v\n%s",
			shared.code, shared.cert.Verdict, outcomes(shared.cert), shared.traceCases, serial.cert.Verdict, outcomes(serial.cert), serial.traceCases, shared.stderr)
	}
	if !strings.Contains(shared.stdout, "2 processes sharing the rig, 1 device(s) each") {
		t.Errorf("--procs 2 sharing a rig does not say so:\n%s", shared.stdout)
	}

	if mutant.code != 1 || mutant.cert.Verdict != reports.VerdictNotCertified {
		t.Errorf("--procs 2 on faulty:stale-result: exit %d, %s; want exit 1, %s", mutant.code, mutant.cert.Verdict, reports.VerdictNotCertified)
	}
	failed := map[string]bool{}
	for _, cs := range mutant.cert.Cases {
		if cs.Verdict == reports.Failed {
			failed[cs.ID] = true
		}
	}
	if !failed["TC-PAY-006"] || mutant.cert.Passed < 5 {
		t.Errorf("--procs 2 on faulty:stale-result: failed %v, %d passed", failed, mutant.cert.Passed)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// --procs above 1 is refused, as a usage error, for a DUT whose cases
// cannot run side by side.
func TestCertifyProcsRefused(t *testing.T) {
	out := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--dut", "serial:/dev/null", "--procs", "2"}, "--procs 2: serial:/dev/null is a physical device"},
		{[]string{"--dut", "replay:x.pcapng", "--procs", "3"}, "--procs 3: replay:x.pcapng is a physical device (or a recording)"},
		{[]string{"--dut", "pcsc-emu", "--procs", "3"}, "pcsc-emu's processes share the 2 vpcd slots of pcscd: at most --procs 2"},
		{[]string{"--dut", "ref", "--procs", "-1"}, "--procs -1: want 1 to 64 processes"},
	} {
		args := append([]string{"certify", "--out", out, "--ics", "../../scenarios/ics/reference.yaml"}, c.args...)
		code, _, stderr := spdlab(t, args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

// mustBeNamedWholeSuite fails a test that calls wholeSuite without WholeSuite
// in its name: make test selects those tests by name for its run without the
// race detector, so a test not so named would run nowhere.
func mustBeNamedWholeSuite(t *testing.T) {
	t.Helper()
	if !strings.Contains(strings.SplitN(t.Name(), "/", 2)[0], "WholeSuite") {
		t.Fatalf("%s runs the whole suite (wholeSuite) but its name lacks WholeSuite, so make test would never run it", t.Name())
	}
}
