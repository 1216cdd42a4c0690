package backend

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

func TestRates(t *testing.T) {
	l := newLab(t, nil)
	bg := context.Background()
	d := newSimDevice(t, "rate-dev")
	l.register(d, 100_00, "")
	// Uses: the price that applies to every currency; currency: the pair.
	got, err := l.term.Rate(bg, RateRequest{DeviceID: d.id, ATC: 4, Kind: ExchangeUses})
	if err != nil {
		t.Fatal(err)
	}
	r, err := spd.OpenRate(l.srv.PublicKey(), d.raw, got.Rate)
	if err != nil {
		t.Fatal(err)
	}
	exp := l.clock.Now().Add(RateLifetime).UTC().Truncate(time.Second)
	if r.Kind != spd.ExchangeUses || r.ATC != 4 || r.Currency != 156 || r.Numerator != 1 || r.Denominator != 250 || !r.Expiry.Equal(exp) {
		t.Fatalf("rate %+v", r)
	}
	if got.ExpiresAt.Sub(l.clock.Now()) > spd.MaxRateLife {
		t.Fatalf("a rate valid until %s", got.ExpiresAt)
	}
	got, err = l.term.Rate(bg, RateRequest{DeviceID: d.id, ATC: 5, Kind: ExchangeCurrency, Target: 978})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = spd.OpenRate(l.srv.PublicKey(), d.raw, got.Rate); err != nil || r.TargetCurrency != 978 || r.Numerator != 1_274 {
		t.Fatalf("rate %+v %v", r, err)
	}
	// Refused: a pair the issuer does not offer, its own currency, an
	// unknown device, a malformed kind, a revoked device.
	before := l.snapshot()
	_, err = l.term.Rate(bg, RateRequest{DeviceID: d.id, ATC: 5, Kind: ExchangeCurrency, Target: 392})
	wantCode(t, err, http.StatusNotFound, CodeNoRate)
	_, err = l.term.Rate(bg, RateRequest{DeviceID: d.id, ATC: 5, Kind: ExchangeCurrency, Target: 156})
	wantCode(t, err, http.StatusNotFound, CodeNoRate)
	_, err = l.term.Rate(bg, RateRequest{DeviceID: devID("nobody"), ATC: 5, Kind: ExchangeUses})
	wantCode(t, err, http.StatusNotFound, CodeUnknownDevice)
	_, err = l.term.Rate(bg, RateRequest{DeviceID: d.id, ATC: 5, Kind: "gold"})
	wantCode(t, err, http.StatusBadRequest, CodeMalformed)
	_, err = l.term.Rate(bg, RateRequest{DeviceID: d.id, ATC: 5, Kind: ExchangeUses, Target: 978})
	wantCode(t, err, http.StatusBadRequest, CodeMalformed)
	if after := l.snapshot(); after != before {
		t.Fatal("a refused rate changed the books")
	}
	if _, err := l.c.Revoke(bg, Revocation{DeviceID: d.id, Reason: "lost"}); err != nil {
		t.Fatal(err)
	}
	_, err = l.term.Rate(bg, RateRequest{DeviceID: d.id, ATC: 5, Kind: ExchangeUses})
	wantCode(t, err, http.StatusForbidden, CodeRevoked)
}

