// Package scenarios is the spdlab conformance suite: Ginkgo v2 specs that
// drive a device under test (DUT) through the flows of reference/SPEC.md and
// check the invariants of DESIGN.md.
//
// The suite is a library. Define registers every case against a Driver;
// only scenarios/suite_test.go (and `spdlab certify`) call RunSpecs. Every
// case carries typed labels: its stable case ID (TC-PAY-001), the
// requirements it checks (SPD-PAY-1) and the claims behind them (C2). A case
// that needs a capability the driver does not declare is skipped with the
// reason, and the certification report shows it as not applicable.
package scenarios

import (
	"context"

	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/link"
)

// Capability is something a DUT can or cannot do, or let the lab do to it.
type Capability string

// Capabilities a driver declares.
const (
	// Fresh: every Open gives a new device in the blank state, so each
	// case starts from a known state (emulators, the reference).
	Fresh Capability = "fresh-device"
	// Tearing: the lab can cut power at the Nth persistent write.
	Tearing Capability = "tearing"
	// PowerCycle: the link can remove and reapply power.
	PowerCycle Capability = "power-cycle"
	// Biometric: the device has a biometric template slot (VERIFY P2=81).
	Biometric Capability = "biometric"
)

// Profile tells what a DUT is and what it supports.
type Profile struct {
	// Name is the DUT string, for example "usb-emu" or "pcsc:Reader 0".
	Name string
	// Capabilities the DUT has.
	Capabilities map[Capability]bool
	// MaxDevices is how many devices the driver can have open at once
	// (0: no limit). A case that needs more is not applicable.
	MaxDevices int
}

// Has reports whether the profile declares c.
func (p Profile) Has(c Capability) bool { return p.Capabilities[c] }

// Device is one opened device under test.
type Device struct {
	// Link reaches the device. The case that opened it closes it through
	// Close.
	Link link.Link
	// TearAt arms a power cut at the nth persistent write from now; nil
	// unless the profile has Tearing.
	TearAt func(n int)
	// Close releases the device and whatever serves it.
	Close func() error
}

// Driver prepares devices under test for the suite.
type Driver interface {
	// Profile describes the DUT.
	Profile() Profile
	// Open gives a device. With Fresh it is a new blank device each time;
	// without, it is the one physical device in whatever state it is in.
	Open(ctx context.Context) (*Device, error)
	// Issuer holds the issuer CA and host keys the device trusts. For a
	// fresh device the suite personalises it with these.
	Issuer() *spd.Issuer
}
