//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
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
