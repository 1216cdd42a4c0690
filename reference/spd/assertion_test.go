package spd

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestAssertionRoundTrip(t *testing.T) {
	key := testKey(t)
	id := []byte("DEVICE01")
	a := Assertion{Checks: CheckSMS | CheckConsent, ATC: 7, Amount: 2500, Currency: 978, Payee: []byte("SHOP"),
		Expiry: time.Unix(1_800_000_120, 0).UTC()}
	v, err := SealAssertion(key, id, a)
	if err != nil {
		t.Fatal(err)
	}
	back, err := OpenAssertion(&key.PublicKey, id, v)
	if err != nil || !reflect.DeepEqual(back, a) {
		t.Fatalf("%v %+v", err, back)
	}
	if _, err := OpenAssertion(&key.PublicKey, []byte("DEVICE02"), v); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another device: %v", err)
	}
	// A PAY carries it in DF76, and PRESENT CODE too.
	req := PayRequest{Kind: KindBalance, Mode: ModeOnline, Amount: 2500, Currency: 978, Time: time.Unix(1_800_000_000, 0).UTC(), Payee: []byte("SHOP"), Assertion: v}
	c := Pay(req)
	got, err := ParsePayRequest(c.P1, c.P2, c.Data)
	if err != nil || !bytes.Equal(got.Assertion, v) || !a.ForPayment(got) {
		t.Fatalf("PAY: %v", err)
	}
	pc := PresentCode(PresentRequest{Kind: KindBalance, Amount: 2500, Currency: 978, Time: req.Time, Payee: req.Payee, Assertion: v})
	pr, err := ParsePresentRequest(pc.P1, pc.P2, pc.Data)
	if err != nil || !bytes.Equal(pr.Assertion, v) || !bytes.Equal(pr.Pay().Assertion, v) {
		t.Fatalf("PRESENT CODE: %v", err)
	}
	// A DF76 that does not end with a signature is a malformed PAY.
	bad := req
	bad.Assertion = []byte{0xDF, 0x74, 0x01, 0x01}
	c = Pay(bad)
	if _, err := ParsePayRequest(c.P1, c.P2, c.Data); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unsigned DF76: %v", err)
	}
	for _, checks := range []HostChecks{0, 8, 0x81} {
		a.Checks = checks
		if _, err := SealAssertion(key, id, a); err == nil {
			t.Errorf("checks %02X sealed", uint8(checks))
		}
	}
}

func TestHostChecksString(t *testing.T) {
	for c, want := range map[HostChecks]string{0: "none", CheckSMS: "sms", AllChecks: "sms+identity+consent", 0x0A: "identity+0x08"} {
		if got := fmt.Sprint(c); got != want {
			t.Errorf("%02X: %q, want %q", uint8(c), got, want)
		}
	}
}

func FuzzOpenAssertion(f *testing.F) {
	key := testKey(f)
	id := []byte("DEVICE01")
	for _, a := range []Assertion{
		{Checks: CheckSMS, ATC: 1, Amount: 100, Currency: 978, Expiry: time.Unix(1_800_000_000, 0)},
		{Checks: AllChecks, ATC: 1 << 20, Amount: 1 << 40, Currency: 156, Payee: []byte("MERCHANT-0042"), Expiry: time.Unix(1_900_000_000, 0)},
	} {
		v, err := SealAssertion(key, id, a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		a, err := OpenAssertion(&key.PublicKey, id, v)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v is neither malformed nor a bad signature", err)
			}
			return
		}
		body, err := a.Body()
		if err != nil {
			t.Fatalf("an opened assertion does not encode: %v", err)
		}
		back, err := ParseAssertionBody(body)
		if err != nil || !reflect.DeepEqual(back, a) {
			t.Fatalf("assertion %+v does not round-trip: %+v %v", a, back, err)
		}
	})
}