func TestSettleExchange(t *testing.T) {
	l := newLab(t, nil)
	bg := context.Background()
	d := newSimDevice(t, "xchg-dev")
	l.register(d, 100_00, "")
	at := l.clock.Now()
	// The host signs each exchange's rate for the device's next ATC
	// (POST /v1/rates), as a terminal asks before the EXCHANGE.
	rate := func(atc uint32, kind string, target uint16) ExchangeRate {
		t.Helper()
		r, err := l.term.Rate(bg, RateRequest{DeviceID: d.id, ATC: atc, Kind: kind, Target: target})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for atc := uint32(1); atc <= 4; atc++ {
		if r := rate(atc, ExchangeUses, 0); r.Numerator != 1 || r.Denominator != 250 {
			t.Fatalf("rate of a use: %+v", r)
		}
	}
	if r := rate(2, ExchangeCurrency, 978); r.Numerator != 1_274 || r.Denominator != 10_000 {
		t.Fatalf("rate of CNY into EUR: %+v", r)
	}
	uses := d.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindExchange, Mode: spd.ModeOnline, Amount: 750, Time: at, Nonce: []byte("EXC-NONCE-1"),
		Exchange: spd.ExchangeUses, RateNumerator: 1, RateDenominator: 250, Target: 3})
	// 10.00 CNY at 0.1274 buys 1.27 EUR, whose price is 9.97 CNY.
	cur := d.sign(spd.PendingRecord{ATC: 2, Kind: spd.KindExchange, Mode: spd.ModeOnline, Amount: 9_97, Time: at, Nonce: []byte("EXC-NONCE-2"),
		Exchange: spd.ExchangeCurrency, TargetCurrency: 978, RateNumerator: 1_274, RateDenominator: 10_000, Target: 127})
	// A rate the host never signed is refused, whatever the device says:
	// 1.00 CNY for 1000.00 EUR, its price paid in full; the host's own
	// rate of another ATC, or of the ATC for another currency; and an
	// exchange made after its rate expired.
	for why, r := range map[string]spd.PendingRecord{
		"a rate made up":                    {ATC: 3, Amount: 1_00, Exchange: spd.ExchangeCurrency, TargetCurrency: 978, RateNumerator: 1_000_00, RateDenominator: 1_00, Target: 1_000_00},
		"another ATC's":                     {ATC: 5, Amount: 7_50, Exchange: spd.ExchangeUses, RateNumerator: 1, RateDenominator: 250, Target: 3},
		"into another currency than signed": {ATC: 2, Amount: 9_97, Exchange: spd.ExchangeCurrency, TargetCurrency: 840, RateNumerator: 1_274, RateDenominator: 10_000, Target: 127},
		"after it expired": {ATC: 3, Amount: 7_50, Exchange: spd.ExchangeUses, RateNumerator: 1, RateDenominator: 250, Target: 3,
			Time: at.Add(RateLifetime + time.Second)},
	} {
		r.Kind, r.Mode, r.Nonce = spd.KindExchange, spd.ModeOnline, []byte("EXC-NONCE-X")
		if r.Time.IsZero() {
			r.Time = at
		}
		_, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{d.sign(r)}})
		want := "never signed"
		if why == "after it expired" {
			want = "after its rate expired"
		}
		if ae := wantCode(t, err, http.StatusUnprocessableEntity, CodeNoRate); !strings.Contains(ae.Reason, want) {
			t.Errorf("%s: %q, want it to say %q", why, ae.Reason, want)
		}
		if a := l.audit(); a.Exchanged != 0 || len(a.PaidOut) != 0 {
			t.Fatalf("%s: audit %+v after its refusal", why, a)
		}
	}
	ack, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{uses, cur}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ack.Entries {
		if e.Status != Settled || e.Kind != "exchange" {
			t.Fatalf("entry %+v", e)
		}
	}
	dev, err := l.c.Device(bg, d.id)
	if err != nil || dev.Balance != 100_00-750-9_97 {
		t.Fatalf("device %+v %v", dev, err)
	}
	a := l.audit()
	if a.Exchanged != 17_47 || a.UsesSold != 3 || a.PaidOut["978"] != 127 || a.Issued != a.Balances+a.Pending+a.Settled+a.InFlight+a.Exchanged {
		t.Fatalf("audit %+v", a)
	}
	// Sent again, it settles nothing more.
	ack, err = l.term.Settle(bg, SettlementBatch{Records: [][]byte{uses}})
	if err != nil || ack.Entries[0].Status != AlreadySettled {
		t.Fatalf("again: %+v %v", ack, err)
	}
	// A debit that is not the price of the target at the rate (7 uses at
	// 2.50 for 7.50) is refused: the device paid out more than its rate.
	cheap := d.sign(spd.PendingRecord{ATC: 3, Kind: spd.KindExchange, Mode: spd.ModeOnline, Amount: 7_50, Time: at, Nonce: []byte("EXC-NONCE-5"),
		Exchange: spd.ExchangeUses, RateNumerator: 1, RateDenominator: 250, Target: 7})
	_, err = l.term.Settle(bg, SettlementBatch{Records: [][]byte{cheap}})
	wantCode(t, err, http.StatusUnprocessableEntity, CodeMalformed)
	// An exchange above the issuer's view of the balance is refused.
	big := d.sign(spd.PendingRecord{ATC: 3, Kind: spd.KindExchange, Mode: spd.ModeOnline, Amount: 1_000_00, Time: at, Nonce: []byte("EXC-NONCE-3"),
		Exchange: spd.ExchangeUses, RateNumerator: 1, RateDenominator: 250, Target: 400})
	_, err = l.term.Settle(bg, SettlementBatch{Records: [][]byte{big}})
	wantCode(t, err, http.StatusUnprocessableEntity, CodeInsufficient)
	// Online authorisation is for payments: an exchange settles in a batch.
	_, err = l.term.Authorise(bg, AuthorisationRequest{Record: d.sign(spd.PendingRecord{ATC: 4, Kind: spd.KindExchange, Mode: spd.ModeOnline,
		Amount: 250, Time: at, Nonce: []byte("EXC-NONCE-4"), Exchange: spd.ExchangeUses, RateNumerator: 1, RateDenominator: 250, Target: 1})})
	wantCode(t, err, http.StatusBadRequest, CodeMalformed)
	// The same ATC with another body is a conflict (the device is taken
	// for a clone).
	other := d.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindExchange, Mode: spd.ModeOnline, Amount: 500, Time: at, Nonce: []byte("EXC-NONCE-1"),
		Exchange: spd.ExchangeUses, RateNumerator: 1, RateDenominator: 250, Target: 2})
	_, err = l.term.Settle(bg, SettlementBatch{Records: [][]byte{other}})
	wantCode(t, err, http.StatusConflict, CodeConflict)
	if a2 := l.audit(); a2.Exchanged != a.Exchanged {
		t.Fatalf("exchanged %d after a retry and a conflict, want %d", a2.Exchanged, a.Exchanged)
	}
}

