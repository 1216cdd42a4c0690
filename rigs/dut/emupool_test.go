package dut

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/link"
)

// TestEmulatorKeptForTheNextDevice: with KeepEmulators, a serial-emu or
// sd-emu device opened after another was closed is reached through the
// same pty or directory and is a new blank device, while the closed one's
// link refuses requests; one opened while
// another is open gets an emulator of its own; ReleaseIdleEmulators stops
// the idle ones. Without KeepEmulators, closing the device stops its
// emulator.
func TestEmulatorKeptForTheNextDevice(t *testing.T) {
	ctx := context.Background()
	is, err := issuer.Generate("emulator pool test")
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{"serial-emu", "sd-emu"} {
		t.Run(spec, func(t *testing.T) {
			t.Cleanup(func() { ReleaseIdleEmulators() })
			open := func() (*DUT, string) {
				t.Helper()
				d, err := Open(ctx, spec, Options{KeepEmulators: true})
				if err != nil {
					t.Fatal(err)
				}
				_, path, _ := strings.Cut(d.Link.String(), ":")
				return d, path
			}
			first, path := open()
			if _, err := is.Personalise(ctx, spd.NewClient(first.Link), benchProfile(1)); err != nil {
				t.Fatal(err)
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			second, again := open()
			defer second.Close()
			if again != path {
				t.Fatalf("the second device is at %s, not at the idle %s", again, path)
			}
			if second.Device == first.Device {
				t.Fatal("the second device is the first one")
			}
			if _, err := first.Link.Exchange(ctx, spd.Select().MustBytes()); !errors.Is(err, link.ErrClosed) {
				t.Fatalf("the closed device's link, once its emulator serves the next: %v, want link.ErrClosed", err)
			}
			sel, err := spd.NewClient(second.Link).Select(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if sel.State != spd.StateBlank {
				t.Fatalf("the device swapped in is in state %v, not blank", sel.State)
			}
			third, other := open()
			if other == path {
				t.Fatalf("two devices open at once share %s", path)
			}
			if _, err := spd.NewClient(third.Link).Select(ctx); err != nil {
				t.Fatal(err)
			}
			if err := third.Close(); err != nil {
				t.Fatal(err)
			}
			if err := ReleaseIdleEmulators(); err != nil {
				t.Fatal(err)
			}
			if spec == "sd-emu" {
				if _, err := os.Stat(other); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("the directory of a released emulator: %v", err)
				}
				if _, err := os.Stat(path); err != nil {
					t.Fatalf("the directory of the emulator in use: %v", err)
				}
			}
			if _, err := spd.NewClient(second.Link).Select(ctx); err != nil {
				t.Fatalf("the device in use after the idle emulators were released: %v", err)
			}
			if spec == "sd-emu" {
				alone, err := Open(ctx, spec, Options{})
				if err != nil {
					t.Fatal(err)
				}
				_, dir, _ := strings.Cut(alone.Link.String(), ":")
				if dir == path {
					t.Fatal("a device opened without KeepEmulators took a kept emulator")
				}
				if err := alone.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("the directory of a device opened without KeepEmulators, once closed: %v", err)
				}
			}
		})
	}
}
