package dut

import (
	"strings"
	"testing"
)

// Check accepts every form Open reads and refuses a string that does not
// parse with what is wrong, without opening anything.
func TestCheck(t *testing.T) {
	for _, spec := range []string{"ref", "ref+latency=2ms", "usb-emu+t1", "serial-emu+noise=0.0002", "sd-emu",
		"esim-emu", "pcsc-emu", "pcsc-emu:1", "pcsc", "pcsc:ACS ACR39U 00 00", "serial:/dev/ttyUSB0",
		"usb:072f:90cc", "sd:/media/sdcard", "replay:run.pcapng", "faulty:stale-balance", "faulty:status-9000@usb-emu", "faulty:esim-verified-shared@esim-emu", "faulty+removal:pay-commit-deferred"} {
		if err := Check(spec); err != nil {
			t.Errorf("Check(%q): %v", spec, err)
		}
	}
	for spec, want := range map[string]string{
		"nonsense":                `unknown DUT "nonsense"`,
		"":                        `unknown DUT ""`,
		"REF":                     `unknown DUT "REF"`,
		"ref:1":                   "ref takes no argument",
		"usb-emu:x":               "usb-emu takes no argument",
		"usb:zz:1":                "usb wants VID:PID in hex",
		"usb:072f":                "usb wants VID:PID in hex",
		"serial":                  "serial needs a port path",
		"sd:":                     "sd needs the card's mount point",
		"replay":                  "replay needs a trace file",
		"pcsc-emu:7":              "vpcd slot number",
		"faulty:no-such-mutant":   "faulty needs a mutant",
		"faulty:stale-balance@sd": "runs in process (ref), behind usb-emu or in esim-emu",
		"ref+latency=fast":        "fault latency=fast",
		"pcsc+latency=1ms":        "pcsc takes no faults",
		"usb-emu+noise=0.0001":    "noise is for serial-emu",
	} {
		err := Check(spec)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "dut: ") {
			t.Errorf("Check(%q) = %v, want an error with %q", spec, err, want)
		}
	}
}
