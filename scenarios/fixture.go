package scenarios

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/link/record"
)

// Clock is the terminal time the suite presents; a fixed start keeps
// transcripts comparable across runs and transports.
var Clock = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// Test credentials the suite personalises fresh devices with.
const (
	TestPIN = "2580"
	TestPUK = "13572468"
)

// TestBioTemplate is the enrolled biometric feature vector of fresh devices.
var TestBioTemplate = []byte{12, 40, 33, 90, 120, 7, 66, 201, 150, 31, 88, 19, 240, 5, 77, 133}

var deviceSerial atomic.Uint32

// openDevices counts the devices open now (cases run one at a time).
var openDevices atomic.Int32

// TestProfile is the profile the suite personalises a fresh device with.
// Each call gives a new device ID.
func TestProfile() spd.Profile {
	n := deviceSerial.Add(1)
	id := []byte{0x5D, 0x1A, 0xB0, 0x00, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	token := bytes.Repeat([]byte{0xA0}, spd.TokenLen)
	copy(token[spd.TokenLen-8:], id)
	return spd.Profile{
		DeviceID:      id,
		Currency:      978,
		Balance:       100_00,
		Uses:          10,
		Account:       []byte("DE89370400440532013000"),
		AccountToken:  token,
		PIN:           TestPIN,
		PUK:           TestPUK,
		PINTryLimit:   3,
		BioTemplate:   TestBioTemplate,
		BioThreshold:  400,
		Limits:        spd.Limits{MaxPayment: 50_00, MaxPending: 30_00, MaxOfflineCount: 5, MaxOfflineAge: 72 * time.Hour},
		Tier:          0,
		TierDiscounts: [4]uint16{0, 1000, 2000, 3000},
		Regions:       []uint16{276, 250},
		Adjustments:   []spd.RegionAdjustment{{Region: 250, BasisPoints: 500}},
		Time:          Clock,
		TestSample:    true,
	}
}

// Fixture is one device under test as a case sees it.
type Fixture struct {
	Driver  Driver
	Device  *Device
	Client  *spd.Client
	Issuer  *issuer.Issuer
	Profile spd.Profile
	// Pub is the device public key from its certificate.
	Pub      *ecdsa.PublicKey
	rec      *record.Recorder
	released bool
	// seen is the state the last state read found, and seenAt the
	// recorder's operation count after it: while the count stays, no
	// command reached the device since, and state answers seen again.
	seen   *DeviceState
	seenAt int
	// verified holds the encodings (signature included) of the pending
	// records whose signatures verified under verifiedBy: the very same
	// bytes read again need no second verification.
	verified   map[string]bool
	verifiedBy *ecdsa.PublicKey
}

// open opens a device, records its exchanges (attached to the report on
// failure) and closes it when the case ends.
func open(ctx context.Context, d Driver) *Fixture {
	GinkgoHelper()
	if max := d.Profile().MaxDevices; max > 0 && int(openDevices.Load()) >= max {
		Skip(fmt.Sprintf("%srig lacks a sample beyond %d (%s): name more samples with --dut", NotApplicablePrefix, max, d.Profile().Name))
	}
	if share := d.Profile().Share; share > 0 && int(openDevices.Load()) >= share {
		Skip(fmt.Sprintf("%sthe case needs more than the %d device(s) this process holds of the rig", reports.DeferredPrefix, share))
	}
	dev, err := d.Open(ctx)
	Expect(err).NotTo(HaveOccurred(), "opening the DUT")
	rec := record.Record(gated(dev.Link, d))
	f := &Fixture{Driver: d, Device: dev, Client: spd.NewClient(rec.Link()), Issuer: d.Issuer(), rec: rec}
	caseLinks[f] = 0 // checkPolarity (polarity.go)
	openDevices.Add(1)
	DeferCleanup(func() {
		// Every case keeps its exchanges as evidence; the console shows
		// them only for a failure (or with -v).
		AddReportEntry("transcript", transcript(f.rec), ReportEntryVisibilityFailureOrVerbose)
		recordRoundTrips(f.rec)
		Expect(f.release()).To(Succeed())
	})
	return f
}

// needFresh skips a case that needs a new blank device when the driver
// cannot give one.
func needFresh(d Driver) {
	GinkgoHelper()
	need(d, Fresh)
}

func need(d Driver, c Capability) {
	GinkgoHelper()
	if !d.Profile().Has(c) {
		Skip(Why(c, d.Profile().Name))
	}
}

// release closes the device before the case ends, so that a case that
// goes through many devices one after another holds one at a time.
func (f *Fixture) release() error {
	if f.released {
		return nil
	}
	f.released = true
	openDevices.Add(-1)
	return f.Device.Close()
}

// personalised opens a fresh device and personalises it with p (or
// TestProfile when p is nil). It leaves the application selected and the
// PIN verified.
func personalised(ctx context.Context, d Driver, p *spd.Profile) *Fixture {
	GinkgoHelper()
	needFresh(d)
	f := open(ctx, d)
	prof := TestProfile()
	if p != nil {
		prof = *p
	}
	adaptProfile(&prof, d.Profile())
	got, err := f.Issuer.Personalise(ctx, f.Client, prof)
	Expect(err).NotTo(HaveOccurred(), "personalising")
	f.Profile, f.Pub = got, got.DevicePublicKey
	return f
}

// login selects the application and verifies the PIN.
func (f *Fixture) login(ctx context.Context) {
	GinkgoHelper()
	_, err := f.Client.Select(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(f.Client.VerifyPIN(ctx, f.Profile.PIN)).To(Succeed())
}

// sw sends cmd and returns the status word.
func (f *Fixture) sw(ctx context.Context, cmd apdu.Command) apdu.SW {
	GinkgoHelper()
	resp, err := f.Client.Transmit(ctx, cmd)
	Expect(err).NotTo(HaveOccurred())
	return resp.SW
}

// Snapshot is a device's value state as GET DATA shows it.
type Snapshot struct {
	Balance, Pending int64
	Uses, ATC        uint32
	Ledger           int
	State            spd.State
}

func (f *Fixture) snapshot(ctx context.Context) Snapshot {
	GinkgoHelper()
	return f.readObjects(ctx, snapshotTags...).snapshot()
}

// snapshotTags are the data objects of a Snapshot; stateTags those of a
// DeviceState (SPEC.md 4.2), in the order the suite asks for them.
var (
	snapshotTags = []tlv.Tag{spd.TagBalance, spd.TagPending, spd.TagUses, spd.TagATC, spd.TagPendingCount, spd.TagState}
	stateTags    = append(slices.Clone(snapshotTags), spd.TagLastSync, spd.TagUpdateCounter, spd.TagPINTries, spd.TagTier, spd.TagLimits)
)

// dataObjects are the values of some data objects of SPEC.md 4.2, read
// at one moment.
type dataObjects map[tlv.Tag][]byte

// readObjects reads the values of tags: in one GET DATA list (SPEC.md
// 4.2.1) when the DUT declares get-data-list, else one GET DATA each. A
// refusal names the tags (or the tag) asked for.
func (f *Fixture) readObjects(ctx context.Context, tags ...tlv.Tag) dataObjects {
	GinkgoHelper()
	out := dataObjects{}
	if f.Driver.Profile().Has(GetDataList) {
		values, err := f.Client.GetDataList(ctx, tags...)
		Expect(err).NotTo(HaveOccurred(), "GET DATA list %v", tags)
		for i, tag := range tags {
			out[tag] = values[i]
		}
		return out
	}
	for _, tag := range tags {
		v, err := f.Client.GetData(ctx, tag)
		Expect(err).NotTo(HaveOccurred(), "GET DATA %s", tag)
		out[tag] = v
	}
	return out
}

// uint decodes the value of tag, an integer of exactly size bytes
// (SPEC.md 4.2).
func (o dataObjects) uint(tag tlv.Tag, size int) uint64 {
	GinkgoHelper()
	v := o[tag]
	Expect(v).To(HaveLen(size), "GET DATA %s: %d bytes, SPEC.md 4.2 gives %d", tag, len(v), size)
	n, err := spd.Uint(v)
	Expect(err).NotTo(HaveOccurred(), "GET DATA %s", tag)
	return n
}

func (o dataObjects) snapshot() Snapshot {
	GinkgoHelper()
	return Snapshot{
		Balance: int64(o.uint(spd.TagBalance, 8)),
		Pending: int64(o.uint(spd.TagPending, 8)),
		Uses:    uint32(o.uint(spd.TagUses, 4)),
		ATC:     uint32(o.uint(spd.TagATC, 4)),
		Ledger:  int(o.uint(spd.TagPendingCount, 2)),
		State:   spd.State(o.uint(spd.TagState, 1)),
	}
}

// hostOrder signs a host command for the fixture's device.
func (f *Fixture) hostOrder(build func(key *ecdsa.PrivateKey, id []byte) (apdu.Command, error)) apdu.Command {
	GinkgoHelper()
	cmd, err := build(f.Issuer.HostKey(), f.Profile.DeviceID)
	Expect(err).NotTo(HaveOccurred())
	return cmd
}

// Case labels a spec with its case ID, the requirements it checks and the
// claims behind them.
func Case(id string, reqsAndClaims ...string) Labels {
	return Label(append([]string{id}, reqsAndClaims...)...)
}

// spdProfile shortens the personalisation profile type.
type spdProfile = spd.Profile

// ecdsaKey shortens host-order builders in cases.
type ecdsaKey = ecdsa.PrivateKey

// Home is the region the suite's terminal reports by default (Germany, no
// adjustment in TestProfile); Abroad has a +5% adjustment; Barred is not
// an allowed region.
const (
	Home   uint16 = 276
	Abroad uint16 = 250
	Barred uint16 = 840
)

// payment is a payment request at the suite's clock in the home region.
func payment(kind spd.PaymentKind, mode spd.Mode, amount int64) spd.PayRequest {
	return spd.PayRequest{Kind: kind, Mode: mode, Amount: amount, Currency: 978, Time: Clock, Region: Home}
}

// pay pays r and expects a signed result, success or decline, that
// verifies under the device key.
func (f *Fixture) pay(ctx context.Context, r spd.PayRequest) spd.Result {
	GinkgoHelper()
	res, err := f.Client.Pay(ctx, r)
	if err != nil {
		Expect(err).To(MatchError(spd.ErrDeclined))
		Expect(res.Medium).NotTo(BeNil())
	}
	Expect(res.Verify(f.Pub)).To(Succeed(), "payment result signature")
	return res
}

// transcript is a case's exchanges, one per line, for its report entry.
func transcript(r *record.Recorder) string {
	var b strings.Builder
	for _, e := range r.Events() {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}
