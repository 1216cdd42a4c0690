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
	"strings"
	"sync"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/sim"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/pcsc"
)

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

// How long pcsc-emu waits, reporting the holder, for a vpcd slot another
// process holds: a whole conformance run on pcsc-emu in another process
// holds slot 0 for its duration, a few minutes on a busy machine and more
// than 10 on a crowded one (two make test-scenarios at once, load average
// above 70, 2 CPUs).
const (
	pcscEmuSlotWait      = 30 * time.Minute
	pcscEmuNamedSlotWait = 30 * time.Minute
	// pcscdPowerWait bounds how long vpcd may take to poll a card once
	// the emulator is connected (pcscd polls it every 400 ms).
	pcscdPowerWait = 15 * time.Second
	// pcscdAutoPowerWait is how long pcscd may poll a new card before it
	// powers it on its own, which it does at the first poll that finds it.
	pcscdAutoPowerWait = 2 * time.Second
	// idleRelease is how long a slot this process holds stays unused
	// before it is let go for other programs. A conformance run takes
	// its slot when it probes the DUT, before any case, and keeps it
	// between cases, also across cases that open no device and slow
	// stretches of a loaded machine: a second run waits in its probe
	// (no case's timeout runs then) rather than inside a case.
	idleRelease = 30 * time.Second
)

// vpcdSession is a SIM emulator holding one vpcd slot for as long as this
// process keeps using it: pcscd sees one card insertion, and every device
// after the first is swapped in behind the same connection (sim.Swap) and
// announced with a reset, which pcscd passes on to vpcd at once. The PC/SC
// rig's connection to the card (SCardConnect's handle) is kept with it:
// each device's link is that connection (keptLink), so a device costs a
// swap and a reset, not a PC/SC context, a reader list, a connect and a
// disconnect.
type vpcdSession struct {
	slot   int
	em     *sim.Emulator
	cancel context.CancelFunc
	done   chan error // Run's result, once
	idle   *time.Timer
	r      *pcsc.Reader // the PC/SC connection to the slot's card, once made
}

// vpcdPool holds this process's sessions, by slot.
var vpcdPool = struct {
	sync.Mutex
	idle     map[int]*vpcdSession  // sessions no device uses now
	busy     map[int]bool          // slots a device uses now
	stopping map[int]chan struct{} // slots being let go, closed when done
}{idle: map[int]*vpcdSession{}, busy: map[int]bool{}, stopping: map[int]chan struct{}{}}

