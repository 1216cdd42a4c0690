package dut

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/rigs/link"
	sdrig "github.com/spdlab/spdlab/rigs/sdcard"
	serialrig "github.com/spdlab/spdlab/rigs/serial"
)

// An emulator behind an OS interface (serial-emu's pty, sd-emu's file
// channel) costs more to set up and take down than the suite's short cases
// take: a pty to open and put in raw mode and a port to open on it, a
// directory and two channel files to make and remove (milliseconds on a
// busy disk). With Options.KeepEmulators, such an emulator and the rig's
// port or channel on it are kept once their device is closed, and the
// next device of the same DUT string is swapped in behind them (the
// emulators' Swap); the rig opens a session with it (RESET 00, the rigs'
// OpenSession) exactly as with a device just plugged in. Each device still
// gets an emulator of its own while it is open; two open at once get two.

// emuIdleRelease is how long an emulator no device uses is kept before it
// is stopped (its pty closed, its directory removed).
const emuIdleRelease = 2 * time.Second

// keptRig is the rig's link to a kept emulator: rigs/serial's Port or
// rigs/sdcard's Channel.
type keptRig interface {
	sharedRig
	link.Limits
	OpenSession(ctx context.Context) ([]byte, error)
}

var (
	_ keptRig = (*serialrig.Port)(nil)
	_ keptRig = (*sdrig.Channel)(nil)
)

// emuSession is an emulator, and the rig's link to it, kept for the
// devices of one DUT string.
type emuSession struct {
	key string // the DUT string, faults included
	// swap puts a card behind the emulator (nil: none); stop ends it.
	swap func(emulator.Card) error
	stop func() error
	rig  keptRig
	idle *time.Timer
}

// end closes the rig's link and stops the emulator.
func (s *emuSession) end() error {
	var errs []error
	if s.rig != nil {
		errs = append(errs, s.rig.Close())
	}
	return errors.Join(append(errs, s.stop())...)
}

// emuPool holds the sessions no device uses now, by DUT string.
var emuPool = struct {
	sync.Mutex
	idle map[string][]*emuSession
}{idle: map[string][]*emuSession{}}

// openEmulated puts card behind an emulator for d's DUT string and makes
// d.Link the rig's link to it. With keep it takes an idle kept emulator
// when there is one, and d's Close gives it back; otherwise, or when the
// kept one fails, start starts an emulator (returning what a rig opens,
// how to swap its card and how to stop it) and openRig opens the rig on it.
func openEmulated(ctx context.Context, d *DUT, keep bool, card emulator.Card,
	start func(emulator.Card) (path string, swap func(emulator.Card) error, stop func() error, err error),
	openRig func(ctx context.Context, path string) (keptRig, error)) error {
	var s *emuSession
	if keep {
		emuPool.Lock()
		if list := emuPool.idle[d.Spec]; len(list) > 0 {
			s = list[len(list)-1]
			emuPool.idle[d.Spec] = list[:len(list)-1]
			s.idle.Stop()
		}
		emuPool.Unlock()
	}
	if s != nil {
		err := s.swap(card)
		if err == nil {
			_, err = s.rig.OpenSession(ctx)
		}
		if err != nil {
			// A new emulator for this device, as without keep.
			s.swap(nil)
			s.end()
			s = nil
		}
	}
	if s == nil {
		path, swap, stop, err := start(card)
		if err != nil {
			return err
		}
		s = &emuSession{key: d.Spec, swap: swap, stop: stop}
		if s.rig, err = openRig(ctx, path); err != nil {
			return errors.Join(err, s.end())
		}
	}
	if !keep {
		d.Link = s.rig // closed by d's Close before the emulator stops
		d.onClose(s.stop)
		return nil
	}
	d.Link = keptEmuLink{keptLink: &keptLink{sharedRig: s.rig}, Limits: s.rig}
	d.onClose(s.park)
	return nil
}

