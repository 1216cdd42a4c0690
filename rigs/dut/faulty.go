package dut

import (
	"context"
	"fmt"
	"strings"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/reference/device"
)

// openFaulty serves a new reference device with one deliberate defect, a
// mutant of the catalogue device.Mutants, for proving the conformance
// suite fails a device that has it:
//
//	faulty:NAME           in process, as ref
//	faulty:NAME@usb-emu   behind the in-process USB CCID emulator, as usb-emu
//	faulty:NAME@esim-emu  the SPD application of the emulated eUICC, as esim-emu
//
// Faults go before the colon, as for ref: faulty+removal:NAME is the mutant
// in a slot the lab can pull it from.
func openFaulty(ctx context.Context, d *DUT, arg string, opt Options) error {
	name, transport, _ := strings.Cut(arg, "@")
	if _, ok := device.LookupMutant(name); !ok {
		return fmt.Errorf("dut: faulty needs a mutant of device.Mutants (make mutants lists them), not %q", name)
	}
	opt.Device.Mutant = name
	switch transport {
	case "", "ref":
		return openDirect(d, opt, "faulty:"+name, emulator.FaultyATR(emulator.FormSIM, name))
	case "usb-emu":
		return openUSBEmu(ctx, d, "", opt)
	case "esim-emu":
		if opt.faults != (faults{}) {
			return fmt.Errorf("dut: faulty:%s@esim-emu takes no faults: they apply in process or behind usb-emu", name)
		}
		return openESIMEmu(ctx, d, "", opt)
	}
	return fmt.Errorf("dut: faulty:%s@%s: %s", name, transport, faultyTransports)
}

// faultyTransports says where a mutant runs.
const faultyTransports = "a mutant runs in process (ref), behind usb-emu or in esim-emu"

// FaultyModes are a few of the mutants faulty:NAME serves, with what each
// does wrong; faulty:NAME takes any name of device.Mutants.
var FaultyModes = map[string]string{
	"status-9000":   "answers 9000 where the device refused a command",
	"stale-result":  "answers every PAY after the first with the first payment's signed result",
	"stale-balance": "reports, after its first payment, the balance it had before it",
}
