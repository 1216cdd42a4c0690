package dut

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/fault"
)

// Faults of emulator/fault put between an emulated reference device and
// its emulator, named after the DUT kind with "+" (usb-emu+t1+latency=2ms):
//
//	fault          what it does                                        DUTs
//	latency=D      every answer D later (fault.Latency)                ref, usb-emu, serial-emu, sd-emu
//	latency=D~J    ... plus a seeded random delay below J
//	t0, t1         every exchange takes as long as it would on an      ref, usb-emu, serial-emu, sd-emu
//	               ISO/IEC 7816-3 line at the rates of the DUT's ATR,
//	               in protocol T=0 or T=1 (fault.Timed); a torn
//	               command costs the whole waiting time (WT, BWT)
//	t1=TA1         ... at the rates a PPS with TA1 (hex, as 96: Fi 512,
//	               Di 32) agreed
//	noise=P        the serial line flips a bit in, drops and           serial-emu
//	               duplicates each byte with probability P, both
//	               ways (fault.Line); the framing must recover
//	removal        the card can be pulled out of its slot, at once     ref, usb-emu, serial-emu, sd-emu
//	               or in the middle of a chosen command, and put
//	               back (fault.Removal, DUT.Removal): the suite's
//	               card-removal cases
//
// A correct host and device give the same answers through every one of
// them: the conformance suite runs on such DUTs as on the plain ones.
type faults struct {
	latency *fault.LatencyConfig
	timing  fault.Protocol
	timed   bool
	ta1     int // the PPS's TA1, or -1 for the ATR's rates
	noise   *fault.LineNoise
	removal bool
}

// faultKinds are the DUT kinds that take faults.
var faultKinds = map[string]bool{"ref": true, "faulty": true, "usb-emu": true, "serial-emu": true, "sd-emu": true}

// splitFaults cuts the faults off a DUT string's kind: "usb-emu+t1:x"
// gives "usb-emu:x" and "t1".
func splitFaults(spec string) (base string, list []string) {
	kind, arg, hasArg := strings.Cut(spec, ":")
	kind, rest, ok := strings.Cut(kind, "+")
	if !ok {
		return spec, nil
	}
	if hasArg {
		kind += ":" + arg
	}
	return kind, strings.Split(rest, "+")
}

// parseFaults reads the faults named for a DUT of kind.
func parseFaults(kind string, list []string) (faults, error) {
	var f faults
	if len(list) == 0 {
		return f, nil
	}
	if !faultKinds[kind] {
		return f, fmt.Errorf("dut: %s takes no faults (+%s): they apply to ref, faulty (in process or behind usb-emu), usb-emu, serial-emu and sd-emu", kind, strings.Join(list, "+"))
	}
	for _, item := range list {
		name, value, _ := strings.Cut(item, "=")
		switch name {
		case "latency":
			fixed, jitter, _ := strings.Cut(value, "~")
			cfg := fault.LatencyConfig{Seed: 1}
			var err error
			if cfg.Fixed, err = time.ParseDuration(fixed); err != nil || cfg.Fixed < 0 {
				return f, fmt.Errorf("dut: fault latency=%s: want a duration such as latency=2ms or latency=1ms~3ms", value)
			}
			if jitter != "" {
				if cfg.Jitter, err = time.ParseDuration(jitter); err != nil || cfg.Jitter < 0 {
					return f, fmt.Errorf("dut: fault latency=%s: the jitter after ~ must be a duration", value)
				}
			}
			f.latency = &cfg
		case "t0", "t1":
			f.ta1 = -1
			if value != "" {
				ta1, err := strconv.ParseUint(value, 16, 8)
				if err != nil {
					return f, fmt.Errorf("dut: fault %s=%s: want the TA1 byte of a PPS in hex, as %s=96", name, value, name)
				}
				if _, _, err := fault.FiDi(byte(ta1)); err != nil {
					return f, fmt.Errorf("dut: fault %s=%s: %w", name, value, err)
				}
				f.ta1 = int(ta1)
			}
			f.timed, f.timing = true, fault.T0
			if name == "t1" {
				f.timing = fault.T1
			}
		case "noise":
			if kind != "serial-emu" {
				return f, fmt.Errorf("dut: fault noise is for serial-emu, not %s", kind)
			}
			p, err := strconv.ParseFloat(value, 64)
			if err != nil || p < 0 || p > 0.001 {
				return f, fmt.Errorf("dut: fault noise=%s: want a probability per byte from 0 to 0.001, such as noise=0.0002 (above it, frames of extended APDUs rarely arrive whole)", value)
			}
			f.noise = &fault.LineNoise{FlipRate: p, DropRate: p, DupRate: p, Seed: 1}
		case "removal":
			if value != "" {
				return f, fmt.Errorf("dut: fault removal takes no value, got removal=%s", value)
			}
			f.removal = true
		default:
			return f, fmt.Errorf("dut: unknown fault %q (want latency=D, t0[=TA1], t1[=TA1], noise=P or removal)", item)
		}
	}
	return f, nil
}

// card wraps dev, which answers with atr, in the faults: timing innermost,
// so that latency comes on top of the line's time; the slot a card can be
// pulled from outermost, so that the emulator sees the card leave.
func (f faults) card(d *DUT, dev emulator.Card, atr []byte) (emulator.Card, error) {
	card := dev
	if f.timed {
		t, err := fault.TimingFromATR(atr, 0)
		if err != nil {
			return nil, fmt.Errorf("dut: fault %v: %w", f.timing, err)
		}
		t.Protocol = f.timing
		if f.ta1 >= 0 {
			t.Fi, t.Di, _ = fault.FiDi(byte(f.ta1))
		}
		timed, err := fault.NewTimed(card, fault.TimedConfig{Timing: t, ATR: atr})
		if err != nil {
			return nil, fmt.Errorf("dut: fault %v: %w", f.timing, err)
		}
		card = timed
		d.faults = append(d.faults, timed)
	}
	if f.latency != nil {
		l := fault.NewLatency(card, *f.latency)
		card = l
		d.faults = append(d.faults, l)
	}
	if f.removal {
		r := fault.NewRemoval(card)
		card = r
		d.faults = append(d.faults, r)
	}
	return card, nil
}

// line is the serial emulator's Config.Line for the noise fault, nil
// without it.
func (f faults) line(d *DUT) func(io.ReadWriter) io.ReadWriter {
	if f.noise == nil {
		return nil
	}
	noise := *f.noise
	return func(rw io.ReadWriter) io.ReadWriter {
		l := fault.NewLine(rw, noise)
		d.faults = append(d.faults, l)
		return l
	}
}
