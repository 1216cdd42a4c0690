package scenarios

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"

	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/dut"
)

// DUTDriver drives any device that rigs/dut can open from a DUT string.
type DUTDriver struct {
	Spec    string
	Options dut.Options
	// IssuerKeys is the issuer the device trusts; nil uses the lab's test
	// issuer (TestIssuer), which emulated devices accept.
	IssuerKeys *spd.Issuer
}

var _ Driver = (*DUTDriver)(nil)

// Profile implements Driver.
func (d *DUTDriver) Profile() Profile {
	caps := map[Capability]bool{Biometric: true}
	if dut.Emulated(d.Spec) {
		caps[Fresh] = true
		caps[Tearing] = true
		caps[PowerCycle] = true
	}
	p := Profile{Name: d.Spec, Capabilities: caps}
	switch {
	case strings.HasPrefix(d.Spec, "pcsc-emu"):
		p.MaxDevices = dut.PCSCEmuSlots
	case !dut.Emulated(d.Spec):
		p.MaxDevices = 1
	}
	return p
}

// Open implements Driver.
func (d *DUTDriver) Open(ctx context.Context) (*Device, error) {
	u, err := dut.Open(ctx, d.Spec, d.Options)
	if err != nil {
		return nil, err
	}
	dev := &Device{Link: u.Link, Close: u.Close}
	if u.Device != nil {
		dev.TearAt = func(n int) { u.TearAt(n) }
	}
	return dev, nil
}

// Issuer implements Driver.
func (d *DUTDriver) Issuer() *spd.Issuer {
	if d.IssuerKeys != nil {
		return d.IssuerKeys
	}
	return TestIssuer()
}

var (
	testIssuerOnce sync.Once
	testIssuer     *spd.Issuer
)

// TestIssuer is the lab's test issuer: fixed CA and host keys derived from
// public seeds, so that runs are repeatable. It must never sign a
// production device.
func TestIssuer() *spd.Issuer {
	testIssuerOnce.Do(func() {
		is, err := spd.NewIssuer("spdlab test issuer", seededKey("spdlab test CA"), seededKey("spdlab test host"))
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
