package sim_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator/sim"
	"github.com/spdlab/spdlab/emulator/sim/simtest"
)

func TestSwapBehindTheConnectionAnnouncedByColdReset(t *testing.T) {
	v := newFakeVPCD(t)
	first, second := simtest.NewCard(), simtest.NewCard()
	e := start(t, v, first, sim.Config{})
	c := v.accept()
	c.send([]byte{byte(sim.CtrlPowerOn)})
	if got := c.transmit(simtest.Select()); len(got) < 2 {
		t.Fatalf("SELECT to the first card: % X", got)
	}
	if err := e.Swap(second); err != nil {
		t.Fatal(err)
	}
	if on, off, _ := first.PowerEvents(); on != 1 || off != 1 {
		t.Fatalf("first card after the swap: %d power-ons, %d power-offs; want 1, 1", on, off)
	}
	// The host's cold reset, as pcscd passes SCARD_UNPOWER_CARD on.
	c.send([]byte{byte(sim.CtrlPowerOff)})
	c.send([]byte{byte(sim.CtrlPowerOn)})
	if got := c.transmit([]byte{byte(sim.CtrlATR)}); string(got) != string(e.ATR()) {
		t.Fatalf("ATR after the swap % X, want % X", got, e.ATR())
	}
	if on, off, _ := second.PowerEvents(); on != 1 || off != 0 {
		t.Fatalf("second card: %d power-ons, %d power-offs; want 1, 0", on, off)
	}
	if on, off, _ := first.PowerEvents(); on != 1 || off != 1 {
		t.Fatalf("first card got power events after it left: %d on, %d off", on, off)
	}
	if got := c.transmit(simtest.Select()); len(got) < 2 || got[len(got)-2] != 0x90 {
		t.Fatalf("SELECT to the second card: % X", got)
	}
	st := e.Status()
	if st.Connections != 1 || st.Swaps != 1 || !st.Powered {
		t.Fatalf("status %+v: want one connection, one swap, powered", st)
	}
}

func TestSwapThenCommandActivatesTheNewCard(t *testing.T) {
	v := newFakeVPCD(t)
	first, second := simtest.NewCard(), simtest.NewCard()
	e := start(t, v, first, sim.Config{})
	c := v.accept()
	c.send([]byte{byte(sim.CtrlPowerOn)})
	c.transmit(simtest.Select())
	if err := e.Swap(second); err != nil {
		t.Fatal(err)
	}
	// No power control after the swap: the command finds a card just
	// inserted and activates it, as a reader would.
	if got := c.transmit(simtest.Select()); len(got) < 2 || got[len(got)-2] != 0x90 {
		t.Fatalf("SELECT to the second card: % X", got)
	}
	if on, _, _ := second.PowerEvents(); on != 1 {
		t.Fatalf("second card powered up %d times, want 1", on)
	}
	if err := e.Swap(nil); err == nil {
		t.Fatal("Swap(nil) accepted")
	}
}

func TestSlotBusyNamesTheSlotAndItsHolder(t *testing.T) {
	v := newFakeVPCD(t)
	first := start(t, v, simtest.NewCard(), sim.Config{})
	v.accept()
	for !first.Status().Connected {
		time.Sleep(time.Millisecond)
	}
	second := sim.New(simtest.NewCard(), sim.Config{Address: v.addr(), SlotWait: 50 * time.Millisecond, Logger: quiet()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := second.Run(ctx)
	var busy *sim.SlotBusyError
	if !errors.As(err, &busy) || !errors.Is(err, sim.ErrSlotBusy) {
		t.Fatalf("second emulator on the slot: %v, want a SlotBusyError", err)
	}
	if busy.Address != v.addr() || busy.Holder.PID != os.Getpid() || busy.Waited < 50*time.Millisecond {
		t.Fatalf("busy error %+v: want address %s, holder pid %d, waited >= 50ms", busy, v.addr(), os.Getpid())
	}
	for _, want := range []string{v.addr(), fmt.Sprintf("pid %d", os.Getpid()), "waited", sim.SlotLockPath(v.addr())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %q", err, want)
		}
	}
}

func TestSlotLockFileStaysAndRecordsItsHolder(t *testing.T) {
	path, stop := holdFakeSlot(t)
	rec, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rec), fmt.Sprintf("pid=%d\n", os.Getpid())) || !strings.Contains(string(rec), "since=") {
		t.Fatalf("lock record while held: %q", rec)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("the lock file went away when its holder let go: %v", err)
	}
	if fi.Size() != 0 {
		t.Fatalf("lock record left behind: %d bytes", fi.Size())
	}
}

