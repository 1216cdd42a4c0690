//go:build cgo

package dut

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/sim"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/pcsc"
)

func init() {
	openers["pcsc"] = openPCSC
	openers["pcsc-emu"] = openPCSCEmu
}

// openPCSC opens a PC/SC reader by name; no name takes the first reader
// with a card.
func openPCSC(ctx context.Context, d *DUT, reader string, opt Options) error {
	r, err := pcsc.Open(ctx, reader)
	if err != nil {
		return err
	}
	d.Link = r
	return nil
}

// slotsInUse are the vpcd slots this process serves a card on.
var slotsInUse = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// openPCSCEmu serves a new reference device as a SIM through vpcd and
// reaches it through pcscd with the PC/SC rig, as any PC/SC program would.
// pcsc-emu takes the first free vpcd slot (several devices can be open at
// once, one per slot); pcsc-emu:N takes slot N of vpcdSlots.
func openPCSCEmu(ctx context.Context, d *DUT, arg string, opt Options) error {
	readers, err := pcsc.ListReaders()
	if err != nil {
		return fmt.Errorf("dut: pcsc-emu: %w", err)
	}
	var candidates []int
	if arg != "" {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 || n >= len(vpcdSlots) {
			return fmt.Errorf("dut: pcsc-emu takes a vpcd slot number 0..%d, not %q", len(vpcdSlots)-1, arg)
		}
		candidates = []int{n}
	} else {
		for i := range vpcdSlots {
			candidates = append(candidates, i)
		}
	}
	dev, err := newDevice(d, opt)
	if err != nil {
		return err
	}
	var tried []string
	for _, i := range candidates {
		slot := vpcdSlots[i]
		if !slices.Contains(readers, slot.reader) {
			tried = append(tried, slot.reader+": no such reader")
			continue
		}
		slotsInUse.Lock()
		busy := slotsInUse.m[i]
		if !busy {
			slotsInUse.m[i] = true
		}
		slotsInUse.Unlock()
		if busy {
			tried = append(tried, slot.reader+": in use here")
			continue
		}
		err := serveOnSlot(ctx, d, dev, slot, arg != "")
		if err == nil {
			d.onClose(func() error {
				slotsInUse.Lock()
				delete(slotsInUse.m, i)
				slotsInUse.Unlock()
				return nil
			})
			return openPCSCSettled(ctx, d, slot.reader, opt)
		}
		slotsInUse.Lock()
		delete(slotsInUse.m, i)
		slotsInUse.Unlock()
		if !errors.Is(err, sim.ErrSlotBusy) {
			return err
		}
		tried = append(tried, slot.reader+": held by another process")
	}
	return fmt.Errorf("dut: pcsc-emu: no free vpcd slot (%v)", tried)
}

// serveOnSlot runs a SIM emulator for the device on slot until d closes,
// and waits until pcscd has seen the card and powered it once. Without
// wait it gives up at once when another process holds the slot.
func serveOnSlot(ctx context.Context, d *DUT, card emulator.Card, slot vpcdSlot, wait bool) error {
	// Another process's turn on a slot is short (a test); wait for it
	// a while, and for good when the slot was named.
	slotWait := 20 * time.Second
	if wait {
		slotWait = 2 * time.Minute
	}
	// Connections come and go with every device; only trouble is news.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	em := sim.New(card, sim.Config{Address: slot.address, SlotWait: slotWait, Logger: quiet})
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- em.Run(runCtx) }()
	stop := func() error {
		cancel()
		err := <-done
		// Hand the slot on only once pcscd has seen the card leave, so that
		// the next card on it is a new insertion, not the old card's
		// connection replaced under pcscd.
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer wcancel()
		if werr := pcsc.WaitForRemoval(wctx, slot.reader); werr != nil && err == nil {
			err = fmt.Errorf("dut: pcscd still sees a card in %q after the emulator stopped: %w", slot.reader, werr)
		}
		return err
	}
	deadline := time.Now().Add(slotWait + 15*time.Second)
	for {
		if st := em.Status(); st.Connected && st.PowerUps > 0 {
			d.onClose(stop)
			return nil
		}
		select {
		case err := <-done:
			cancel()
			if err == nil {
				err = errors.New("stopped")
			}
			return fmt.Errorf("dut: SIM emulator on vpcd %s: %w", slot.address, err)
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("dut: pcscd did not power the emulated SIM in %q within %v (is pcscd running with vpcd? run .ci/pcscd as root)",
				slot.reader, slotWait+15*time.Second)
		}
	}
}

// openPCSCSettled opens reader, waiting a bounded while for pcscd to show
// the card when it does not at once (its view of a slot lags the card side
// by a polling interval).
func openPCSCSettled(ctx context.Context, d *DUT, reader string, opt Options) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := openPCSC(ctx, d, reader, opt)
		if err == nil || !errors.Is(err, link.ErrNoCard) || time.Now().After(deadline) {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = pcsc.WaitForCard(wctx, reader)
		cancel()
	}
}
