package spd

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/medium"
)

// sampleCode is a payment code signed with key, as a device makes it
// (SPEC.md 4.9); declined leaves out the record and the certificate.
func sampleCode(t testing.TB, key *ecdsa.PrivateKey, declined bool) PaymentCode {
	t.Helper()
	at := time.Unix(1_800_000_000, 0).UTC()
	ok, no := 0, 1
	info := medium.ServiceInfo{Kind: medium.KindPaymentResult, AID: AID, DeviceID: []byte("DEVICE01"), Token: bytes.Repeat([]byte{0xA5}, TokenLen),
		Balance: 8650, Uses: 10, ATC: 7, Expiry: at.Add(DefaultCodeLife), Currency: 978, Amount: 1350,
		PayeeNonce: []byte("7F3A90C1"), PayeeID: []byte("MERCHANT-0042"), Result: &ok, Issued: at}
	if declined {
		info.Result, info.Reason, info.ATC = &no, "over the offline pending limit", 6
	}
	env, err := medium.Sign(info, key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ParseResult(env, medium.KindPaymentResult)
	if err != nil {
		t.Fatal(err)
	}
	c := PaymentCode{Result: res}
	if declined {
		return c
	}
	rec := PendingRecord{DeviceID: info.DeviceID, ATC: 7, Kind: KindBalance, Mode: ModeOffline, Amount: 1350, Currency: 978,
		Token: info.Token, Time: at, Payee: info.PayeeID, PayeeNonce: info.PayeeNonce, Nonce: bytes.Repeat([]byte{0x5C}, 16)}
	if err := rec.Sign(key); err != nil {
		t.Fatal(err)
	}
	c.Record, c.Certificate = &rec, []byte{0x30, 0x82, 0x01, 0x00}
	return c
}

func TestPaymentCodeRoundTrip(t *testing.T) {
	key := testKey(t)
	for _, declined := range []bool{false, true} {
		c := sampleCode(t, key, declined)
		got, err := ParsePaymentCodeText(c.Text())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Marshal(), c.Marshal()) {
			t.Fatal("the code does not re-encode to its bytes")
		}
		if err := got.Verify(&key.PublicKey); err != nil {
			t.Fatal(err)
		}
		if err := got.Verify(&testKey(t).PublicKey); err == nil {
			t.Fatal("verified with another key")
		}
	}
	// A record that disagrees with the result.
	c := sampleCode(t, key, false)
	c.Record.Amount++
	if err := c.Record.Sign(key); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(&key.PublicKey); !errors.Is(err, ErrMalformed) {
		t.Fatalf("disagreeing record: %v", err)
	}
	// Request: default life, the limit, beyond it.
	r := PresentRequest{Kind: KindBalance, Amount: 100, Currency: 978, Time: time.Unix(1_800_000_000, 0).UTC(), Challenge: []byte("C")}
	cmd := PresentCode(r)
	got, err := ParsePresentRequest(cmd.P1, cmd.P2, cmd.Data)
	if err != nil || !got.Expiry.Equal(r.Time.Add(DefaultCodeLife)) {
		t.Fatalf("default life: %+v %v", got, err)
	}
	r.Expiry = r.Time.Add(MaxCodeLife)
	if _, err := ParsePresentRequest(1, 0, PresentCode(r).Data); err != nil {
		t.Fatal(err)
	}
	r.Expiry = r.Time.Add(MaxCodeLife + time.Second)
	if _, err := ParsePresentRequest(1, 0, PresentCode(r).Data); !errors.Is(err, ErrMalformed) {
		t.Fatalf("life beyond 300 s: %v", err)
	}
	if _, err := ParsePresentRequest(1, 1, cmd.Data); !errors.Is(err, ErrBadP1P2) {
		t.Fatalf("P2 01: %v", err)
	}
	if os.Getenv("SPDLAB_WRITE_SEEDS") != "" {
		dir := filepath.Join("testdata", "fuzz", "FuzzParsePaymentCode")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, b := range [][]byte{sampleCode(t, key, false).Marshal(), sampleCode(t, key, true).Marshal()} {
			if err := os.WriteFile(filepath.Join(dir, "seed"+strconv.Itoa(i+1)), []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(b))+")\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dir = filepath.Join("testdata", "fuzz", "FuzzParsePresentRequest")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		seed := "go test fuzz v1\nbyte('\\x01')\nbyte('\\x00')\n[]byte(" + strconv.Quote(string(cmd.Data)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, "seed1"), []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParsePaymentCode: a merchant's scanner parses codes from anyone.
// Nothing may panic; what parses re-encodes to the same bytes.
func FuzzParsePaymentCode(f *testing.F) {
	f.Add([]byte{0xE5, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParsePaymentCode(b)
		if err != nil {
			return
		}
		again, err := ParsePaymentCode(c.Marshal())
		if err != nil || !bytes.Equal(again.Marshal(), c.Marshal()) {
			t.Fatalf("code does not round-trip: %v", err)
		}
		if c.Record != nil {
			_ = c.Agree()
		}
	})
}

// FuzzParsePresentRequest: PRESENT CODE's data field, device side.
func FuzzParsePresentRequest(f *testing.F) {
	at := time.Unix(1_800_000_000, 0).UTC()
	f.Add(byte(1), byte(0), PresentCode(PresentRequest{Kind: KindBalance, Amount: 100, Currency: 978, Time: at, Challenge: []byte("C")}).Data)
	f.Add(byte(2), byte(0), PresentCode(PresentRequest{Kind: KindAccount, Amount: 1, Currency: 978, Time: at, Expiry: at.Add(MaxCodeLife), Payee: []byte("P")}).Data)
	f.Fuzz(func(t *testing.T, p1, p2 byte, data []byte) {
		r, err := ParsePresentRequest(p1, p2, data)
		if err != nil {
			return
		}
		again, err := ParsePresentRequest(p1, p2, PresentCode(r).Data)
		if err != nil || !again.Expiry.Equal(r.Expiry) || again.Amount != r.Amount || !bytes.Equal(again.Challenge, r.Challenge) {
			t.Fatalf("request %+v does not round-trip: %+v %v", r, again, err)
		}
	})
}
