//go:build cgo

package dut

import (
	"context"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spdlab/spdlab/emulator/sim"
	"github.com/spdlab/spdlab/reference/spd"
)

// Devices opened one after another on pcsc-emu share one vpcd connection:
// each new blank device is swapped in and announced with a cold reset, and
// pcscd never sees a removal or an insertion.
func TestPCSCEmuSwapsDevicesBehindOneConnection(t *testing.T) {
	skipWithoutPCSC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var first *vpcdSession
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("slot 0's lock is still held after ReleaseIdleSlots: %v", err)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
}
