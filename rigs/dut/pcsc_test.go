//go:build cgo

package dut

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spdlab/spdlab/emulator/sim"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/pcsc"
)

// slotTestWait bounds these tests: a conformance run on pcsc-emu in
// another process (make test runs one beside them) may hold slot 0 for
// minutes, and pcsc-emu waits for it as long as pcscEmuSlotWait.
const slotTestWait = pcscEmuSlotWait

// Devices opened one after another on pcsc-emu share one vpcd connection
// and one PC/SC connection: each new blank device is swapped in and
// announced with a reset, pcscd never sees a removal or an insertion, and
// a closed device's link refuses requests while the next device's works.
func TestPCSCEmuSwapsDevicesBehindOneConnection(t *testing.T) {
	skipWithoutPCSC(t)
	ctx, cancel := context.WithTimeout(context.Background(), slotTestWait)
	defer cancel()
	var first *vpcdSession
	var reader *pcsc.Reader
	var closed link.Link
	for i := range 3 {
		d, err := Open(ctx, "pcsc-emu", Options{})
		if err != nil {
			t.Fatalf("device %d: %v", i+1, err)
		}
		c := spd.NewClient(d.Link)
		sel, err := c.Select(ctx)
		if err != nil {
			d.Close()
			t.Fatalf("device %d: SELECT: %v", i+1, err)
		}
		if sel.State != spd.StateBlank {
			t.Errorf("device %d is %s, want a new blank device", i+1, sel.State)
		}
		if closed != nil {
			if _, err := closed.Exchange(ctx, spd.Select().MustBytes()); !errors.Is(err, link.ErrClosed) {
				t.Errorf("device %d: the closed device %d's link answered a command (err %v), want link.ErrClosed", i+1, i, err)
			}
		}
		closed = d.Link
		vpcdPool.Lock()
		s := vpcdPool.idle[0]
		busy := vpcdPool.busy[0]
		vpcdPool.Unlock()
		if !busy || s != nil {
			t.Fatalf("device %d: slot 0 busy %v, idle session %v: want the device on slot 0", i+1, busy, s)
		}
		if err := d.Close(); err != nil {
			t.Fatalf("device %d: Close: %v", i+1, err)
		}
		vpcdPool.Lock()
		s = vpcdPool.idle[0]
		vpcdPool.Unlock()
		if s == nil {
			t.Fatalf("device %d: no session kept for the slot after Close", i+1)
		}
		if first == nil {
			first = s
		}
		if s != first {
			t.Fatalf("device %d was served by a new emulator session, want the first one's", i+1)
		}
		if reader == nil {
			reader = s.r
		}
		if s.r == nil || s.r != reader {
			t.Fatalf("device %d was reached through a new PC/SC connection, want the first one's", i+1)
		}
		st := s.em.Status()
		if st.Connections != 1 || st.Swaps != uint64(i) || st.PowerUps < uint64(i+1) {
			t.Fatalf("after device %d: %d connections, %d swaps, %d power-ups; want 1, %d, >= %d", i+1, st.Connections, st.Swaps, st.PowerUps, i, i+1)
		}
	}
}

