package serial

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
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/rigs/link"
	rig "github.com/spdlab/spdlab/rigs/serial"
)

func seededKey(seed string) *ecdsa.PrivateKey {
	for i := 0; ; i++ {
		h := sha256.Sum256(append([]byte(seed), byte(i)))
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h[:]); err == nil {
			return k
		}
	}
}

// referenceScript personalises a blank reference device over l, then runs
// a fixed script of commands and returns every raw response.
func referenceScript(t *testing.T, l link.Link) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	is, err := spd.NewIssuer("spdlab transport test", seededKey("ca"), seededKey("host"))
	if err != nil {
		t.Fatal(err)
	}
	profile := spd.Profile{
		DeviceID: []byte("SERIAL-1"), Currency: 978, Balance: 100_000, Uses: 10,
		Account: []byte("ACCOUNT-1"), AccountToken: bytes.Repeat([]byte{7}, spd.TokenLen),
		PIN: "1234", PUK: "87654321", PINTryLimit: 3,
		BioTemplate: []byte{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160}, BioThreshold: 400,
		Limits: spd.Limits{MaxPayment: 50_000, MaxPending: 20_000, MaxOfflineCount: 5, MaxOfflineAge: 72 * time.Hour},
		Time:   time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC),
	}
	if _, err := is.Personalise(ctx, spd.NewClient(l), profile); err != nil {
		t.Fatalf("personalise over %s: %v", l, err)
	}
	script := []apdu.Command{
		spd.Select(),
		spd.PINStatus(),
		spd.VerifyPIN("0000"),
		spd.VerifyPIN("1234"),
		spd.GetData(spd.TagBalance),
		spd.GetData(spd.TagUses),
		spd.GetData(spd.TagDeviceID),
		spd.GetChallenge(),
		{CLA: 0x80, INS: 0xEE},
	}
	var out [][]byte
	for _, c := range script {
		resp, err := l.Exchange(ctx, c.MustBytes())
		if err != nil {
			t.Fatalf("%v over %s: %v", c, l, err)
		}
		out = append(out, resp)
	}
	// SELECT, the right PIN and the three reads succeed; the wrong PIN
	// leaves two tries; the unknown INS is refused.
	for i, sw := range map[int]apdu.SW{0: apdu.SWOK, 2: apdu.VerifyFailed(2), 3: apdu.SWOK, 4: apdu.SWOK, 5: apdu.SWOK, 6: apdu.SWOK, 8: apdu.SWInsNotSupported} {
		r, _ := apdu.ParseResponse(out[i])
		if r.SW != sw {
			t.Fatalf("script step %d over %s answered %s, want %s", i, l, r.SW, sw)
		}
	}
	for _, raw := range [][]byte{{0x00}, {0xFF, 0xA4, 0x04, 0x00}, {0x00, 0xA4, 0x04, 0x00, 0x09, 0x01}} {
		resp, err := l.Exchange(ctx, raw)
		if err != nil {
			t.Fatalf("malformed % X over %s: %v", raw, l, err)
		}
		out = append(out, resp)
	}
	return out
}

func TestReferenceDeviceSameAsDirect(t *testing.T) {
	cfg := device.Config{Seed: []byte("transport")}
	direct := link.NewDirect(device.New(store.NewMemory(), cfg), "ref", emulator.ATR(emulator.FormUART))
	want := referenceScript(t, direct)

	_, path := startDevice(t, device.New(store.NewMemory(), cfg), Config{})
	p := openPort(t, path, rig.Config{})
	got := referenceScript(t, p)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("response %d over the pty % X, in process % X", i, got[i], want[i])
		}
	}
}
