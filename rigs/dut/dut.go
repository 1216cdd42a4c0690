// Package dut turns a DUT string into an open link.Link: the one place that
// composes rigs and emulators (DESIGN.md, "Layout").
//
//	ref            the reference device in process (link.Direct)
//	pcsc           the first PC/SC reader with a card
//	pcsc:READER    a named PC/SC reader
//	serial:PATH    a UART device (or `spdlab emulate serial`) at PATH
//	usb:VID:PID    a USB CCID device, hex IDs
//	usb-emu        the reference device behind the in-process USB CCID emulator
//	esim-emu       the reference device as the SPD application of an emulated
//	               eUICC (emulator/esim): logical channels, an ISD-R, the eSIM ATR
//	sd:DIR         a secure microSD channel at a card's mount point DIR
//	replay:FILE    answers from a recorded pcapng trace
//	faulty:NAME    a reference device with one deliberate defect (device.Mutants;
//	               faulty:NAME@usb-emu puts it behind the USB CCID emulator,
//	               faulty:NAME@esim-emu in the emulated eUICC),
//	               for checking that the suite fails such a device
//	pcsc-emu, serial-emu, sd-emu
//	               the reference device behind an in-process emulator,
//	               reached through the real OS interface (pcscd+vpcd, a pty,
//	               a file channel), so CI needs no hardware
//
// ref, usb-emu, serial-emu and sd-emu take faults of emulator/fault after
// "+" (usb-emu+t1=96+latency=2ms, serial-emu+noise=0.0002): faults.go.
//
// Strings naming an emulated device (ref and *-emu) make a new blank
// reference device on every Open; the others reach whatever device is there.
package dut

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/fault"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/trace"
)

// Options configure Open.
type Options struct {
	// StatePath keeps an emulated device's store in this file across
	// runs; empty keeps it in memory.
	StatePath string
	// Device configures an emulated reference device.
	Device device.Config
	// Trace, when set, receives every exchange as a pcapng trace with
	// GSMTAP SIM records (rigs/trace).
	Trace io.Writer
	// TraceClock stamps the trace's records; nil is the wall clock.
	TraceClock func() time.Time
	// TraceCase, when set, names the case each record of the trace
	// belongs to (a "spdlab case=ID" packet comment; rigs/trace WrapCase).
	TraceCase func() string
	// KeepEmulators keeps the emulator of a serial-emu or sd-emu device
	// once the device is closed, and puts the next device of the same DUT
	// string behind it rather than starting another (emupool.go): a
	// conformance run opens a device for every case. Whoever sets it calls
	// ReleaseIdleEmulators when done with the devices.
	KeepEmulators bool

	faults faults // named in the DUT string (faults.go)
}

// DUT is an opened device under test.
type DUT struct {
	// Link reaches the device.
	Link link.Link
	// Device is the emulated reference device, nil for real hardware.
	Device *device.Device
	// Spec is the DUT string it was opened from.
	Spec    string
	closers []func() error
	faults  []any // the emulator/fault wrappers its DUT string named
}

// Emulated reports whether spec names a device this process emulates (a
// new blank device on every Open).
func Emulated(spec string) bool {
	spec, _ = splitFaults(spec)
	return spec == "ref" || strings.HasSuffix(spec, "-emu") || strings.HasPrefix(spec, "faulty:") ||
		strings.HasPrefix(spec, "pcsc-emu:")
}

// NamesRemoval reports whether spec names the removal fault, so that a
// DUT opened from it has a Removal.
func NamesRemoval(spec string) bool {
	_, list := splitFaults(spec)
	return slices.Contains(list, "removal")
}

// TearAt arms a power cut at the nth persistent write of an emulated
// device. It reports false for real hardware.
func (d *DUT) TearAt(n int) bool {
	if d.Device == nil {
		return false
	}
	d.Device.TearAt(n)
	return true
}

// Removal is the slot the card of an emulated DUT named with the removal
// fault ("usb-emu+removal") sits in, nil without it: the lab pulls the card
// and puts it back through it.
func (d *DUT) Removal() *fault.Removal {
	for _, f := range d.faults {
		if r, ok := f.(*fault.Removal); ok {
			return r
		}
	}
	return nil
}