// An outside program that follows the README's protocol with flock(1)
// holds the slot; the emulator waits for it and names it.
func TestSlotHeldByAnOutsideProgram(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("flock(1) is not installed (util-linux)")
	}
	if _, err := os.Stat("/proc/locks"); err != nil {
		t.Skip("no /proc/locks here")
	}
	v := newFakeVPCD(t)
	path := sim.SlotLockPath(v.addr())
	cmd := exec.Command(flock, "--exclusive", path, "sh", "-c", "echo locked; sleep 30")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if _, err := out.Read(make([]byte, 16)); err != nil {
		t.Fatalf("flock(1) did not take the lock: %v", err)
	}
	e := sim.New(simtest.NewCard(), sim.Config{Address: v.addr(), SlotWait: 100 * time.Millisecond, Logger: quiet()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = e.Run(ctx)
	var busy *sim.SlotBusyError
	if !errors.As(err, &busy) || busy.Holder.PID != cmd.Process.Pid || !strings.Contains(busy.Holder.Command, "flock") {
		t.Fatalf("Run while flock(1) holds the slot: %v, want a SlotBusyError naming pid %d (flock)", err, cmd.Process.Pid)
	}
}

// A holder that ended without letting go of the slot (killed, or exited
// with its card still in) leaves its record in the lock file, and the
// kernel closed its card's connection a moment ago: the next emulator
// keeps its card out for the removal gap before it connects, so that pcscd
// sees that card leave and the new one arrive, and says so in Status.
func TestSlotLeftWithoutLettingGoKeepsTheRemovalGap(t *testing.T) {
	v := newFakeVPCD(t)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skipf("cannot run true(1): %v", err)
	}
	rec := fmt.Sprintf("pid=%d\nsince=%s\ncommand=true\n", gone.Process.Pid, time.Now().UTC().Format(time.RFC3339Nano))
	if err := os.WriteFile(sim.SlotLockPath(v.addr()), []byte(rec), 0o666); err != nil {
		t.Fatal(err)
	}
	e := sim.New(simtest.NewCard(), sim.Config{Address: v.addr(), RemovalGap: 10 * time.Second, Logger: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	want := fmt.Sprintf("removal gap after pid %d", gone.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for st := e.Status(); !strings.Contains(st.Waiting, want); st = e.Status() {
		if st.Connections > 0 || time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("status %+v: want the emulator out of the slot, waiting %q", st, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = v.ln.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if c, err := v.ln.Accept(); err == nil {
		c.Close()
		t.Fatal("the emulator connected within the removal gap")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := e.Status(); st.Connections != 0 {
		t.Fatalf("status %+v after Run: want no connection made", st)
	}
}

// A holder that ended without letting go long before (its lock file, which
// holders touch while they hold it, was last touched an hour ago) costs
// the next emulator no wait: pcscd has long seen its card leave.
func TestSlotLeftLongAgoCostsNoWait(t *testing.T) {
	v := newFakeVPCD(t)
	path := sim.SlotLockPath(v.addr())
	rec := "pid=1\nsince=2000-01-01T00:00:00Z\ncommand=gone\n"
	if err := os.WriteFile(path, []byte(rec), 0o666); err != nil {
		t.Fatal(err)
	}
	then := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, then, then); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	var mu sync.Mutex
	e := sim.New(simtest.NewCard(), sim.Config{Address: v.addr(), RemovalGap: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &log}, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	c := v.accept()
	c.transmit([]byte{0x04})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(log.String(), "removal gap") {
		t.Fatalf("the emulator waited a removal gap after a holder that ended an hour ago:\n%s", log.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// While an emulator holds a slot it touches the lock file, so that a
// claimant after it can tell how long ago it was last there.
func TestSlotHolderTouchesTheLockFile(t *testing.T) {
	path, stop := holdFakeSlot(t)
	then := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, then, then); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.ModTime().After(then.Add(time.Minute)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lock file's time is still %v: the holder does not touch it", fi.ModTime())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// holdFakeSlot runs an emulator that takes the slot of a new fake vpcd,
// waits until the fake has its connection, and returns the slot's lock
// file and a stop that ends the emulator and returns Run's error.
func holdFakeSlot(t *testing.T) (path string, stop func() error) {
	t.Helper()
	v := newFakeVPCD(t)
	e := sim.New(simtest.NewCard(), sim.Config{Address: v.addr(), RemovalGap: 10 * time.Millisecond, Logger: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	v.accept()
	return sim.SlotLockPath(v.addr()), func() error {
		cancel()
		return <-done
	}
}
