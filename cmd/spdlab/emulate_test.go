//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spdlab/spdlab/emulator/sim"
)

// `emulate sim --vpcd` on vpcd's second slot while another process holds
// it: the message names the slot tried, its reader, the holder and the
// wait, and suggests the other slot, not the one just tried.
func TestEmulateSimBusySlotNamesTheSlotTried(t *testing.T) {
	const addr = "127.0.0.1:35964"
	f, err := os.OpenFile(sim.SlotLockPath(addr), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Skipf("the slot is in use right now (%v); this test needs it free to hold it itself", err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, &env{stdout: &out, stderr: &out}, []string{"emulate", "sim", "--vpcd", addr, "--slot-wait", "100ms"})
	if code == 0 {
		t.Fatalf("emulate sim on a held slot exited 0: %s", out.String())
	}
	for _, want := range []string{
		`PC/SC reader "Virtual PCD 00 01"`,
		"vpcd slot " + addr + ` (reader "Virtual PCD 00 01") is held by pid ` + fmt.Sprint(os.Getpid()),
		`other slot is --vpcd 127.0.0.1:35963 (reader "Virtual PCD 00 00")`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, out.String())
		}
	}
	if !regexp.MustCompile(`waited 1\d\dms`).MatchString(out.String()) {
		t.Errorf("output does not say it waited about 100ms:\n%s", out.String())
	}
	if strings.Contains(out.String(), "pcscd running") {
		t.Errorf("blames pcscd for a busy slot:\n%s", out.String())
	}
}

// Ctrl-C while emulate sim waits for a busy slot: it says where the
// device's state is and how to go on with it, and the next run opens that
// state (here it waits for the slot again instead of refusing the state).
func TestEmulateSimCtrlCSaysWhereTheStateIs(t *testing.T) {
	const addr = "127.0.0.1:35964"
	// The slot's lock file lives in the temporary directory: a private one
	// keeps this test clear of emulators others run on the machine (it
	// never reaches vpcd: it holds the lock itself throughout).
	t.Setenv("TMPDIR", t.TempDir())
	f, err := os.OpenFile(sim.SlotLockPath(addr), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Skipf("the slot is in use right now (%v); this test needs it free to hold it itself", err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	state := filepath.Join(t.TempDir(), "sim.state")
	interrupted := func(args ...string) string {
		t.Helper()
		var out syncBuffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, &env{stdout: &out, stderr: &out}, append([]string{"emulate", "sim", "--vpcd", addr}, args...))
		}()
		for i := 0; i < 500 && !strings.Contains(out.String(), "Ctrl-C stops"); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		cancel() // as Ctrl-C does: main's context ends on SIGINT
		if code := <-done; code != 0 {
			t.Fatalf("emulate sim %v stopped during the slot wait: exit %d\n%s", args, code, out.String())
		}
		return out.String()
	}
	out := interrupted("--state", state, "--slot-wait", "1m")
	for _, want := range []string{
		"the device's state is saved in " + state + " and " + state + ".log",
		"continue with the same device: spdlab emulate sim --vpcd " + addr + " --state " + state + " --slot-wait 1m\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("after Ctrl-C, no %q:\n%s", want, out)
		}
	}
	for _, p := range []string{state, state + ".log"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("after Ctrl-C: %v", err)
		}
	}
	var again syncBuffer
	code := run(context.Background(), &env{stdout: &again, stderr: &again}, []string{"emulate", "sim", "--vpcd", addr, "--state", state, "--slot-wait", "100ms"})
	if code == 0 || !strings.Contains(again.String(), "is held by pid") || strings.Contains(again.String(), "missing") {
		t.Errorf("the next emulate sim on the saved state: exit %d\n%s", code, again.String())
	}
	if out := interrupted("--slot-wait", "1m"); !strings.Contains(out, "kept in memory only and is gone (--state FILE keeps it across runs)") {
		t.Errorf("after Ctrl-C without --state:\n%s", out)
	}
}
