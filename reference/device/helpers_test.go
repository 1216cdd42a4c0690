package device

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/rigs/link"
)

// t0 is the lab's reference time for tests.
var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

const (
	testPIN = "1234"
	testPUK = "87654321"
)

var bioTemplate = []byte{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160}

func keyFromSeed(seed string) *ecdsa.PrivateKey {
	for i := 0; ; i++ {
		h := sha256.Sum256([]byte{byte(i)})
		h = sha256.Sum256(append([]byte(seed), h[:]...))
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h[:]); err == nil {
			return k
		}
	}
}

var testIssuer *issuer.Issuer

func labIssuer(t testing.TB) *issuer.Issuer {
	t.Helper()
	if testIssuer == nil {
		is, err := issuer.New("spdlab test", keyFromSeed("ca"), keyFromSeed("host"))
		if err != nil {
			t.Fatal(err)
		}
		testIssuer = is
	}
	return testIssuer
}

func testProfile(id string) spd.Profile {
	return spd.Profile{
		DeviceID:      []byte(id),
		Currency:      978,
		Balance:       100_000,
		Uses:          10,
		Account:       []byte("ACCOUNT-" + id),
		AccountToken:  bytes.Repeat([]byte{id[len(id)-1]}, spd.TokenLen),
		PIN:           testPIN,
		PUK:           testPUK,
		PINTryLimit:   3,
		BioTemplate:   bioTemplate,
		BioThreshold:  400,
		Limits:        spd.Limits{MaxPayment: 50_000, MaxPending: 20_000, MaxOfflineCount: 5, MaxOfflineAge: 72 * time.Hour},
		Tier:          1,
		TierDiscounts: [4]uint16{0, 1000, 2000, 3000},
		Regions:       []uint16{276, 250},
		Adjustments:   []spd.RegionAdjustment{{Region: 250, BasisPoints: 500}},
		Time:          t0,
	}
}

// rig is a personalised device with a client on a direct link.
type rig struct {
	dev     *Device
	st      *store.Memory
	link    *link.Direct
	c       *spd.Client
	is      *issuer.Issuer
	profile spd.Profile
	pub     *ecdsa.PublicKey
	counter uint32
}

// newBlankRig returns a blank device with a client on a direct link.
func newBlankRig(t testing.TB, id string) *rig {
	t.Helper()
	st := store.NewMemory()
	d := New(st, Config{Seed: []byte("seed-" + id)})
	l := link.NewDirect(d, "ref", emulator.ATR(emulator.FormSIM))
	return &rig{dev: d, st: st, link: l, c: spd.NewClient(l), is: labIssuer(t)}
}

// scripts caches each test device's personalisation script: certificates
// carry randomised signatures, and tests that compare memory images need
// the same bytes every time a device is personalised.
var scripts = map[string][]apdu.Command{}

func newRig(t testing.TB, id string) *rig {
	t.Helper()
	r := newBlankRig(t, id)
	ctx := context.Background()
	if _, err := r.c.Select(ctx); err != nil {
		t.Fatal(err)
	}
	pub, err := r.c.Initialise(ctx, &r.is.CA.PublicKey, []byte(id))
	if err != nil {
		t.Fatalf("initialise: %v", err)
	}
	p := testProfile(id)
	p.DevicePublicKey = pub
	p.HostPublicKey = &r.is.HostKey().PublicKey
	script, ok := scripts[id]
	if !ok {
		if script, err = r.is.PersonalisationScript(p); err != nil {
			t.Fatal(err)
		}
		scripts[id] = script
	}
	if err := r.c.Run(ctx, script); err != nil {
		t.Fatalf("personalise: %v", err)
	}
	if p.Certificate, err = r.c.Certificate(ctx); err != nil {
		t.Fatal(err)
	}
	r.profile, r.pub = p, pub
	return r
}

func (r *rig) do(t testing.TB, cmd apdu.Command) apdu.Response {
	t.Helper()
	resp, err := r.c.Transmit(context.Background(), cmd)
	if err != nil {
		t.Fatalf("%s: %v", spd.INS(cmd.INS), err)
	}
	return resp
}

func (r *rig) expect(t testing.TB, cmd apdu.Command, sw apdu.SW) []byte {
	t.Helper()
	resp := r.do(t, cmd)
	if resp.SW != sw {
		t.Fatalf("%s: SW %s, want %s", spd.INS(cmd.INS), resp.SW, sw)
	}
	return resp.Data
}

func (r *rig) login(t testing.TB) {
	t.Helper()
	r.expect(t, spd.Select(), apdu.SWOK)
	r.expect(t, spd.VerifyPIN(testPIN), apdu.SWOK)
}

func (r *rig) hostOrder(t testing.TB, build func(key *ecdsa.PrivateKey, id []byte) (apdu.Command, error)) apdu.Command {
	t.Helper()
	cmd, err := build(r.is.HostKey(), r.profile.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// snapshot is the device's value state as GET DATA shows it.
type snapshot struct {
	Balance, Pending int64
	Uses, ATC        uint32
	Ledger           int
	State            spd.State
}

func (r *rig) snap(t testing.TB) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var err error
	if s.Balance, err = r.c.Balance(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Pending, err = r.c.Pending(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Uses, err = r.c.Uses(ctx); err != nil {
		t.Fatal(err)
	}
	if s.ATC, err = r.c.ATC(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Ledger, err = r.c.PendingCount(ctx); err != nil {
		t.Fatal(err)
	}
	if s.State, err = r.c.State(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func mediumControls(txns int, max int64) medium.TokenControls {
	return medium.TokenControls{MaxTransactions: txns, MaxAmount: max, Channels: medium.ChannelInStore | medium.ChannelOnline}
}
