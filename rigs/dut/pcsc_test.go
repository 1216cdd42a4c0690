//go:build cgo

package dut

import (
	"context"
	"testing"
	"time"

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