// ReleaseIdleSlots hands the slot a closed device left idle back to other
// programs at once: its lock is free and the card is out of the reader.
func TestReleaseIdleSlotsFreesTheSlotAtOnce(t *testing.T) {
	skipWithoutPCSC(t)
	ctx, cancel := context.WithTimeout(context.Background(), slotTestWait)
	defer cancel()
	d, err := Open(ctx, "pcsc-emu", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	vpcdPool.Lock()
	s := vpcdPool.idle[0]
	vpcdPool.Unlock()
	if s == nil {
		t.Fatal("no idle session for slot 0 after Close")
	}
	if err := ReleaseIdleSlots(); err != nil {
		t.Fatal(err)
	}
	vpcdPool.Lock()
	left, stopping := len(vpcdPool.idle), len(vpcdPool.stopping)
	vpcdPool.Unlock()
	if left != 0 || stopping != 0 {
		t.Fatalf("after ReleaseIdleSlots: %d idle sessions, %d stopping; want none", left, stopping)
	}
	if st := s.em.Status(); st.Connected {
		t.Fatalf("the emulator is still connected to vpcd: %+v", st)
	}
	f, err := os.Open(sim.SlotLockPath(vpcdSlots[0].address))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The slot is free for others at once. Another program waiting for it
	// (make test runs PC/SC users side by side) may take it the moment it
	// is free: the lock is then held, but by that program, which writes
	// its pid into the lock file once it has the lock.
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
			return
		}
		if pid := lockRecordPID(f); pid != 0 && pid != os.Getpid() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot 0's lock is still held after ReleaseIdleSlots, by this process as its lock file says: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockRecordPID is the pid a slot's lock file names as its holder, 0 when
// it names none.
func lockRecordPID(f *os.File) int {
	b := make([]byte, 4096)
	n, _ := f.ReadAt(b, 0)
	for _, line := range strings.Split(string(b[:n]), "\n") {
		if v, ok := strings.CutPrefix(line, "pid="); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	return 0
}

// A slot handed on within one of pcscd's polls (the card before it left
// 10 ms earlier) still gives a powered device that answers: pcscd may
// take the new card for the old one and not power it on its own, and the
// host's connect and cold reset then do.
func TestPCSCEmuAfterASlotHandedOnWithinAPoll(t *testing.T) {
	skipWithoutPCSC(t)
	ctx, cancel := context.WithTimeout(context.Background(), slotTestWait)
	defer cancel()
	if err := ReleaseIdleSlots(); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		other := sim.New(device.New(store.NewMemory(), device.Config{}), sim.Config{Address: vpcdSlots[0].address, SlotWait: slotTestWait, RemovalGap: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		octx, ocancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- other.Run(octx) }()
		for st := other.Status(); !st.Connected || st.PowerUps == 0; st = other.Status() {
			time.Sleep(5 * time.Millisecond)
		}
		ocancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		d, err := Open(ctx, "pcsc-emu:0", Options{})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		sel, err := spd.NewClient(d.Link).Select(ctx)
		if err != nil || sel.State != spd.StateBlank {
			d.Close()
			t.Fatalf("round %d: SELECT: %v, state %v; want a blank device", round, err, sel.State)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := ReleaseIdleSlots(); err != nil {
			t.Fatal(err)
		}
	}
}

// The reader of a slot this process has just taken may still be held
// exclusively by its last holder, letting go: the connect waits for it
// (bounded) rather than fail with a sharing violation, as it did in a make
// test run whose packages used the slots side by side.
func TestPCSCEmuWaitsForTheLastHoldersConnection(t *testing.T) {
	skipWithoutPCSC(t)
	ctx, cancel := context.WithTimeout(context.Background(), slotTestWait)
	defer cancel()
	if err := ReleaseIdleSlots(); err != nil {
		t.Fatal(err)
	}
	em := sim.New(device.New(store.NewMemory(), device.Config{}), sim.Config{Address: vpcdSlots[0].address, SlotWait: slotTestWait, Logger: slog.New(slog.DiscardHandler)})
	ectx, ecancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- em.Run(ectx) }()
	defer func() {
		ecancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	holder, err := openSettled(ctx, vpcdSlots[0].reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pcsc.Open(ctx, vpcdSlots[0].reader); !errors.Is(err, pcsc.ErrInUse) {
		t.Fatalf("a second connection while the first holds the reader: %v, want pcsc.ErrInUse", err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		holder.Close()
	}()
	start := time.Now()
	r, err := openSettled(ctx, vpcdSlots[0].reader)
	if err != nil {
		t.Fatalf("after the holder let go (%v later): %v", time.Since(start), err)
	}
	defer r.Close()
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("connected after %v, while the holder still held the reader", waited)
	}
	if _, err := spd.NewClient(r).Select(ctx); err != nil {
		t.Fatalf("SELECT on the connection that waited: %v", err)
	}
}
