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
// Options.KeepEmulators the pty and port of an earlier device of the same
// DUT string are used again when they are idle (emupool.go).
func openSerialEmu(ctx context.Context, d *DUT, arg string, opt Options) error {
	card, err := newCard(d, opt, emulator.ATR(emulator.FormUART))
	if err != nil {
		return err
	}
	return openEmulated(ctx, d, opt.KeepEmulators, card,
		func(card emulator.Card) (string, func(emulator.Card) error, func() error, error) {
			em := emuserial.New(card, emuserial.Config{Line: opt.faults.line(d)})
			path, err := em.Start()
			if err != nil {
				em.Close()
				return "", nil, nil, err
			}
			return path, em.Swap, em.Close, nil
		},
		func(ctx context.Context, path string) (keptRig, error) {
			return serialrig.OpenConfig(ctx, path, serialrig.Config{})
		})
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
// Options.KeepEmulators the directory and channel of an earlier device of
// the same DUT string are used again when they are idle (emupool.go).
func openSDEmu(ctx context.Context, d *DUT, arg string, opt Options) error {
	card, err := newCard(d, opt, emulator.ATR(emulator.FormSD))
	if err != nil {
		return err
	}
	return openEmulated(ctx, d, opt.KeepEmulators, card,
		func(card emulator.Card) (string, func(emulator.Card) error, func() error, error) {
			dir, err := os.MkdirTemp("", "spdlab-sd-")
			if err != nil {
				return "", nil, nil, fmt.Errorf("dut: %w", err)
			}
			em := sdcard.New(card, dir, sdcard.Config{})
			stop := func() error { return errors.Join(em.Close(), os.RemoveAll(dir)) }
			if err := em.Start(); err != nil {
				return "", nil, nil, errors.Join(err, stop())
			}
			return dir, em.Swap, stop, nil
		},
		func(ctx context.Context, dir string) (keptRig, error) {
			return sdrig.OpenConfig(ctx, dir, sdrig.Config{})
		})
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
	atr := emulator.FaultyATR(emulator.FormUSB, opt.Device.Mutant)
	card, err := newCard(d, opt, atr)
	if err != nil {
		return err
	}
	r := usbccid.New(card, usbccid.Config{ATR: atr})
	d.onClose(r.Close)
	l, err := usb.New(ctx, r, usb.Config{Name: "usb-emu"})
	if err != nil {
		return err
	}
	d.Link = l
	return nil
}
