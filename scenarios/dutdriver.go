package scenarios

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/spdlab/spdlab/emulator/fault"
	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/dut"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/scenarios/ics"
)

// DUTDriver drives any device that rigs/dut can open from DUT strings.
//
// An emulated DUT (ref, *-emu, faulty:) gives a new blank reference device
// on every Open. A physical DUT is a set of samples, one DUT string each
// (pcsc:READER, serial:PATH, usb:VID:PID, sd:DIR); Open takes a free sample
// and returns it to blank the way its ICS says (TEST ERASE with the lab's
// test issuer, or the vendor's reset hook), so that every case that needs a
// blank device runs on it.
type DUTDriver struct {
	// Specs names the samples, one DUT string each. An emulated DUT takes
	// exactly one string.
	Specs []string
	// ICS is the device's statement. Nil means the reference device's
	// (scenarios/ics), which only an emulated DUT may use.
	ICS     *ics.ICS
	Options dut.Options
	// IssuerKeys is the issuer the device trusts; nil uses the lab's test
	// issuer (TestIssuer).
	IssuerKeys *issuer.Issuer
	// HookTimeout bounds one run of the vendor's reset hook (default 2 min).
	HookTimeout time.Duration
	// Against, when "ref", gives every device a reference twin that runs
	// in lockstep; Divergences lists where they first differed.
	Against string
	// Share is Profile.Share: how many of the rig's devices this process
	// may hold, when the processes of a parallel run share the rig.
	Share int

	diff    differential
	mu      sync.Mutex
	inUse   map[int]bool
	powerOK map[int]bool // samples whose link can cycle power (Probe)
	rawOK   map[int]bool // samples whose link can exchange raw (Probe)
	probed  bool

	caseMutants map[string]string // MutateCases
}

var _ Driver = (*DUTDriver)(nil)

// NewDUTDriver checks that specs and the statement go together: every
// string names a DUT kind this build knows, an emulated DUT stands alone,
// and a physical DUT comes with an ICS.
func NewDUTDriver(specs []string, s *ics.ICS) (*DUTDriver, error) {
	if len(specs) == 0 {
		return nil, errors.New("scenarios: no DUT named")
	}
	emulated := 0
	for _, sp := range specs {
		if dut.Emulated(sp) {
			emulated++
		}
	}
	switch {
	case emulated > 0 && len(specs) > 1:
		return nil, fmt.Errorf("scenarios: %s is emulated and makes its own devices; name it alone", strings.Join(specs, ", "))
	case emulated == 0 && s == nil:
		return nil, fmt.Errorf("scenarios: %s is a physical device: give its implementation conformance statement (--ics FILE; `spdlab ics template` writes one to fill)", strings.Join(specs, ", "))
	case emulated == 0 && len(specs) > s.Samples.Count:
		return nil, fmt.Errorf("scenarios: %d samples named but the ICS says the vendor supplies %d (samples.count)", len(specs), s.Samples.Count)
	}
	if s == nil {
		s = ics.ReferenceFor(specs[0])
	}
	return &DUTDriver{Specs: specs, ICS: s}, nil
}

// options are the options devices are opened with: d.Options, with an
// emulated device made to the capacities of the statement (SPEC.md section
// 11), where d.Options leaves them unset. An emulated DUT run with an ICS
// emulates the product the statement describes; without one, the
// reference device's statement gives the reference capacities.
func (d *DUTDriver) options() dut.Options {
	o := d.Options
	o.Device = withCapacities(o.Device, d.statement().Capacities)
	return o
}

// withCapacities is c with each capacity it leaves unset taken from caps.
func withCapacities(c device.Config, caps ics.Capacities) device.Config {
	for _, f := range []struct {
		v   *int
		cap int
	}{
		{&c.MaxLedger, caps.Ledger}, {&c.MaxTokens, caps.Tokens}, {&c.MaxTransfers, caps.Transfers}, {&c.MaxImports, caps.Imports},
	} {
		if *f.v == 0 {
			*f.v = f.cap
		}
	}
	return c
}

// Emulated reports whether the driver makes its devices itself.
func (d *DUTDriver) Emulated() bool { return len(d.Specs) == 1 && dut.Emulated(d.Specs[0]) }

func (d *DUTDriver) statement() *ics.ICS {
	if d.ICS == nil {
		return ics.ReferenceFor(d.Specs[0])
	}
	return d.ICS
}

