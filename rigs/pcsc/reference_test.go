//go:build cgo

package pcsc_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/rigs/link"
)

// The reference device behind the SIM emulator, reached through pcscd, must
// answer exactly what the same device answers in process.

func seededKey(seed string) *ecdsa.PrivateKey {
	for i := 0; ; i++ {
		h := sha256.Sum256([]byte{byte(i)})
		h = sha256.Sum256(append([]byte(seed), h[:]...))
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h[:]); err == nil {
			return k
		}
	}
}

func referenceProfile(id string, pub, host *ecdsa.PublicKey) spd.Profile {
	return spd.Profile{
		DeviceID:        []byte(id),
		Currency:        978,
		Balance:         100_000,
		Uses:            10,
		Account:         []byte("ACCOUNT-" + id),
		AccountToken:    bytes.Repeat([]byte{0x42}, spd.TokenLen),
		PIN:             "1234",
		PUK:             "87654321",
		PINTryLimit:     3,
		Limits:          spd.Limits{MaxPayment: 50_000, MaxPending: 20_000, MaxOfflineCount: 5, MaxOfflineAge: 72 * time.Hour},
		Regions:         []uint16{276},
		Time:            time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC),
		DevicePublicKey: pub,
		HostPublicKey:   host,
	}
}

func TestReferenceDeviceSameOverPCSCAsInProcess(t *testing.T) {
	const id = "PCSC0001" // spd.DeviceIDLen bytes
	cfg := device.Config{Seed: []byte("pcsc-reference")}
	direct := link.NewDirect(device.New(store.NewMemory(), cfg), "ref", emulator.ATR(emulator.FormSIM))
	remote := device.New(store.NewMemory(), cfg)
	serve(t, remote, emulator.FormSIM)
	r := open(t)
	ctx := context.Background()

	is, err := issuer.New("spdlab pcsc test", seededKey("ca"), seededKey("host"))
	if err != nil {
		t.Fatal(err)
	}
	// Both devices derive the same key from the same seed.
	var pubs [2]*ecdsa.PublicKey
	for i, l := range []link.Link{direct, r} {
		c := spd.NewClient(l)
		if _, err := c.Select(ctx); err != nil {
			t.Fatalf("%s: SELECT: %v", l, err)
		}
		if pubs[i], err = c.Initialise(ctx, &is.CA.PublicKey, []byte(id)); err != nil {
			t.Fatalf("%s: INITIALISE: %v", l, err)
		}
	}
	if !pubs[0].Equal(pubs[1]) {
		t.Fatal("the two devices generated different keys from one seed")
	}
	script, err := is.PersonalisationScript(referenceProfile(id, pubs[0], &is.HostKey().PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	// Personalise, then read and probe: every answer byte for byte.
	probes := []apdu.Command{
		spd.Select(),
		{CLA: 0x00, INS: 0xCA, P1: 0x00, P2: 0x00, Ne: 256}, // GET DATA of an unknown tag
		{CLA: 0x00, INS: 0x84, P1: 0x00, P2: 0x00, Ne: 8},   // GET CHALLENGE
		spd.VerifyPIN("9999"),
		spd.PINStatus(),
		{CLA: 0x80, INS: 0xFE, P1: 0x00, P2: 0x00},
		{CLA: 0xA0, INS: 0xA4, P1: 0x04, P2: 0x00, Data: []byte{0xF0}},
	}
	for i, cmd := range append(script, probes...) {
		raw := cmd.MustBytes()
		want, err := direct.Exchange(ctx, raw)
		if err != nil {
			t.Fatalf("command %d in process: %v", i, err)
		}
		got, err := r.Exchange(ctx, raw)
		if err != nil {
			t.Fatalf("command %d (% X) over PC/SC: %v", i, head(raw), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("command %d (% X): over PC/SC % X, in process % X", i, head(raw), got, want)
		}
	}
	for _, l := range []link.Link{direct, r} {
		bal, err := spd.NewClient(l).Balance(ctx)
		if err != nil || bal != 100_000 {
			t.Fatalf("%s: balance %d, %v", l, bal, err)
		}
	}

	// A power cut at the next persistent write (the PIN try counter) tears
	// VERIFY: the host sees the card go, and after the next power-up the
	// device has recovered its store and answers again.
	if _, err := spd.NewClient(r).Select(ctx); err != nil {
		t.Fatal(err)
	}
	remote.TearAt(1)
	resp, err := r.Exchange(ctx, spd.VerifyPIN("0000").MustBytes())
	if !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("torn VERIFY: % X, %v; want link.ErrRemoved", resp, err)
	}
	if _, err := r.Reset(ctx, true); err != nil {
		t.Fatalf("Reset after tear: %v", err)
	}
	c := spd.NewClient(r)
	if _, err := c.Select(ctx); err != nil {
		t.Fatalf("SELECT after tear: %v", err)
	}
	if bal, err := c.Balance(ctx); err != nil || bal != 100_000 {
		t.Fatalf("balance after tear: %d, %v", bal, err)
	}
	// The torn write was the try counter's: it is old, as on the device
	// that never saw the torn VERIFY.
	dc := spd.NewClient(direct)
	if _, err := dc.Select(ctx); err != nil {
		t.Fatal(err)
	}
	want, err := dc.PINTries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.PINTries(ctx); err != nil || got != want {
		t.Fatalf("PIN tries after tear: %d, %v; want %d", got, err, want)
	}
}

func head(cmd []byte) []byte {
	if len(cmd) > 4 {
		return cmd[:4]
	}
	return cmd
}