// TestExchangeTargetOverLimit: an exchange whose target (the minor units
// or uses it bought) passes 2^53 is refused with 422 over_limit and stores
// nothing. Before, at a rate above 1 it settled, and the audit then found
// the stored exchange out of range: the books were no longer conserved.
func TestExchangeTargetOverLimit(t *testing.T) {
	l := newLab(t, func(c *Config) {
		c.Rates = []RateOffer{{Kind: ExchangeCurrency, Currency: 156, Target: 392, Numerator: 20, Denominator: 1}}
	})
	d := newSimDevice(t, "xchg-big")
	l.register(d, maxAmount/2, "")
	at := l.clock.Now()
	if _, err := l.term.Rate(bg, RateRequest{DeviceID: d.id, ATC: 1, Kind: ExchangeCurrency, Target: 392}); err != nil {
		t.Fatal(err)
	}
	for _, target := range []uint64{maxAmount + 20, maxAmount + 1} {
		r := spd.PendingRecord{ATC: 1, Kind: spd.KindExchange, Mode: spd.ModeOnline, Time: at, Nonce: []byte("EXC-NONCE-1"),
			Exchange: spd.ExchangeCurrency, TargetCurrency: 392, RateNumerator: 20, RateDenominator: 1, Target: target}
		price, _ := exchangePrice(r)
		r.Amount = price
		before := l.snapshot()
		_, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{d.sign(r)}})
		wantCode(t, err, http.StatusUnprocessableEntity, CodeLimit)
		if l.snapshot() != before {
			t.Fatal("the refused exchange changed the stored state")
		}
		l.audit()
	}
	// At the limit it settles.
	r := spd.PendingRecord{ATC: 1, Kind: spd.KindExchange, Mode: spd.ModeOnline, Time: at, Nonce: []byte("EXC-NONCE-1"),
		Exchange: spd.ExchangeCurrency, TargetCurrency: 392, RateNumerator: 20, RateDenominator: 1, Target: maxAmount}
	r.Amount, _ = exchangePrice(r)
	if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{d.sign(r)}}); err != nil {
		t.Fatal(err)
	}
	if a := l.audit(); a.PaidOut["392"] != maxAmount {
		t.Fatalf("audit %+v", a)
	}
}
