package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// demoTrace runs the demo on the reference device with args and returns
// the trace it recorded.
func demoTrace(t *testing.T, name string, args ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	code, out, errOut := spdlab(t, append([]string{"demo", "--trace", path}, args...)...)
	if code != 0 || !strings.Contains(out, "\ndone\n") {
		t.Fatalf("demo %v: exit %d\n%s%s", args, code, out, errOut)
	}
	// The user sees the presented code paid to the merchant at the issuer
	// and the medium stored on the device.
	for _, want := range []string{"Presented a payment code for EUR 3.20", "payee MERCHANT-0042 credited EUR 3.20 (GET /v1/payees)",
		`"cafe-lab-order" shown until`, "into 4 uses at the issuer's signed rate of EUR 2.50 a use (C13)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo %v: no %q in\n%s", args, want, out)
		}
	}
	return path
}

// The same seed records the same trace byte for byte; another seed does
// not (the device keys differ).
func TestDemoSeedIsRepeatable(t *testing.T) {
	a, err := os.ReadFile(demoTrace(t, "a.pcapng", "--seed", "7"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(demoTrace(t, "b.pcapng", "--seed", "7"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two demo runs with --seed 7 recorded different traces (%d and %d bytes)", len(a), len(b))
	}
	c, err := os.ReadFile(demoTrace(t, "c.pcapng", "--seed", "8"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Fatal("--seed 7 and --seed 8 recorded the same trace")
	}
}

// The demo replays its own trace: the run replaying it has another clock
// and so other times and issuer signatures in its commands, which differ
// by design.
func TestDemoReplaysItsOwnTrace(t *testing.T) {
	for _, rec := range [][]string{{"--seed", "1"}, nil} {
		path := demoTrace(t, "demo.pcapng", rec...)
		code, out, errOut := spdlab(t, "demo", "--dut", "replay:"+path)
		if code != 0 || !strings.Contains(out, "\ndone\n") {
			t.Errorf("demo %v replaying its trace: exit %d\n%s%s", rec, code, out, errOut)
		}
	}
}

// A trace whose run differs from this one in a deterministic field fails
// the replay at that exchange, naming the command and the field.
func TestDemoReplayNamesTheFirstDifference(t *testing.T) {
	path := demoTrace(t, "demo.pcapng", "--seed", "1")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The first payment's amount, EUR 12.50 (9F02, eight bytes, followed
	// by the currency 5F2A), becomes EUR 13.50 in the recorded command: a
	// device that was asked for another amount in the recorded run.
	from := []byte{0x9F, 0x02, 0x08, 0, 0, 0, 0, 0, 0, 0x04, 0xE2, 0x5F, 0x2A}
	to := []byte{0x9F, 0x02, 0x08, 0, 0, 0, 0, 0, 0, 0x05, 0x46, 0x5F, 0x2A}
	if !bytes.Contains(b, from) {
		t.Fatal("the trace holds no payment of EUR 12.50")
	}
	changed := filepath.Join(t.TempDir(), "changed.pcapng")
	if err := os.WriteFile(changed, bytes.Replace(b, from, to, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := spdlab(t, "demo", "--dut", "replay:"+changed)
	want := "operation 10 (PAY) differs from the recording: 9F02 is 00000000000004E2, the trace has 0000000000000546"
	if code != 1 || !strings.Contains(errOut, want) || strings.Contains(out, "\ndone\n") {
		t.Errorf("replay of a changed trace: exit %d, want 1 with %q\n%s%s", code, want, out, errOut)
	}
}
