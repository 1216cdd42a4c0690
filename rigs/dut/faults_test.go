package dut

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"testing/cryptotest"

	"github.com/spdlab/spdlab/emulator/fault"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/link"
)

// TestSameScriptThroughFaults runs the exchange script through emulated
// DUTs with faults of emulator/fault between device and emulator, and
// requires the in-process link's responses byte for byte, and that each
// fault acted.
func TestSameScriptThroughFaults(t *testing.T) {
	cmds := script(t)
	want := run(t, "ref", cmds)
	for _, spec := range []string{"ref+t0", "usb-emu+t1=96+latency=1ms~1ms", "serial-emu+noise=0.0003", "sd-emu+latency=500us"} {
		t.Run(spec, func(t *testing.T) {
			if !Emulated(spec) {
				t.Fatalf("Emulated(%q) = false", spec)
			}
			cryptotest.SetGlobalRandom(t, 7) // as run does, so signatures repeat
			d, err := Open(context.Background(), spec, Options{Device: device.Config{Seed: []byte("same-script")}})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			c := spd.NewClient(d.Link)
			for i, cmd := range cmds {
				resp, err := c.Transmit(context.Background(), cmd)
				if err != nil {
					t.Fatalf("%s: %s: %v", spec, cmd, err)
				}
				if got := resp.Bytes(); !bytes.Equal(got, want[i]) {
					t.Errorf("command %d (%s): %s answered\n% X\nref answered\n% X", i, cmd, spec, got, want[i])
				}
			}
			if len(d.faults) == 0 {
				t.Fatalf("%s: no fault applied", spec)
			}
			for _, f := range d.faults {
				switch f := f.(type) {
				case *fault.Timed:
					if s := f.Stats(); s.Exchanges < 20 || s.Line <= 0 {
						t.Errorf("%s: timed card: %+v", spec, s)
					}
				case *fault.Latency:
					if n, total := f.Added(); n < 20 || total <= 0 {
						t.Errorf("%s: latency added to %d commands, %v", spec, n, total)
					}
				case *fault.Line:
					if c := f.Counts(); c.Flipped+c.Dropped+c.Duplicated == 0 {
						t.Errorf("%s: the noisy line garbled nothing in %d bytes", spec, c.Bytes)
					}
				default:
					t.Errorf("%s: unexpected fault %T", spec, f)
				}
			}
		})
	}
}

func TestFaultSpecs(t *testing.T) {
	for _, tt := range []struct{ spec, want string }{
		{"pcsc-emu+t1", "takes no faults"},
		{"replay:x.pcapng+t1", "x.pcapng+t1"}, // a path, not faults
		{"usb-emu+noise=0.01", "noise is for serial-emu"},
		{"serial-emu+noise=0.5", "from 0 to 0.001"},
		{"ref+latency=fast", "want a duration"},
		{"ref+latency=1ms~x", "jitter"},
		{"ref+t1=zz", "TA1 byte"},
		{"ref+t1=70", "reserved"},
		{"ref+warp", "unknown fault"},
		{"ref+removal=1", "takes no value"},
	} {
		_, err := Open(context.Background(), tt.spec, Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", tt.spec, err, tt.want)
		}
	}
	if base, list := splitFaults("usb-emu+t1+latency=2ms"); base != "usb-emu" || strings.Join(list, ",") != "t1,latency=2ms" {
		t.Errorf("splitFaults = %q, %q", base, list)
	}
}

// A DUT named with the removal fault has a slot its card can be pulled
// from; one without it has none.
func TestRemovalFault(t *testing.T) {
	for _, spec := range []string{"ref+removal", "usb-emu+removal"} {
		t.Run(spec, func(t *testing.T) {
			ctx := context.Background()
			d, err := Open(ctx, spec, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			r := d.Removal()
			if r == nil || !NamesRemoval(spec) {
				t.Fatalf("%s: no removal slot", spec)
			}
			c := spd.NewClient(d.Link)
			if _, err := c.Select(ctx); err != nil {
				t.Fatal(err)
			}
			r.RemoveDuring(1, fault.RemoveBeforeCommand)
			if _, err := c.Select(ctx); !errors.Is(err, link.ErrRemoved) {
				t.Fatalf("SELECT while the card was pulled: %v, want link.ErrRemoved", err)
			}
			if r.Present() || r.Removals() != 1 {
				t.Fatalf("after the pull: present %v, %d removals", r.Present(), r.Removals())
			}
			r.Insert()
			pc := d.Link.(link.PowerCycler)
			if err := pc.PowerOff(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := pc.PowerOn(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Select(ctx); err != nil {
				t.Fatalf("SELECT once the card is back: %v", err)
			}
		})
	}
	d, err := Open(context.Background(), "ref", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Removal() != nil || NamesRemoval("ref+t1") {
		t.Fatal("a DUT without the removal fault has a removal slot")
	}
}
