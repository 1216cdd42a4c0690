package dut

import (
	"errors"
	"sync"
	"time"

	"github.com/spdlab/spdlab/emulator"
)

// An emulator behind an OS interface (serial-emu's pty, sd-emu's file
// channel) costs more to set up and take down than the suite's short cases
// take: a pty to open and put in raw mode, a directory and two channel
// files to make and remove (milliseconds on a busy disk). With
// Options.KeepEmulators, such an emulator is kept once its device is
// closed, and the next device of the same DUT string is swapped in behind
// it (the emulators' Swap) and reached by a newly opened rig, which opens
// a session with it (RESET 00) exactly as with a device just plugged in.
// Each device still gets an emulator of its own while it is open; two open
// at once get two.

// emuIdleRelease is how long an emulator no device uses is kept before it
// is stopped (its pty closed, its directory removed).
const emuIdleRelease = 2 * time.Second

// emuSession is an emulator kept for the devices of one DUT string.
type emuSession struct {
	key  string // the DUT string, faults included
	path string // the pty or directory a rig opens
	// swap puts a card behind the emulator (nil: none); stop ends it.
	swap func(emulator.Card) error
	stop func() error
	idle *time.Timer
	// failed: a rig could not open a session through it, so it is stopped
	// rather than kept; so is one opened without Options.KeepEmulators.
	failed bool
}

// emuPool holds the sessions no device uses now, by DUT string.
var emuPool = struct {
	sync.Mutex
	idle map[string][]*emuSession
}{idle: map[string][]*emuSession{}}

// takeEmulator puts card behind an idle emulator kept for key, or starts a
// new one with start, and arranges for d's Close to give it back (keep) or
// to stop it.
func takeEmulator(d *DUT, key string, keep bool, card emulator.Card, start func(emulator.Card) (*emuSession, error)) (*emuSession, error) {
	emuPool.Lock()
	var s *emuSession
	if list := emuPool.idle[key]; keep && len(list) > 0 {
		s = list[len(list)-1]
		emuPool.idle[key] = list[:len(list)-1]
		s.idle.Stop()
	}
	emuPool.Unlock()
	if s != nil {
		if err := s.swap(card); err != nil {
			return nil, errors.Join(err, s.stop())
		}
	} else {
		var err error
		if s, err = start(card); err != nil {
			return nil, err
		}
		s.key = key
	}
	s.failed = !keep
	d.onClose(s.park)
	return s, nil
}

// park takes the card out of the emulator and keeps it for the next device
// of its DUT string; it stops the emulator when none comes within
// emuIdleRelease.
func (s *emuSession) park() error {
	if s.failed {
		return s.stop()
	}
	if err := s.swap(nil); err != nil {
		return errors.Join(err, s.stop())
	}
	emuPool.Lock()
	defer emuPool.Unlock()
	emuPool.idle[s.key] = append(emuPool.idle[s.key], s)
	s.idle = time.AfterFunc(emuIdleRelease, func() { _ = releaseEmulators(s) })
	return nil
}

// ReleaseIdleEmulators stops at once the serial-emu and sd-emu emulators
// this process keeps for devices to come (Options.KeepEmulators), their
// ptys closed and their directories removed. A process that opens devices
// with KeepEmulators calls it when it is done with them, so as to leave no
// directory behind.
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
		errs = append(errs, s.stop())
	}
	return errors.Join(errs...)
}
