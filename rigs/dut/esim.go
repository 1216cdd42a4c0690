package dut

import (
	"context"
	"fmt"

	"github.com/spdlab/spdlab/emulator/esim"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/rigs/link"
)

// eSIMEID is the EID the emulated eUICC reports (ES10c GetEID).
var eSIMEID = []byte{0x89, 0x04, 0x90, 0x32, 0x53, 0x50, 0x44, 0x4C, 0x41, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01}

// openESIMEmu serves a new reference device as the SPD application of an
// emulated eUICC (emulator/esim): logical channels 0..3 beside an ISD-R,
// and the eUICC ATR. The link is in-process.
func openESIMEmu(ctx context.Context, d *DUT, arg string, opt Options) error {
	if arg != "" {
		return fmt.Errorf("dut: esim-emu takes no argument, got %q", arg)
	}
	dev, err := newDevice(d, opt)
	if err != nil {
		return err
	}
	card := esim.New(device.NewSessions(dev), eSIMEID)
	card.Mutant = opt.Device.Mutant // a card-OS mutant of faulty:NAME@esim-emu
	d.Link = link.NewDirect(card, "esim-emu", card.ATR())
	return nil
}
