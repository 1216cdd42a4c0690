package dut

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"fmt"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
)

func seededKey(seed string) *ecdsa.PrivateKey {
	for i := 0; ; i++ {
		h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", seed, i))
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h[:]); err == nil {
			return k
		}
	}
}

// script is one exchange script: personalisation, verification, each kind
// of payment online and offline, a decline, the ledger, a medium, bad
// input. Every random value the device draws comes from its seed, and the
// issuer's signatures are made once, so every transport sees the same bytes.
func script(t *testing.T) []apdu.Command {
	t.Helper()
	is, err := issuer.New("transport test", seededKey("ca"), seededKey("host"))
	if err != nil {
		t.Fatal(err)
	}
	// The device key is a function of the seed: learn it once in process.
	probe, err := Open(context.Background(), "ref", Options{Device: device.Config{Seed: []byte("same-script")}})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	p := benchProfile(7)
	c := spd.NewClient(probe.Link)
	if _, err := c.Select(context.Background()); err != nil {
		t.Fatal(err)
	}
	pub, err := c.Initialise(context.Background(), &is.CA.PublicKey, p.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	p.DevicePublicKey = pub
	perso, err := is.PersonalisationScript(p)
	if err != nil {
		t.Fatal(err)
	}
	at := p.Time.Add(time.Minute)
	pay := func(kind spd.PaymentKind, mode spd.Mode, amount int64) apdu.Command {
		return spd.Pay(spd.PayRequest{Kind: kind, Mode: mode, Amount: amount, Currency: p.Currency, Time: at})
	}
	cmds := []apdu.Command{spd.Select(), is.Initialise(p.DeviceID)}
	cmds = append(cmds, perso...)
	cmds = append(cmds,
		spd.Select(),
		spd.VerifyPIN("0000"), // wrong: 63C2
		spd.VerifyPIN(p.PIN),
		pay(spd.KindBalance, spd.ModeOnline, 12_50),
		pay(spd.KindAccount, spd.ModeOffline, 3_00),
		pay(spd.KindUse, spd.ModeOnline, 0),
		pay(spd.KindBalance, spd.ModeOffline, 10_000_00), // declined, signed failure
		spd.GetData(spd.TagBalance),
		spd.GetData(spd.TagATC),
		spd.ReadPending(0),
		spd.ReadPending(1),
		spd.ReadPending(9), // 6A83
		spd.GenerateMedium(spd.MediumRequest{Time: at}),
		spd.GetData(spd.TagCertificate),
		apdu.Command{CLA: 0x80, INS: 0x7E},                     // 6D00
		apdu.Command{CLA: 0x80, INS: 0x60, P1: 0x01, P2: 0x09}, // bad P2
	)
	return cmds
}

func run(t *testing.T, spec string, cmds []apdu.Command) [][]byte {
	t.Helper()
	// Signatures are randomised; the same random stream on every run makes
	// them repeat, so that whole responses compare byte for byte.
	cryptotest.SetGlobalRandom(t, 7)
	d, err := Open(context.Background(), spec, Options{Device: device.Config{Seed: []byte("same-script")}})
	if err != nil {
		t.Fatalf("%s: %v", spec, err)
	}
	defer d.Close()
	c := spd.NewClient(d.Link)
	var out [][]byte
	for _, cmd := range cmds {
		resp, err := c.Transmit(context.Background(), cmd)
		if err != nil {
			t.Fatalf("%s: %s: %v", spec, cmd, err)
		}
		out = append(out, resp.Bytes())
	}
	return out
}

// TestSameScriptEveryTransport runs one exchange script over every
// emulated transport and requires the responses the in-process link gets,
// byte for byte.
func TestSameScriptEveryTransport(t *testing.T) {
	cmds := script(t)
	want := run(t, "ref", cmds)
	for _, spec := range []string{"usb-emu", "serial-emu", "sd-emu", "pcsc-emu"} {
		if _, ok := openers[spec]; !ok {
			continue
		}
		t.Run(spec, func(t *testing.T) {
			if spec == "pcsc-emu" {
				skipWithoutPCSC(t)
			}
			got := run(t, spec, cmds)
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("command %d (%s): %s answered\n% X\nref answered\n% X", i, cmds[i], spec, got[i], want[i])
				}
			}
		})
	}
}
