package dut

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/sdcard"
	emuserial "github.com/spdlab/spdlab/emulator/serial"
	"github.com/spdlab/spdlab/emulator/usbccid"
	sdrig "github.com/spdlab/spdlab/rigs/sdcard"
	serialrig "github.com/spdlab/spdlab/rigs/serial"
	"github.com/spdlab/spdlab/rigs/usb"
)

func openSerial(ctx context.Context, d *DUT, path string, opt Options) error {
	if path == "" {
		return fmt.Errorf("dut: serial needs a port path, as in serial:/dev/ttyUSB0")
	}
	p, err := serialrig.OpenConfig(ctx, path, serialrig.Config{})
	if err != nil {
		return err
	}
	d.Link = p
	return nil
}

// openSerialEmu serves a new reference device on a pseudo-terminal and
// opens that pty with the serial rig, exactly as a USB-serial adapter. With
// Options.KeepEmulators the pty of an earlier device of the same DUT
// string is used again when one is idle (emupool.go).
func openSerialEmu(ctx context.Context, d *DUT, arg string, opt Options) error {
	card, err := newCard(d, opt, emulator.ATR(emulator.FormUART))
	if err != nil {
		return err
	}
	s, err := takeEmulator(d, d.Spec, opt.KeepEmulators, card, func(card emulator.Card) (*emuSession, error) {
		em := emuserial.New(card, emuserial.Config{Line: opt.faults.line(d)})
		path, err := em.Start()
		if err != nil {
			em.Close()
			return nil, err
		}
		return &emuSession{path: path, swap: em.Swap, stop: em.Close}, nil
	})
	if err != nil {
		return err
	}
	if err := openSerial(ctx, d, s.path, opt); err != nil {
		s.failed = true
		return err
	}
	return nil
}

func openSD(ctx context.Context, d *DUT, dir string, opt Options) error {
	if dir == "" {
		return fmt.Errorf("dut: sd needs the card's mount point, as in sd:/media/sdcard")
	}
	c, err := sdrig.OpenConfig(ctx, dir, sdrig.Config{})
	if err != nil {
		return err
	}
	d.Link = c
	return nil
}

// openSDEmu serves a new reference device through a file channel in a
// fresh directory standing for the card's mount point. With
// Options.KeepEmulators the directory of an earlier device of the same DUT
// string is used again when one is idle (emupool.go).
func openSDEmu(ctx context.Context, d *DUT, arg string, opt Options) error {
	card, err := newCard(d, opt, emulator.ATR(emulator.FormSD))
	if err != nil {
		return err
	}
	s, err := takeEmulator(d, d.Spec, opt.KeepEmulators, card, func(card emulator.Card) (*emuSession, error) {
		dir, err := os.MkdirTemp("", "spdlab-sd-")
		if err != nil {
			return nil, fmt.Errorf("dut: %w", err)
		}
		em := sdcard.New(card, dir, sdcard.Config{})
		stop := func() error { return errors.Join(em.Close(), os.RemoveAll(dir)) }
		if err := em.Start(); err != nil {
			return nil, errors.Join(err, stop())
		}
		return &emuSession{path: dir, swap: em.Swap, stop: stop}, nil
	})
	if err != nil {
		return err
	}
	if err := openSD(ctx, d, s.path, opt); err != nil {
		s.failed = true
		return err
	}
	return nil
}

func openUSB(ctx context.Context, d *DUT, arg string, opt Options) error {
	vid, pid, err := usb.ParseID(arg)
	if err != nil {
		return fmt.Errorf("dut: usb wants VID:PID in hex, as in usb:072f:90cc: %w", err)
	}
	l, err := usb.OpenDeviceConfig(ctx, vid, pid, usb.Config{Name: "usb:" + strings.ToLower(arg)})
	if err != nil {
		return err
	}
	d.Link = l
	return nil
}

// openUSBEmu puts a new reference device in the slot of the in-process CCID
// reader and speaks CCID to its bulk endpoints with the USB rig.
func openUSBEmu(ctx context.Context, d *DUT, arg string, opt Options) error {
	card, err := newCard(d, opt, emulator.ATR(emulator.FormUSB))
	if err != nil {
		return err
	}
	r := usbccid.New(card, usbccid.Config{})
	d.onClose(r.Close)
	l, err := usb.New(ctx, r, usb.Config{Name: "usb-emu"})
	if err != nil {
		return err
	}
	d.Link = l
	return nil
}
