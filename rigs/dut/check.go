package dut

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/rigs/usb"
)

// Usage lists the forms of a DUT string, for messages that ask for one.
const Usage = "ref, faulty:MODE, esim-emu, usb-emu, serial-emu, sd-emu, pcsc-emu[:SLOT], pcsc[:READER], serial:PATH, usb:VID:PID, sd:DIR or replay:FILE"

// Check tells whether spec is a DUT string Open can read, without opening
// anything: the kind is known, it has the argument its kind needs (and no
// other), and any faults it names (+latency=2ms) parse. A command checks
// its DUT strings with it before any work, so that a mistyped one is a
// usage mistake, not a device that fails to open.
func Check(spec string) error {
	base, list := splitFaults(spec)
	kind, arg, hasArg := strings.Cut(base, ":")
	if _, ok := openers[kind]; !ok {
		return fmt.Errorf("dut: unknown DUT %q (want %s)", spec, Usage)
	}
	if _, err := parseFaults(kind, list); err != nil {
		return err
	}
	switch kind {
	case "ref", "esim-emu", "usb-emu", "serial-emu", "sd-emu":
		if hasArg {
			return fmt.Errorf("dut: %s takes no argument, got %q", kind, arg)
		}
	case "serial", "sd", "replay":
		if arg == "" {
			return fmt.Errorf("dut: %s needs %s, as in %s", kind, map[string]string{
				"serial": "a port path", "sd": "the card's mount point", "replay": "a trace file"}[kind],
				map[string]string{"serial": "serial:/dev/ttyUSB0", "sd": "sd:/media/sdcard", "replay": "replay:run.pcapng"}[kind])
		}
	case "usb":
		if _, _, err := usb.ParseID(arg); err != nil {
			return fmt.Errorf("dut: usb wants VID:PID in hex, as in usb:072f:90cc: %w", err)
		}
	case "pcsc-emu":
		if arg != "" {
			if n, err := strconv.Atoi(arg); err != nil || n < 0 || n >= len(vpcdSlots) {
				return fmt.Errorf("dut: pcsc-emu takes a vpcd slot number 0..%d, not %q", len(vpcdSlots)-1, arg)
			}
		}
	case "faulty":
		name, transport, _ := strings.Cut(arg, "@")
		if _, ok := device.LookupMutant(name); !ok {
			return fmt.Errorf("dut: faulty needs a mutant of device.Mutants (make mutants lists them), not %q", name)
		}
		if transport != "" && transport != "ref" && transport != "usb-emu" && transport != "esim-emu" {
			return fmt.Errorf("dut: faulty:%s@%s: %s", name, transport, faultyTransports)
		}
	}
	return nil
}
