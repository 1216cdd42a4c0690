package device

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

// rate signs an exchange rate for the rig's next ATC.
func (r *rig) rate(t *testing.T, k spd.ExchangeKind, target uint16, n, d uint32, expiry time.Time) []byte {
	t.Helper()
	atc, err := r.c.ATC(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v, err := spd.SealRate(r.is.HostKey(), r.profile.DeviceID, spd.Rate{Kind: k, ATC: atc + 1, Currency: 978,
		TargetCurrency: target, Numerator: n, Denominator: d, Expiry: expiry})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestExchangeIntoUses(t *testing.T) {
	r := activeRig(t, "EXCHG001")
	ctx := context.Background()
	at := t0.Add(time.Hour)
	before := r.snap(t)
	req := spd.ExchangeRequest{Kind: spd.ExchangeUses, Amount: 1000, Currency: 978, Time: at,
		Rate: r.rate(t, spd.ExchangeUses, 0, 1, 300, at.Add(time.Minute))}
	x, err := r.c.Exchange(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Verify(r.pub); err != nil {
		t.Fatal(err)
	}
	after := r.snap(t)
	// 1000 at 300 a use: 3 uses for 900, 100 stays.
	if after.Balance != before.Balance-900 || after.Uses != before.Uses+3 || after.ATC != before.ATC+1 ||
		after.Ledger != before.Ledger+1 || after.Pending != before.Pending {
		t.Fatalf("before %+v after %+v", before, after)
	}
	rec := x.Record
	if rec.Kind != spd.KindExchange || rec.Amount != 900 || rec.Target != 3 || rec.RateNumerator != 1 || rec.RateDenominator != 300 ||
		rec.Exchange != spd.ExchangeUses || len(rec.Nonce) != 16 || rec.Mode != spd.ModeOnline {
		t.Fatalf("record %+v", rec)
	}
	stored, err := r.c.ReadPending(ctx, after.Ledger-1)
	if err != nil || !bytes.Equal(stored.Body(), rec.Body()) {
		t.Fatalf("READ PENDING differs from the answer's record: %v", err)
	}
	// The same rate again is a replay.
	r.expect(t, spd.Exchange(req), apdu.SWRefDataNotUsable)
	// The power cycle keeps the record.
	r.dev.PowerOff()
	r.dev.PowerOn()
	r.login(t)
	again, err := r.c.ReadPending(ctx, after.Ledger-1)
	if err != nil || !bytes.Equal(again.Body(), rec.Body()) {
		t.Fatalf("record after power-on: %v", err)
	}
}

func TestExchangeIntoCurrency(t *testing.T) {
	r := activeRig(t, "EXCHG002")
	ctx := context.Background()
	at := t0.Add(time.Hour)
	before := r.snap(t)
	req := spd.ExchangeRequest{Kind: spd.ExchangeCurrency, Amount: 10_001, Currency: 978, Time: at, Nonce: []byte("XNONCE-1"),
		Rate: r.rate(t, spd.ExchangeCurrency, 840, 10_834, 10_000, at.Add(time.Minute))}
	x, err := r.c.Exchange(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// t = floor(10001*10834/10000) = 10835; v = ceil(10835*10000/10834) = 10001.
	after := r.snap(t)
	if x.Record.Target != 10835 || x.Record.Amount != 10001 || x.Record.TargetCurrency != 840 || after.Balance != before.Balance-10001 || after.Uses != before.Uses {
		t.Fatalf("record %+v after %+v", x.Record, after)
	}
	if !bytes.Equal(x.Record.Nonce, req.Nonce) {
		t.Fatalf("nonce %q", x.Record.Nonce)
	}
}

func TestExchangeRefusals(t *testing.T) {
	r := activeRig(t, "EXCHG003")
	at := t0.Add(time.Hour)
	good := func() spd.ExchangeRequest {
		return spd.ExchangeRequest{Kind: spd.ExchangeUses, Amount: 1000, Currency: 978, Time: at,
			Rate: r.rate(t, spd.ExchangeUses, 0, 1, 300, at.Add(time.Minute))}
	}
	for _, c := range []struct {
		name string
		cmd  func() apdu.Command
		sw   apdu.SW
	}{
		{"P2 01", func() apdu.Command { c := spd.Exchange(good()); c.P2 = 1; return c }, apdu.SWIncorrectP1P2},
		{"P1 03", func() apdu.Command { c := spd.Exchange(good()); c.P1 = 3; return c }, apdu.SWIncorrectP1P2},
		{"amount 0", func() apdu.Command { g := good(); g.Amount = 0; return spd.Exchange(g) }, apdu.SWWrongData},
		{"other currency", func() apdu.Command { g := good(); g.Currency = 840; return spd.Exchange(g) }, apdu.SWWrongData},
		{"rate for currency as uses", func() apdu.Command {
			g := good()
			g.Rate = r.rate(t, spd.ExchangeCurrency, 840, 1, 1, at.Add(time.Minute))
			return spd.Exchange(g)
		}, apdu.SWSecurityNotSatisfied},
		{"rate of the CA key", func() apdu.Command {
			g := good()
			v, err := spd.SealRate(r.is.CA, r.profile.DeviceID, spd.Rate{Kind: spd.ExchangeUses, ATC: 1, Currency: 978, Numerator: 1, Denominator: 3, Expiry: at.Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			g.Rate = v
			return spd.Exchange(g)
		}, apdu.SWSecurityNotSatisfied},
		{"expired rate", func() apdu.Command {
			g := good()
			g.Rate = r.rate(t, spd.ExchangeUses, 0, 1, 300, at.Add(-time.Second))
			return spd.Exchange(g)
		}, apdu.SWConditionsNotSat},
		{"amount buys nothing", func() apdu.Command { g := good(); g.Amount = 299; return spd.Exchange(g) }, apdu.SWWrongData},
		{"above the balance", func() apdu.Command { g := good(); g.Amount = 100_200; return spd.Exchange(g) }, apdu.SWConditionsNotSat},
		{"uses past 2^32-1", func() apdu.Command {
			g := good()
			g.Rate = r.rate(t, spd.ExchangeUses, 0, 1<<32-1, 1, at.Add(time.Minute))
			g.Amount = 1
			return spd.Exchange(g)
		}, apdu.SWWrongData},
	} {
		before := r.snap(t)
		if resp := r.do(t, c.cmd()); resp.SW != c.sw {
			t.Errorf("%s: SW %s, want %s", c.name, resp.SW, c.sw)
		}
		if after := r.snap(t); after != before {
			t.Errorf("%s changed %+v to %+v", c.name, before, after)
		}
	}
	// Not verified.
	r.expect(t, spd.Select(), apdu.SWOK)
	r.expect(t, spd.Exchange(good()), apdu.SWSecurityNotSatisfied)
}

func TestQuote(t *testing.T) {
	for _, c := range []struct {
		amount int64
		n, d   uint32
	}{{1000, 1, 300}, {1 << 62, 1<<32 - 1, 1}, {1 << 62, 1, 1<<32 - 1}, {1, 1<<32 - 1, 1<<32 - 1}, {10_001, 10_834, 10_000}, {7, 3, 2}} {
		tb, vb := spd.QuoteBig(c.amount, c.n, c.d)
		tg, v, err := spd.Quote(c.amount, c.n, c.d, 1<<62)
		if !tb.IsUint64() || tb.Uint64() > 1<<62 || tb.Sign() == 0 {
			if err == nil {
				t.Errorf("%+v: quoted %d, want out of range", c, tg)
			}
			continue
		}
		if err != nil || tg != tb.Uint64() || v != vb.Int64() || v > c.amount {
			t.Errorf("%+v: %d, %d, %v; want %s, %s", c, tg, v, err, tb, vb)
		}
	}
}