// Profile implements Driver: the ICS's features, and the rig abilities of
// the DUT kind (an emulated device can be torn and power-cycled, and its
// link exchanges raw; a sample can be power-cycled, or exchange raw, when
// its link can, as Probe found).
func (d *DUTDriver) Profile() Profile {
	s := d.statement()
	caps := map[Capability]bool{}
	for _, f := range Features {
		caps[f] = s.Has(string(f))
	}
	p := Profile{Name: strings.Join(d.Specs, " + "), Capabilities: caps, ICS: s, Share: d.Share}
	caps[Fresh] = true // the ICS guarantees a reset (ics.Parse)
	if d.Emulated() {
		caps[Tearing] = true
		caps[PowerCycle] = true
		caps[Disposable] = true
		caps[CardRemoval] = dut.NamesRemoval(d.Specs[0])
		caps[RawExchange] = true // every emulated DUT's link is a link.RawExchanger
		if strings.HasPrefix(d.Specs[0], "pcsc-emu") {
			p.MaxDevices = dut.PCSCEmuSlots
		}
		return p
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	caps[PowerCycle] = d.probed && len(d.powerOK) == len(d.Specs)
	caps[RawExchange] = d.probed && len(d.rawOK) == len(d.Specs)
	caps[Disposable] = s.Samples.Reset == ics.ResetHook
	p.MaxDevices = len(d.Specs)
	return p
}

// Identity is a sample as the lab found it before the run.
type Identity struct {
	Spec     string
	Reader   string // the link's name
	ATR      string // hex, empty when the link reports none
	DeviceID string // hex, empty while blank
	State    spd.State
}

// Probe opens every sample once, before any case, and reads what it is:
// ATR, life-cycle state, device ID. A sample that cannot be opened or does
// not answer SELECT with the SPD application is a set-up error: the run
// must not start. For an emulated DUT it opens one new device.
func (d *DUTDriver) Probe(ctx context.Context) ([]Identity, error) {
	var out []Identity
	power, raw := map[int]bool{}, map[int]bool{}
	for i, sp := range d.Specs {
		u, err := dut.Open(ctx, sp, d.options())
		if err != nil {
			return nil, fmt.Errorf("scenarios: opening %s: %w", sp, err)
		}
		id := Identity{Spec: sp, Reader: u.Link.String()}
		if a, ok := u.Link.(link.ATRer); ok {
			id.ATR = strings.ToUpper(hex.EncodeToString(a.ATR()))
		}
		if _, ok := u.Link.(link.PowerCycler); ok {
			power[i] = true
		}
		if _, ok := link.As[link.RawExchanger](u.Link); ok {
			raw[i] = true
		}
		sel, err := spd.NewClient(u.Link).Select(ctx)
		cerr := u.Close()
		if err != nil {
			return nil, fmt.Errorf("scenarios: %s does not answer SELECT of the SPD application: %w", sp, err)
		}
		if cerr != nil {
			return nil, fmt.Errorf("scenarios: closing %s: %w", sp, cerr)
		}
		id.State = sel.State
		if sel.DeviceID != nil {
			id.DeviceID = strings.ToUpper(hex.EncodeToString(sel.DeviceID))
		}
		out = append(out, id)
	}
	d.mu.Lock()
	d.powerOK, d.rawOK, d.probed = power, raw, true
	d.mu.Unlock()
	return out, nil
}

// Warm readies, before the first case, every slot of an emulated DUT
// whose devices share a bounded set of them (the profile's MaxDevices:
// pcsc-emu's vpcd slots): it opens that many devices at once and closes
// them. Each slot then keeps its connection, and a case's device is
// swapped in behind it and announced with a reset, so no case waits for
// pcscd to poll a card into a slot it has not used yet (the first case
// that needed a second device waited about 0.4 s for it). Nothing is
// exchanged with the devices. A run in several processes must not: the
// slots are theirs. A failure leaves the slots to the cases, which open
// their own devices as they would have.
func (d *DUTDriver) Warm(ctx context.Context) error {
	n := d.Profile().MaxDevices
	if !d.Emulated() || n < 2 {
		return nil
	}
	var errs []error
	var devs []*Device
	for range n {
		dev, err := d.Open(ctx)
		if err != nil {
			errs = append(errs, err)
			break
		}
		devs = append(devs, dev)
	}
	for _, dev := range devs {
		errs = append(errs, dev.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scenarios: opening %d devices of %s before the cases: %w", n, d.Specs[0], err)
	}
	return nil
}

// Open implements Driver.
func (d *DUTDriver) Open(ctx context.Context) (*Device, error) {
	if d.Emulated() {
		u, err := dut.Open(ctx, d.emulatedSpec(), d.options())
		if err != nil {
			return nil, err
		}
		dev := &Device{Link: u.Link, Close: u.Close}
		if u.Device != nil {
			dev.TearAt = func(n int) { u.TearAt(n) }
		}
		if r := u.Removal(); r != nil {
			dev.PullDuring = func(n int, after bool) {
				mode := fault.RemoveBeforeCommand
				if after {
					mode = fault.RemoveAfterCommand
				}
				r.RemoveDuring(n, mode)
			}
			dev.Reinsert = r.Insert
		}
		return d.withTwin(ctx, dev)
	}
	i, err := d.take()
	if err != nil {
		return nil, err
	}
	u, err := d.blank(ctx, i)
	if err != nil {
		d.give(i)
		return nil, err
	}
	var once sync.Once
	return d.withTwin(ctx, &Device{Link: u.Link, Close: func() error {
		err := u.Close()
		once.Do(func() { d.give(i) })
		return err
	}})
}

func (d *DUTDriver) take() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inUse == nil {
		d.inUse = map[int]bool{}
	}
	for i := range d.Specs {
		if !d.inUse[i] {
			d.inUse[i] = true
			return i, nil
		}
	}
	return 0, fmt.Errorf("scenarios: all %d samples are in use", len(d.Specs))
}

func (d *DUTDriver) give(i int) {
	d.mu.Lock()
	delete(d.inUse, i)
	d.mu.Unlock()
}

// blank opens sample i and returns it to blank by the ICS's method, then
// checks that SELECT shows state blank.
func (d *DUTDriver) blank(ctx context.Context, i int) (*dut.DUT, error) {
	spec := d.Specs[i]
	s := d.statement()
	if s.Samples.Reset == ics.ResetHook {
		if err := d.runHook(ctx, spec); err != nil {
			return nil, err
		}
	}
	u, err := dut.Open(ctx, spec, d.options())
	if err != nil {
		return nil, fmt.Errorf("scenarios: opening sample %s: %w", spec, err)
	}
	c := spd.NewClient(u.Link)
	if s.Samples.Reset == ics.ResetTestErase {
		if err := d.Issuer().Erase(ctx, c); err != nil {
			u.Close()
			return nil, fmt.Errorf("scenarios: returning sample %s to blank with TEST ERASE (ICS samples.reset: test-erase): %w", spec, err)
		}
	}
	sel, err := c.Select(ctx)
	if err == nil && sel.State != spd.StateBlank {
		err = fmt.Errorf("state is %v", sel.State)
	}
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("scenarios: sample %s is not blank after its reset (%s): %w", spec, s.Samples.Reset, err)
	}
	// End the session the check opened, as a fresh device would have none.
	if r, ok := u.Link.(link.Resetter); ok {
		if _, err := r.Reset(ctx, false); err != nil {
			u.Close()
			return nil, fmt.Errorf("scenarios: warm reset of sample %s: %w", spec, err)
		}
	} else if _, err := c.Transmit(ctx, selectOther); err != nil {
		u.Close()
		return nil, fmt.Errorf("scenarios: deselecting sample %s: %w", spec, err)
	}
	return u, nil
}

