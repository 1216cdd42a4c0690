//go:build !cgo

package dut

import (
	"context"
	"errors"
)

// errNoPCSC is what the pcsc and pcsc-emu DUTs answer in a build without
// cgo: rigs/pcsc needs libpcsclite through cgo.
var errNoPCSC = errors.New("dut: this spdlab was built without cgo, so it has no PC/SC (pcsc, pcsc-emu); " +
	"build it with CGO_ENABLED=1 and libpcsclite-dev, or use ref, serial-emu, sd-emu or usb-emu")

func openPCSC(ctx context.Context, d *DUT, arg string, opt Options) error { return errNoPCSC }

func openPCSCEmu(ctx context.Context, d *DUT, arg string, opt Options) error { return errNoPCSC }

// ReleaseIdleSlots has no vpcd slot to let go of in a build without cgo.
func ReleaseIdleSlots() error { return nil }

// IdleSlots is empty in a build without cgo: it holds no vpcd slot.
func IdleSlots() []int { return nil }
