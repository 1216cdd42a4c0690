package scenarios

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	emuserial "github.com/spdlab/spdlab/emulator/serial"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/scenarios/ics"
)

func TestNewDUTDriverRefusesIncoherentSetUps(t *testing.T) {
	for _, tc := range []struct {
		specs []string
		s     *ics.ICS
		want  string
	}{
		{[]string{"serial:/dev/ttyUSB0"}, nil, "give its implementation conformance statement"},
		{[]string{"ref", "usb-emu"}, nil, "name it alone"},
		{[]string{"serial:/a", "serial:/b", "serial:/c"}, ics.Reference(), "the vendor supplies 2"},
		{nil, nil, "no DUT"},
	} {
		if _, err := NewDUTDriver(tc.specs, tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewDUTDriver(%q): %v, want an error saying %q", tc.specs, err, tc.want)
		}
	}
}

// vendorCard is a device whose vendor resets it by its own means: when the
// reset hook has left a request file naming this sample, the next command
// finds a new blank device.
type vendorCard struct {
	mu      sync.Mutex
	dev     *device.Device
	request string // path the hook writes
	spec    string // the DUT string the hook must be given
	resets  int
	wrong   []string
}

func (c *vendorCard) current() *device.Device {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, err := os.ReadFile(c.request); err == nil {
		os.Remove(c.request)
		if got := strings.TrimSpace(string(b)); got != c.spec {
			c.wrong = append(c.wrong, got)
		} else {
			c.dev = device.New(store.NewMemory(), device.Config{})
			c.resets++
		}
	}
	return c.dev
}

func (c *vendorCard) Process(cmd []byte) []byte { return c.current().Process(cmd) }
func (c *vendorCard) PowerOn()                  { c.current().PowerOn() }
func (c *vendorCard) PowerOff()                 { c.current().PowerOff() }
func (c *vendorCard) Reset()                    { c.current().Reset() }

func TestVendorHookReturnsSampleToBlank(t *testing.T) {
	dir := t.TempDir()
	card := &vendorCard{dev: device.New(store.NewMemory(), device.Config{}), request: filepath.Join(dir, "reset-request")}
	em := emuserial.New(card, emuserial.Config{})
	path, err := em.Start()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer em.Close()
	go em.Run(context.Background())
	spec := "serial:" + path
	card.mu.Lock()
	card.spec = spec
	card.mu.Unlock()

	stmt := ics.Reference()
	stmt.Samples.Reset, stmt.Samples.Hook = ics.ResetHook, `echo "$SPDLAB_SAMPLE" > `+card.request
	d, err := NewDUTDriver([]string{spec}, stmt)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids, err := d.Probe(ctx)
	if err != nil || len(ids) != 1 || ids[0].State != spd.StateBlank {
		t.Fatalf("Probe: %+v, %v", ids, err)
	}
	if p := d.Profile(); !p.Has(Fresh) || p.Has(Tearing) || p.MaxDevices != 1 {
		t.Fatalf("profile %+v: want fresh devices, no tearing, one sample", p)
	}
	for round := 1; round <= 2; round++ {
		dev, err := d.Open(ctx)
		if err != nil {
			t.Fatalf("round %d: Open: %v", round, err)
		}
		if _, err := d.Open(ctx); err == nil {
			t.Fatal("a second Open of the only sample succeeded")
		}
		c := spd.NewClient(dev.Link)
		p := TestProfile()
		if _, err := TestIssuer().Personalise(ctx, c, p); err != nil {
			t.Fatalf("round %d: personalising the sample: %v", round, err)
		}
		if err := dev.Close(); err != nil {
			t.Fatal(err)
		}
	}
	card.mu.Lock() // the emulator's goroutine may still be in current()
	resets, wrong := card.resets, card.wrong
	card.mu.Unlock()
	if resets != 2 || len(wrong) != 0 {
		t.Fatalf("the hook reset the sample %d times (want 2), wrong sample names %q", resets, wrong)
	}

	// A hook that leaves the sample personalised (as round 2 left it) is
	// caught.
	stmt.Samples.Hook = "true"
	if _, err := d.Open(ctx); err == nil || !strings.Contains(err.Error(), "not blank after its reset") {
		t.Fatalf("Open after a hook that did nothing: %v, want 'not blank after its reset'", err)
	}
	stmt.Samples.Hook = "echo vendor tool failed >&2; exit 3"
	if _, err := d.Open(ctx); err == nil || !strings.Contains(err.Error(), "vendor tool failed") {
		t.Fatalf("Open with a failing hook: %v, want the hook's output", err)
	}
}

func TestTestEraseReturnsPhysicalSampleToBlank(t *testing.T) {
	card := device.New(store.NewMemory(), device.Config{})
	em := emuserial.New(card, emuserial.Config{})
	path, err := em.Start()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer em.Close()
	go em.Run(context.Background())
	d, err := NewDUTDriver([]string{"serial:" + path}, ics.Reference())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for round := 1; round <= 2; round++ {
		dev, err := d.Open(ctx)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if _, err := TestIssuer().Personalise(ctx, spd.NewClient(dev.Link), TestProfile()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		dev.Close()
	}
	// A production device (no DF5F) cannot be erased: the lab says so.
	dev, err := d.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := TestProfile()
	p.TestSample = false
	if _, err := TestIssuer().Personalise(ctx, spd.NewClient(dev.Link), p); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	if _, err := d.Open(ctx); err == nil || !strings.Contains(err.Error(), "TEST ERASE") {
		t.Fatalf("Open of a production device: %v, want a TEST ERASE failure", err)
	}
}