// runHook runs the vendor's reset hook for one sample: `sh -c HOOK` with
// SPDLAB_SAMPLE set to the sample's DUT string, bounded by HookTimeout.
func (d *DUTDriver) runHook(ctx context.Context, spec string) error {
	hook := d.statement().Samples.Hook
	timeout := d.HookTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, "sh", "-c", hook)
	cmd.Env = append(os.Environ(), "SPDLAB_SAMPLE="+spec)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scenarios: reset hook %q for sample %s: %w: %s", hook, spec, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// selectOther is SELECT of an AID no SPD holds: it ends the session
// (SPD-APP-1) on a link that cannot reset.
var selectOther = apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x04, P2: 0x00, Data: []byte{0xA0, 0x00, 0x00, 0x00, 0x03, 0x10, 0x10}, Ne: 256}

// Issuer implements Driver.
func (d *DUTDriver) Issuer() *issuer.Issuer {
	if d.IssuerKeys != nil {
		return d.IssuerKeys
	}
	return TestIssuer()
}

var (
	testIssuerOnce sync.Once
	testIssuer     *issuer.Issuer
)

// TestIssuer is the lab's test issuer: fixed CA and host keys derived from
// public seeds, so that runs are repeatable. It must never sign a
// production device: every device it personalises is a test sample
// (SPEC.md section 12) that its CA can erase.
func TestIssuer() *issuer.Issuer {
	testIssuerOnce.Do(func() {
		is, err := issuer.New("spdlab test issuer", seededKey("spdlab test CA"), seededKey("spdlab test host"))
		if err != nil {
			panic(fmt.Sprintf("scenarios: test issuer: %v", err))
		}
		testIssuer = is
	})
	return testIssuer
}

func seededKey(seed string) *ecdsa.PrivateKey {
	for i := 0; ; i++ {
		h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", seed, i))
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h[:]); err == nil {
			return k
		}
	}
}

// withTwin gives dev its reference twin in a differential run.
func (d *DUTDriver) withTwin(ctx context.Context, dev *Device) (*Device, error) {
	t, err := d.twin(ctx, dev)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return t, nil
}
