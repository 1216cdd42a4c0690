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

	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/scenarios/ics"
)

// Capability is something a DUT can or cannot do, or let the lab do to it.
// There are two kinds: features of the profile that the device declares in
// its implementation conformance statement (ICS), and abilities of the rig
// that holds it. A case needing an absent capability is not applicable and
// says which ICS entry or rig ability excluded it (see Why).
type Capability string

// Features of the profile a device declares in its ICS (scenarios/ics).
const (
	PayBalance  Capability = "pay-balance"     // PAY kind 01 (SPD-PAY-1)
	PayAccount  Capability = "pay-account"     // PAY kind 02 (SPD-PAY-2)
	PayUses     Capability = "pay-uses"        // PAY kind 03 (SPD-PAY-3)
	Offline     Capability = "offline"         // PAY mode 01 and offline risk limits (SPD-LED-3)
	Tokens      Capability = "tokens"          // GENERATE TOKEN and token payments (SPD-TOK-*)
	Transfers   Capability = "transfers"       // TRANSFER, TRANSFER IN, RECLAIM (SPD-XFR-*)
	Biometric   Capability = "biometric"       // VERIFY P2 81 (SPD-BIO-*)
	Location    Capability = "location"        // allowed regions and adjustments (SPD-VER-1, SPD-ADJ-1)
	Attribute   Capability = "attribute"       // membership tier (SPD-VER-2)
	CertVerify  Capability = "certificate"     // INTERNAL AUTHENTICATE (SPD-VER-3, SPD-KEY-4)
	Media       Capability = "generate-medium" // GENERATE MEDIUM (SPD-MED-1)
	ParseMedium Capability = "parse-medium"    // PARSE MEDIUM (SPD-MED-4)
)

// Features of the profile for media the device reads and keeps.
const (
	ParseMerchant Capability = "parse-merchant" // PARSE MEDIUM P1 01, merchant order codes (SPD-MPM-1)
	StoredMedia   Capability = "stored-media"   // STORE MEDIUM, LIST MEDIA, SHOW MEDIUM (SPD-STM-*)
	ESIM          Capability = "esim"           // eUICC ATR and logical channels (SPD-ESIM-*)
)

// HostAssertion is the feature of host-signed verification outcomes a
// payment carries (profile DF74/DF75, PAY DF76; SPD-HVA-*).
const HostAssertion Capability = "host-assertion"

// Exchange is the feature of EXCHANGE: stored value into uses or another
// currency at a host-signed rate (SPEC.md 4.11, SPD-EXC-*).
const Exchange Capability = "exchange"

// GetDataList is the feature of GET DATA of a tag list: several data
// objects in one command (SPEC.md 4.2.1, SPD-GDL-*).
const GetDataList Capability = "get-data-list"

// Abilities of the rig: what the lab can do to the device it holds.
const (
	// Fresh: the lab can give each case a blank device: a new emulated
	// device, or a physical sample returned to blank by TEST ERASE or the
	// vendor's reset hook.
	Fresh Capability = "fresh-device"
	// Tearing: the lab can cut power at the Nth persistent write.
	Tearing Capability = "tearing"
	// PowerCycle: the link can remove and reapply power.
	PowerCycle Capability = "power-cycle"
	// CardRemoval: the lab can pull the card out of its reader, at once or
	// in the middle of a chosen command, and put it back (an emulated DUT
	// named with the removal fault, usb-emu+removal).
	CardRemoval Capability = "card-removal"
	// RawExchange: the link can send one command APDU and bring back the
	// device's answer as it is, 61xx and 6Cxx unresolved
	// (rigs/link.RawExchanger), so that the device's own response chaining
	// (SPD-APP-5) is seen.
	RawExchange Capability = "raw-exchange"
	// Disposable: the lab may make a device that it cannot return to blank
	// by TEST ERASE (a production personalisation, without DF5F): a new
	// emulated device, or a sample the vendor's reset hook returns to
	// blank whatever it holds.
	Disposable Capability = "disposable-sample"
)

// Features lists every ICS feature, in the order the ICS documents them.
var Features = []Capability{PayBalance, PayAccount, PayUses, Offline, Tokens, Transfers,
	Biometric, Location, Attribute, CertVerify, Media, ParseMedium, ParseMerchant, StoredMedia, ESIM, HostAssertion, Exchange, GetDataList}

// IsFeature reports whether c is a feature a device declares (rather than
// an ability of the rig).
func (c Capability) IsFeature() bool {
	for _, f := range Features {
		if f == c {
			return true
		}
	}
	return false
}

// NotApplicablePrefix starts the Skip message of every case that does not
// apply to a DUT. The reports count only such skips as "not applicable"; a
// spec skipped for any other reason makes the run not a certificate.
const NotApplicablePrefix = "not applicable: "

// Why is the Skip message for a case that needs c on the DUT named dut:
//
//	not applicable: ICS features.biometric is false
//	not applicable: rig lacks tearing (pcsc:Reader 0)
func Why(c Capability, dut string) string {
	if c.IsFeature() {
		return NotApplicablePrefix + "ICS features." + string(c) + " is false"
	}
	return NotApplicablePrefix + "rig lacks " + string(c) + " (" + dut + ")"
}

// Profile tells what a DUT is and what it supports.
type Profile struct {
	// Name is the DUT string, for example "usb-emu" or "pcsc:Reader 0".
	Name string
	// Capabilities the DUT has.
	Capabilities map[Capability]bool
	// MaxDevices is how many devices the driver can have open at once
	// (0: no limit). A case that needs more is not applicable.
	MaxDevices int
	// Share, when above 0, is how many of the rig's devices this process
	// may have open at once: the processes of a parallel run share one
	// rig (certify --procs on pcsc-emu). A case that needs more is
	// deferred (reports.DeferredPrefix) to a process that has the whole
	// rig, not found not applicable.
	Share int
	// ICS is the device's implementation conformance statement; its
	// capacities bound the capacity cases.
	ICS *ics.ICS
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
	// PullDuring pulls the card out of its reader during the nth command
	// from now, before the card sees it or (after) once the card has run
	// it and before its answer leaves; Reinsert puts it back unpowered.
	// Both nil unless the profile has CardRemoval.
	PullDuring func(n int, after bool)
	Reinsert   func()
	// Close releases the device and whatever serves it.
	Close func() error
}

// Driver prepares devices under test for the suite.
type Driver interface {
	// Profile describes the DUT.
	Profile() Profile
	// Open gives a blank device: a new one, or a sample returned to blank.
	Open(ctx context.Context) (*Device, error)
	// Issuer holds the issuer CA and host keys the device trusts. For a
	// fresh device the suite personalises it with these.
	Issuer() *issuer.Issuer
}