// Close closes the link and stops whatever serves the device, in reverse
// order of opening.
func (d *DUT) Close() error {
	var errs []error
	if d.Link != nil {
		errs = append(errs, d.Link.Close())
	}
	for i := len(d.closers) - 1; i >= 0; i-- {
		errs = append(errs, d.closers[i]())
	}
	return errors.Join(errs...)
}

func (d *DUT) onClose(f func() error) { d.closers = append(d.closers, f) }

// opener opens one kind of DUT; arg is what follows the first colon.
type opener func(ctx context.Context, d *DUT, arg string, opt Options) error

// openers is the table of DUT kinds. pcsc and pcsc-emu answer an error in
// a build without cgo (pcsc_nocgo.go).
var openers = map[string]opener{
	"ref":        openRef,
	"replay":     openReplay,
	"faulty":     openFaulty,
	"esim-emu":   openESIMEmu,
	"pcsc":       openPCSC,
	"pcsc-emu":   openPCSCEmu,
	"serial":     openSerial,
	"serial-emu": openSerialEmu,
	"sd":         openSD,
	"sd-emu":     openSDEmu,
	"usb":        openUSB,
	"usb-emu":    openUSBEmu,
}

// Kinds lists the DUT kinds this build knows.
func Kinds() []string {
	out := make([]string, 0, len(openers))
	for k := range openers {
		out = append(out, k)
	}
	return out
}

// Open opens the DUT named by spec.
func Open(ctx context.Context, spec string, opt Options) (*DUT, error) {
	base, list := splitFaults(spec)
	kind, arg, _ := strings.Cut(base, ":")
	open, ok := openers[kind]
	if !ok {
		return nil, fmt.Errorf("dut: unknown DUT %q (want %s)", spec, Usage)
	}
	f, err := parseFaults(kind, list)
	if err != nil {
		return nil, err
	}
	opt.faults = f
	d := &DUT{Spec: spec}
	if err := open(ctx, d, arg, opt); err != nil {
		d.Close()
		return nil, err
	}
	if opt.Trace != nil {
		now := opt.TraceClock
		if now == nil {
			now = time.Now
		}
		d.Link = trace.WrapCase(d.Link, opt.Trace, now, opt.TraceCase)
	}
	return d, nil
}

// newDevice makes the reference device an emulated DUT serves.
func newDevice(d *DUT, opt Options) (*device.Device, error) {
	var st store.Store
	if opt.StatePath != "" {
		f, err := store.OpenFile(opt.StatePath)
		if err != nil {
			return nil, fmt.Errorf("dut: %w", err)
		}
		st = f
	} else {
		st = store.NewMemory()
	}
	d.onClose(st.Close)
	d.Device = device.New(st, opt.Device)
	return d.Device, nil
}

// newCard makes the reference device an emulated DUT serves, behind the
// faults its DUT string names; atr is the ATR the emulator reports.
func newCard(d *DUT, opt Options, atr []byte) (emulator.Card, error) {
	dev, err := newDevice(d, opt)
	if err != nil {
		return nil, err
	}
	return opt.faults.card(d, dev, atr)
}

func openRef(ctx context.Context, d *DUT, arg string, opt Options) error {
	if arg != "" {
		return fmt.Errorf("dut: ref takes no argument, got %q", arg)
	}
	return openDirect(d, opt, "ref", emulator.ATR(emulator.FormSIM))
}

// openDirect serves a new reference device, behind the faults its DUT
// string names, on the in-process link, answering atr.
func openDirect(d *DUT, opt Options, name string, atr []byte) error {
	card, err := newCard(d, opt, atr)
	if err != nil {
		return err
	}
	d.Link = link.NewDirect(card, name, atr)
	return nil
}

// openReplay answers from a recorded trace: the commands must come in the
// recorded order.
func openReplay(ctx context.Context, d *DUT, path string, opt Options) error {
	if path == "" {
		return fmt.Errorf("dut: replay needs a trace file, as in replay:run.pcapng")
	}
	l, err := trace.Replay(path)
	if err != nil {
		return err
	}
	d.Link = l
	return nil
}

// The reference device is what the emulators and the in-process link serve.
var (
	_ emulator.Card        = (*device.Device)(nil)
	_ link.Processor       = (*device.Device)(nil)
	_ link.PowerController = (*device.Device)(nil)
)