// park takes the card out of the emulator and keeps the emulator for the
// next device of its DUT string; it stops the emulator when none comes
// within emuIdleRelease.
func (s *emuSession) park() error {
	if err := s.swap(nil); err != nil {
		return errors.Join(err, s.end())
	}
	emuPool.Lock()
	defer emuPool.Unlock()
	emuPool.idle[s.key] = append(emuPool.idle[s.key], s)
	s.idle = time.AfterFunc(emuIdleRelease, func() { _ = releaseEmulators(s) })
	return nil
}

// sharedRig is a link that its session keeps from one device to the next:
// rigs/serial's Port and rigs/sdcard's Channel behind a kept emulator,
// rigs/pcsc's Reader on a kept vpcd slot.
type sharedRig interface {
	link.Link
	link.Resetter
	link.PowerCycler
	link.ATRer
	link.RawExchanger
}

// keptLink is one device's link to a rig its session keeps: every ability
// of the rig, except that its Close leaves the rig open for the next
// device and refuses this device's further requests.
type keptLink struct {
	sharedRig
	closed atomic.Bool
}

// Close implements link.Link: the link refuses every request from now on.
func (k *keptLink) Close() error {
	k.closed.Store(true)
	return nil
}

// Exchange implements link.Link.
func (k *keptLink) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	if k.closed.Load() {
		return nil, link.ErrClosed
	}
	return k.sharedRig.Exchange(ctx, command)
}

// ExchangeRaw implements link.RawExchanger.
func (k *keptLink) ExchangeRaw(ctx context.Context, command []byte) ([]byte, error) {
	if k.closed.Load() {
		return nil, link.ErrClosed
	}
	return k.sharedRig.ExchangeRaw(ctx, command)
}

// Reset implements link.Resetter.
func (k *keptLink) Reset(ctx context.Context, cold bool) ([]byte, error) {
	if k.closed.Load() {
		return nil, link.ErrClosed
	}
	return k.sharedRig.Reset(ctx, cold)
}

// PowerOff implements link.PowerCycler.
func (k *keptLink) PowerOff(ctx context.Context) error {
	if k.closed.Load() {
		return link.ErrClosed
	}
	return k.sharedRig.PowerOff(ctx)
}

// PowerOn implements link.PowerCycler.
func (k *keptLink) PowerOn(ctx context.Context) ([]byte, error) {
	if k.closed.Load() {
		return nil, link.ErrClosed
	}
	return k.sharedRig.PowerOn(ctx)
}

// String names the rig.
func (k *keptLink) String() string { return fmt.Sprint(k.sharedRig) }

var (
	_ sharedRig   = (*keptLink)(nil)
	_ sharedRig   = keptEmuLink{}
	_ link.Limits = keptEmuLink{}
)

// keptEmuLink is the link of a device behind a kept serial-emu or sd-emu
// emulator: keptLink, with the rig's limits. The rig's session
// (OpenSession) is the kept emulator's, not the device's.
type keptEmuLink struct {
	*keptLink
	link.Limits
}

// ReleaseIdleEmulators stops at once the serial-emu and sd-emu emulators
// this process keeps for devices to come (Options.KeepEmulators), their
// ports and channels closed, their ptys closed and their directories
// removed. A process that opens devices with KeepEmulators calls it when
// it is done with them, so as to leave no directory behind.
func ReleaseIdleEmulators() error { return releaseEmulators(nil) }

// releaseEmulators stops the idle session only, or every idle session when
// only is nil.
func releaseEmulators(only *emuSession) error {
	emuPool.Lock()
	var stop []*emuSession
	for key, list := range emuPool.idle {
		keep := list[:0]
		for _, s := range list {
			if only == nil || s == only {
				s.idle.Stop()
				stop = append(stop, s)
			} else {
				keep = append(keep, s)
			}
		}
		if len(keep) == 0 {
			delete(emuPool.idle, key)
		} else {
			emuPool.idle[key] = keep
		}
	}
	emuPool.Unlock()
	var errs []error
	for _, s := range stop {
		errs = append(errs, s.end())
	}
	return errors.Join(errs...)
}