// openPCSCEmu serves a new reference device as a SIM through vpcd and
// reaches it through pcscd with the PC/SC rig, as any PC/SC program would.
// pcsc-emu takes the lowest vpcd slot this process is not using, waiting
// for another process to let go of it (so that processes take the slots in
// the same order and two of them never wait on each other); pcsc-emu:N
// takes slot N of vpcdSlots.
func openPCSCEmu(ctx context.Context, d *DUT, arg string, opt Options) error {
	var candidates []int
	wait := pcscEmuSlotWait
	if arg != "" {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 || n >= len(vpcdSlots) {
			return fmt.Errorf("dut: pcsc-emu takes a vpcd slot number 0..%d, not %q", len(vpcdSlots)-1, arg)
		}
		candidates = []int{n}
		wait = pcscEmuNamedSlotWait
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
	// pcscd's readers, listed once a slot this process holds no session
	// on is tried: a kept session's reader is known to be there.
	var readers []string
	for _, i := range candidates {
		slot := vpcdSlots[i]
		vpcdPool.Lock()
		for vpcdPool.stopping[i] != nil {
			// This process is letting go of the slot after it went
			// unused: take it again once that is done.
			ch := vpcdPool.stopping[i]
			vpcdPool.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
			vpcdPool.Lock()
		}
		if vpcdPool.busy[i] {
			vpcdPool.Unlock()
			tried = append(tried, fmt.Sprintf("%s (%s): in use by another device of this process", slot.reader, slot.address))
			continue
		}
		vpcdPool.busy[i] = true
		s := vpcdPool.idle[i]
		delete(vpcdPool.idle, i)
		vpcdPool.Unlock()
		if s != nil {
			s.idle.Stop()
		} else {
			if readers == nil {
				if readers, err = pcsc.ListReaders(); err != nil {
					vpcdPool.Lock()
					delete(vpcdPool.busy, i)
					vpcdPool.Unlock()
					return fmt.Errorf("dut: pcsc-emu: %w", err)
				}
			}
			if !slices.Contains(readers, slot.reader) {
				vpcdPool.Lock()
				delete(vpcdPool.busy, i)
				vpcdPool.Unlock()
				tried = append(tried, fmt.Sprintf("%s (%s): pcscd has no such reader", slot.reader, slot.address))
				continue
			}
		}
		r, s, err := s.attach(ctx, i, dev, wait)
		if err != nil {
			vpcdPool.Lock()
			delete(vpcdPool.busy, i)
			vpcdPool.Unlock()
			if s != nil {
				s.stop()
			}
			return err
		}
		s.r = r
		d.Link = &keptLink{sharedRig: r} // Close leaves the connection open for the next device
		d.onClose(func() error { s.park(); return nil })
		return nil
	}
	return fmt.Errorf("dut: pcsc-emu: no vpcd slot to use: %s", strings.Join(tried, "; "))
}

// attach puts dev in slot i: on the session s when this process already
// holds the slot (a swap and a reset), or on a new session (one
// insertion that pcscd sees by polling). It returns the PC/SC rig's link
// to the card and the session serving it.
func (s *vpcdSession) attach(ctx context.Context, i int, dev emulator.Card, wait time.Duration) (*pcsc.Reader, *vpcdSession, error) {
	slot := vpcdSlots[i]
	if s == nil {
		var err error
		s, err = startSession(ctx, i, dev, wait)
		if err != nil {
			return nil, s, err
		}
		r, err := openSettled(ctx, slot.reader)
		if err != nil || s.em.Status().PowerUps > 0 {
			return r, s, err
		}
		// pcscd shows the card but never powered it: a cold reset does.
		st := s.em.Status()
		if _, err := r.Reset(ctx, true); err != nil || s.em.Status().PowerUps == 0 {
			r.Close()
			return nil, s, fmt.Errorf("dut: pcsc-emu: pcscd polls the emulated SIM in %q (%d vpcd controls) but neither powered it nor passed a cold reset on (%v): is another PC/SC program holding the reader?",
				slot.reader, st.Controls, err)
		}
		return r, s, nil
	}
	r := s.r
	if r != nil {
		// The last device's link is closed, but a command of it that
		// outlived its case may still be on its way: the card it went
		// to leaves only once it has its answer.
		if err := r.Idle(ctx); err != nil {
			return nil, s, fmt.Errorf("dut: pcsc-emu: the last device's command in %q is still in progress: %w", slot.reader, err)
		}
	}
	if err := s.em.Swap(dev); err != nil {
		return nil, s, fmt.Errorf("dut: pcsc-emu: %w", err)
	}
	if r == nil {
		var err error
		if r, err = openSettled(ctx, slot.reader); err != nil {
			return nil, s, err
		}
	}
	// Announce the new card with a warm reset (SCARD_RESET_CARD): pcscd
	// passes it to vpcd at once, and vpcd resets the card and reads its
	// ATR. The swapped-in card is unpowered, so the reset powers it up
	// (sim.Swap), as a cold reset would; it takes one vpcd control instead
	// of a cold reset's power off and power on.
	ups := s.em.Status().PowerUps
	if _, err := r.Reset(ctx, false); err != nil {
		s.r = r // stop closes it
		return nil, s, fmt.Errorf("dut: pcsc-emu: reset announcing a new card in %q: %w", slot.reader, err)
	}
	if st := s.em.Status(); st.PowerUps == ups {
		s.r = r
		return nil, s, fmt.Errorf("dut: pcsc-emu: a reset in %q did not reach the emulated SIM (status %+v)", slot.reader, st)
	}
	return r, s, nil
}

// startSession runs a SIM emulator holding card on slot i and waits until
// pcscd has seen the card and powered it, or has polled it for
// pcscdAutoPowerWait without (attach then powers it). Every error says
// what was waited for: the slot's holder, vpcd, or pcscd.
func startSession(ctx context.Context, i int, card emulator.Card, wait time.Duration) (*vpcdSession, error) {
	slot := vpcdSlots[i]
	// Connections come and go; only trouble is news.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	em := sim.New(card, sim.Config{Address: slot.address, SlotWait: wait, Logger: quiet})
	runCtx, cancel := context.WithCancel(context.Background())
	s := &vpcdSession{slot: i, em: em, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- em.Run(runCtx) }()
	var connectedAt, polledAt, unreachableSince time.Time
	for {
		st := em.Status()
		if st.Connected && st.PowerUps > 0 {
			return s, nil
		}
		if st.Connected && connectedAt.IsZero() {
			connectedAt = time.Now()
		}
		if st.Connected && st.Controls > 0 && polledAt.IsZero() {
			polledAt = time.Now()
		}
		if !polledAt.IsZero() && time.Since(polledAt) > pcscdAutoPowerWait {
			// pcscd reads the card's ATR at every poll but has not
			// powered it, as it does a card it sees arrive: it may have
			// missed the last card's removal (the slot changed hands
			// within one poll). The host's connect and cold reset
			// power it (attach).
			return s, nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			cancel()
			if err == nil {
				err = errors.New("stopped")
			}
			return nil, fmt.Errorf("dut: pcsc-emu: SIM emulator for %q: %w", slot.reader, err)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		unreachable := !st.Connected && strings.Contains(st.Waiting, "cannot reach vpcd")
		switch {
		case !unreachable:
			unreachableSince = time.Time{}
		case unreachableSince.IsZero():
			unreachableSince = time.Now()
		case time.Since(unreachableSince) > vpcdUnreachableWait:
			// Reaching vpcd is pcscd's part: this failure is pcscd's.
			s.stop()
			return nil, fmt.Errorf("dut: pcsc-emu: %s for %v; is pcscd running with vpcd? run .ci/pcscd as root", st.Waiting, vpcdUnreachableWait)
		}
		if !connectedAt.IsZero() && time.Since(connectedAt) > pcscdPowerWait {
			s.stop()
			return nil, fmt.Errorf("dut: pcsc-emu: vpcd at %s accepted the emulated SIM but has not polled it in %v: another card program is connected to that slot without taking its lock %s (see the README, \"Sharing the vpcd slots\")",
				slot.address, pcscdPowerWait, sim.SlotLockPath(slot.address))
		}
	}
}

// vpcdUnreachableWait is how long vpcd may refuse the card side before
// pcsc-emu gives up on it.
const vpcdUnreachableWait = 5 * time.Second

// stop ends the session: the card leaves the slot, and the slot is let go
// once pcscd has seen it leave (so that the next card in it, from any
// program, is a new insertion).
func (s *vpcdSession) stop() error {
	s.cancel()
	err := <-s.done
	s.done <- err
	if s.r != nil {
		// After the emulator: a command still on its way to the card
		// ends with the connection to vpcd, and Close waits for it.
		if cerr := s.r.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("dut: pcsc-emu: closing the PC/SC connection to %q: %w", vpcdSlots[s.slot].reader, cerr)
		}
		s.r = nil
	}
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.em.Status().Connections > 0 {
		if werr := pcsc.WaitForRemoval(wctx, vpcdSlots[s.slot].reader); werr != nil && err == nil {
			err = fmt.Errorf("dut: pcscd still sees a card in %q after the emulator stopped: %w", vpcdSlots[s.slot].reader, werr)
		}
	}
	return err
}

// park returns the session to the pool once its device is closed; it lets
// go of the slot when no device takes it within idleRelease.
func (s *vpcdSession) park() {
	vpcdPool.Lock()
	defer vpcdPool.Unlock()
	delete(vpcdPool.busy, s.slot)
	select {
	case err := <-s.done:
		// The emulator stopped (it cannot have been asked to): nothing
		// to keep.
		s.done <- err
		go s.stop()
		return
	default:
	}
	vpcdPool.idle[s.slot] = s
	s.idle = time.AfterFunc(idleRelease, func() { _ = releaseIdle(s) })
}

// IdleSlots lists the vpcd slots (indices into the slots pcsc-emu uses)
// this process holds with no device on them, in order: a pcsc-emu device
// opened next takes one of them with a swap and a reset, not an insertion.
func IdleSlots() []int {
	vpcdPool.Lock()
	defer vpcdPool.Unlock()
	var out []int
	for i := range vpcdPool.idle {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// ReleaseIdleSlots lets go at once of the vpcd slots this process holds
// while no device of it uses them (pcsc-emu keeps a slot for idleRelease
// after its last device closed), and returns once other programs can take
// them: the card has left and pcscd has seen it go. A process done with
// pcsc-emu while it goes on running, such as the parent of a parallel
// certification after its probe, calls it so that the processes it starts
// need not wait for the slot. A device opened later takes a slot anew.
func ReleaseIdleSlots() error { return releaseIdle(nil) }

// releaseIdle stops the idle session only, or every idle session when only
// is nil; a device that wants the slot meanwhile waits for the stop.
func releaseIdle(only *vpcdSession) error {
	vpcdPool.Lock()
	var sessions []*vpcdSession
	var stopped []chan struct{}
	for i, s := range vpcdPool.idle {
		if only != nil && s != only {
			continue
		}
		s.idle.Stop()
		delete(vpcdPool.idle, i)
		ch := make(chan struct{})
		vpcdPool.stopping[i] = ch
		sessions, stopped = append(sessions, s), append(stopped, ch)
	}
	vpcdPool.Unlock()
	var errs []error
	for k, s := range sessions {
		errs = append(errs, s.stop())
		vpcdPool.Lock()
		delete(vpcdPool.stopping, s.slot)
		close(stopped[k])
		vpcdPool.Unlock()
	}
	return errors.Join(errs...)
}

// openSettled opens reader, waiting a bounded while for pcscd to show the
// card when it does not at once: after a new insertion (pcscd's view of a
// slot lags the card side by a polling interval). It waits the same while
// for another program's exclusive connection to the reader to go: this
// process holds the slot's vpcd lock, so such a connection is the last
// holder's, letting go (seen in make test, where the packages whose tests
// use the slots run side by side).
func openSettled(ctx context.Context, reader string) (*pcsc.Reader, error) {
	const settle = 15 * time.Second
	deadline := time.Now().Add(settle)
	for {
		r, err := pcsc.Open(ctx, reader)
		switch {
		case err == nil || time.Now().After(deadline):
			if errors.Is(err, pcsc.ErrInUse) {
				err = fmt.Errorf("%w (waited %s for it to let go; this process holds the slot's vpcd lock)", err, settle)
			}
			return r, err
		case errors.Is(err, link.ErrNoCard):
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_ = pcsc.WaitForCard(wctx, reader)
			cancel()
		case errors.Is(err, pcsc.ErrInUse):
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(50 * time.Millisecond):
			}
		default:
			return r, err
		}
	}
}
