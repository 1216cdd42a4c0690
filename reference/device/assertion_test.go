package device

import (
	"context"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

// assertionRig is an active device whose profile requires the host to
// assert an SMS code and consent for payments of at least 1000.
func assertionRig(t *testing.T, id string) *rig {
	t.Helper()
	r := newBlankRig(t, id)
	ctx := context.Background()
	if _, err := r.c.Select(ctx); err != nil {
		t.Fatal(err)
	}
	pub, err := r.c.Initialise(ctx, &r.is.CA.PublicKey, []byte(id))
	if err != nil {
		t.Fatal(err)
	}
	p := testProfile(id)
	p.DevicePublicKey, p.HostPublicKey = pub, &r.is.HostKey().PublicKey
	p.HostChecks, p.HostThreshold = spd.CheckSMS|spd.CheckConsent, 1000
	script, err := r.is.PersonalisationScript(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.c.Run(ctx, script); err != nil {
		t.Fatalf("personalise: %v", err)
	}
	r.profile, r.pub = p, pub
	r.login(t)
	if s, err := r.c.State(ctx); err != nil || s != spd.StateActive {
		r.expect(t, spd.Activate(), apdu.SWOK)
	}
	return r
}

func TestHostAssertion(t *testing.T) {
	r := assertionRig(t, "ASSERT01")
	at := t0.Add(time.Hour)
	pay := spd.PayRequest{Kind: spd.KindBalance, Mode: spd.ModeOnline, Amount: 2000, Currency: 978, Time: at,
		Payee: []byte("MERCHANT-7"), Region: 276}
	seal := func(a spd.Assertion, key func() []byte) []byte {
		t.Helper()
		id := r.profile.DeviceID
		if key != nil {
			id = key()
		}
		v, err := spd.SealAssertion(r.is.HostKey(), id, a)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	good := spd.Assertion{Checks: spd.CheckSMS | spd.CheckConsent | spd.CheckIdentity, ATC: 1, Amount: 2000,
		Currency: 978, Payee: []byte("MERCHANT-7"), Expiry: at.Add(2 * time.Minute)}

	// Below the threshold no assertion is needed.
	small := pay
	small.Amount = 999
	before := r.snap(t)
	r.expect(t, spd.Pay(small), apdu.SWOK)
	good.ATC = before.ATC + 2

	refusals := []struct {
		name string
		a    func() []byte
		sw   apdu.SW
	}{
		{"absent", func() []byte { return nil }, apdu.SWSecurityNotSatisfied},
		{"another device", func() []byte { return seal(good, func() []byte { return []byte("ASSERT02") }) }, apdu.SWSecurityNotSatisfied},
		{"forged", func() []byte {
			v := seal(good, nil)
			v[len(v)-3] ^= 1
			return v
		}, apdu.SWSecurityNotSatisfied},
		{"CA key", func() []byte {
			body, _ := good.Body()
			v, _ := spd.SealIssuerData(r.is.CA, spd.INSHostAssertion, r.profile.DeviceID, body)
			return v
		}, apdu.SWSecurityNotSatisfied},
		{"another command's domain", func() []byte {
			body, _ := good.Body()
			v, _ := spd.SealIssuerData(r.is.HostKey(), spd.INSPay, r.profile.DeviceID, body)
			return v
		}, apdu.SWSecurityNotSatisfied},
		{"old ATC", func() []byte { a := good; a.ATC--; return seal(a, nil) }, apdu.SWRefDataNotUsable},
		{"later ATC", func() []byte { a := good; a.ATC++; return seal(a, nil) }, apdu.SWRefDataNotUsable},
		{"other amount", func() []byte { a := good; a.Amount++; return seal(a, nil) }, apdu.SWSecurityNotSatisfied},
		{"other payee", func() []byte { a := good; a.Payee = []byte("MERCHANT-8"); return seal(a, nil) }, apdu.SWSecurityNotSatisfied},
		{"no payee", func() []byte { a := good; a.Payee = nil; return seal(a, nil) }, apdu.SWSecurityNotSatisfied},
		{"expired", func() []byte { a := good; a.Expiry = at.Add(-time.Second); return seal(a, nil) }, apdu.SWConditionsNotSat},
		{"checks short", func() []byte { a := good; a.Checks = spd.CheckSMS; return seal(a, nil) }, apdu.SWSecurityNotSatisfied},
		{"not TLV", func() []byte { return []byte{0x9F} }, apdu.SWWrongData},
	}
	mid := r.snap(t)
	for _, c := range refusals {
		p := pay
		p.Assertion = c.a()
		if resp := r.do(t, spd.Pay(p)); resp.SW != c.sw {
			t.Errorf("%s: SW %s, want %s", c.name, resp.SW, c.sw)
		}
		if r.snap(t) != mid {
			t.Fatalf("%s changed the device", c.name)
		}
	}

	// The right assertion pays once; the same one again is a replay.
	ok := pay
	ok.Assertion = seal(good, nil)
	r.expect(t, spd.Pay(ok), apdu.SWOK)
	if after := r.snap(t); after.ATC != mid.ATC+1 || after.Balance >= mid.Balance {
		t.Fatalf("paid with an assertion: %+v -> %+v", mid, after)
	}
	r.expect(t, spd.Pay(ok), apdu.SWRefDataNotUsable)

	// PRESENT CODE carries one as PAY does.
	pr := spd.PresentRequest{Kind: spd.KindBalance, Amount: 2000, Currency: 978, Time: at, Payee: []byte("MERCHANT-7"), Region: 276}
	r.expect(t, spd.PresentCode(pr), apdu.SWSecurityNotSatisfied)
	a := good
	a.ATC++
	pr.Assertion = seal(a, nil)
	if _, err := r.c.PresentCode(context.Background(), pr); err != nil {
		t.Fatal(err)
	}
}

func TestProfileHostChecks(t *testing.T) {
	p := testProfile("PROFHC01")
	p.Certificate = []byte{0x30}
	p.HostChecks, p.HostThreshold = spd.CheckIdentity, 5000
	body, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := spd.ParseProfile(body)
	if err != nil || back.HostChecks != spd.CheckIdentity || back.HostThreshold != 5000 {
		t.Fatalf("%v %+v", err, back)
	}
	p.HostChecks = 8
	if _, err := p.Marshal(); err == nil {
		t.Fatal("host checks 08 accepted")
	}
}
