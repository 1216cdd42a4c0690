package scenarios

import (
	"context"
	"slices"
	"testing"

	"github.com/spdlab/spdlab/emulator/sim/simtest"
	"github.com/spdlab/spdlab/rigs/dut"
)

// TestWarmReadiesEveryPCSCEmuSlot: after Warm, both vpcd slots are this
// process's and idle, so the first case that opens two devices swaps them
// in rather than waiting for pcscd to see a card arrive.
func TestWarmReadiesEveryPCSCEmuSlot(t *testing.T) {
	ctx := context.Background()
	simtest.EnsurePCSCD(t)
	t.Cleanup(func() { _ = dut.ReleaseIdleSlots() })
	d, err := NewDUTDriver([]string{"pcsc-emu"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	want := make([]int, d.Profile().MaxDevices)
	for i := range want {
		want[i] = i
	}
	if got := dut.IdleSlots(); len(want) < 2 || !slices.Equal(got, want) {
		t.Fatalf("after Warm the idle vpcd slots are %v, want %v", got, want)
	}
}
