package scenarios

import (
	"bytes"
	"context"
	"fmt"
	"math/big"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/backend/backendtest"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
	"github.com/spdlab/spdlab/reference/tlv"
)

// EXCHANGE (SPEC.md 4.11): stored value into uses or another currency at
// an exchange rate the issuer's host signed for one device and one ATC.

// What an exchange buys (P1, DF78), written out from SPEC.md 4.11.
const (
	excUses     byte = 0x01
	excCurrency byte = 0x02
)

// excUSD is the currency the suite buys (ISO 4217 840).
const excUSD uint16 = 840

// excRate is a rate body of SPEC.md 4.11, built here from the table
// rather than by the codec the device shares. A field of -1 is left out.
type excRate struct {
	kind     int // DF78
	atc      int64
	currency int // 5F2A
	target   int // DF79, -1: absent
	n, d     int64
	expiry   time.Time
}

func (r excRate) body() []byte {
	GinkgoHelper()
	var b tlv.Builder
	if r.kind >= 0 {
		b.AddUint(0xDF78, 1, uint64(r.kind))
	}
	b.AddUint(0x9F36, 4, uint64(r.atc))
	b.AddUint(0x5F2A, 2, uint64(r.currency))
	if r.target >= 0 {
		b.AddUint(0xDF79, 2, uint64(r.target))
	}
	b.AddUint(0xDF7A, 4, uint64(r.n))
	b.AddUint(0xDF7B, 4, uint64(r.d))
	b.AddUint(0x5F24, 4, uint64(r.expiry.Unix()))
	out, err := b.Bytes()
	Expect(err).NotTo(HaveOccurred())
	return out
}

// excSeal signs body with the host key for the fixture's device in the
// rate's domain (INS 7C).
func (f *Fixture) excSeal(body []byte) []byte {
	GinkgoHelper()
	v, err := spd.SealIssuerData(f.Issuer.HostKey(), 0x7C, f.Profile.DeviceID, body)
	Expect(err).NotTo(HaveOccurred())
	return v
}

// excNext is a rate for the fixture device's next ATC, valid two minutes
// from the suite's clock: n/d for uses, or n/d of excUSD.
func (f *Fixture) excNext(ctx context.Context, kind byte, n, d int64) excRate {
	GinkgoHelper()
	atc, err := f.Client.ATC(ctx)
	Expect(err).NotTo(HaveOccurred())
	r := excRate{kind: int(kind), atc: int64(atc) + 1, currency: 978, target: -1, n: n, d: d, expiry: Clock.Add(2 * time.Minute)}
	if kind == excCurrency {
		r.target = int(excUSD)
	}
	return r
}

// excCommand is EXCHANGE of amount with the rate value rate.
func excCommand(kind byte, amount int64, rate, nonce []byte) apdu.Command {
	return spd.Exchange(spd.ExchangeRequest{Kind: spd.ExchangeKind(kind), Amount: amount, Currency: 978, Time: Clock, Rate: rate, Nonce: nonce})
}

// excQuote is SPEC.md 4.11's arithmetic in arbitrary precision: the target
// floor(a*n/d) and the debit ceil(t*d/n).
func excQuote(a, n, d int64) (t, v *big.Int) {
	t = new(big.Int).Mul(big.NewInt(a), big.NewInt(n))
	t.Quo(t, big.NewInt(d))
	v = new(big.Int).Mul(t, big.NewInt(d))
	v.Add(v, big.NewInt(n-1))
	v.Quo(v, big.NewInt(n))
	return t, v
}

// exchanges sends EXCHANGE of amount at rate (signed here) and checks the
// whole answer and state against SPEC.md 4.11: the target and debit of
// excQuote, the balance, uses, ATC and ledger after, the signed result and
// record agreeing, the record exactly as READ PENDING answers it.
func (f *Fixture) exchanges(ctx context.Context, rate excRate, amount int64, nonce []byte) spd.PendingRecord {
	GinkgoHelper()
	t, v := excQuote(amount, rate.n, rate.d)
	before := f.state(ctx)
	x, err := f.Client.Exchange(ctx, spd.ExchangeRequest{Kind: spd.ExchangeKind(rate.kind), Amount: amount, Currency: 978,
		Time: Clock, Rate: f.excSeal(rate.body()), Nonce: nonce})
	Expect(err).NotTo(HaveOccurred(), "EXCHANGE of %d at %d/%d", amount, rate.n, rate.d)
	Expect(x.Result.Verify(f.Pub)).To(Succeed(), "the result is signed by the device key")
	Expect(x.Record.Verify(f.Pub)).To(Succeed(), "the record is signed by the device key")
	after := f.state(ctx)
	want := before.Snapshot
	want.ATC++
	want.Ledger++
	want.Balance -= v.Int64()
	if byte(rate.kind) == excUses {
		want.Uses += uint32(t.Uint64())
	}
	Expect(after.Snapshot).To(Equal(want), "state after exchanging %d at %d/%d: target %s for %s", amount, rate.n, rate.d, t, v)
	in := x.Result.Info()
	Expect(x.Result.Success()).To(BeTrue())
	Expect(in.Kind).To(Equal(medium.KindPaymentResult))
	Expect(in.Amount).To(Equal(v.Int64()), "the result shows the debit")
	Expect(in.Balance).To(Equal(after.Balance))
	Expect(uint32(in.Uses)).To(Equal(after.Uses))
	Expect(in.ATC).To(Equal(after.ATC))
	Expect(in.Pending).To(Equal(after.Pending))
	Expect(in.Token).To(Equal(f.Profile.AccountToken), "the account token, never the account")
	Expect(in.Issued.Equal(Clock) && in.Expiry.Equal(Clock)).To(BeTrue(), "9A = 5F24 = the request time")
	rec := x.Record
	Expect(rec.Kind).To(Equal(spd.PaymentKind(0x07)))
	Expect(rec.Mode).To(Equal(spd.ModeOnline))
	Expect(rec.ATC).To(Equal(after.ATC))
	Expect(rec.Amount).To(Equal(v.Int64()), "the record's 9F02 is the debit")
	Expect(rec.Currency).To(Equal(uint16(978)))
	Expect(rec.Token).To(Equal(f.Profile.AccountToken))
	Expect(rec.Time.Equal(Clock)).To(BeTrue())
	Expect(byte(rec.Exchange)).To(Equal(byte(rate.kind)))
	Expect(rec.RateNumerator).To(Equal(uint32(rate.n)))
	Expect(rec.RateDenominator).To(Equal(uint32(rate.d)))
	Expect(rec.Target).To(Equal(t.Uint64()), "the record's DF7C is the target")
	if byte(rate.kind) == excCurrency {
		Expect(rec.TargetCurrency).To(Equal(uint16(rate.target)))
	} else {
		Expect(rec.TargetCurrency).To(BeZero())
	}
	if len(nonce) > 0 {
		Expect(rec.Nonce).To(Equal(nonce), "the terminal's nonce")
	} else {
		Expect(rec.Nonce).To(HaveLen(16), "the device's own nonce")
	}
	Expect(rec.Payee).To(BeEmpty())
	Expect(after.Records).To(HaveLen(len(before.Records) + 1))
	stored := after.Records[len(after.Records)-1]
	Expect(bytes.Equal(stored.Body(), rec.Body())).To(BeTrue(), "the answer's record is the ledger's (READ PENDING)")
	return rec
}

func defineExchange(d Driver) {
	defineExchangeService(d)
	Describe("EXCHANGE of stored value at a host-signed rate (SPEC.md 4.11)", func() {
		It("MUST exchange stored value into uses and into another currency at the signed rate, in one step with its signed record",
			Case("TC-EXC-001", Positive, "SPD-EXC-1", "SPD-EXC-2", "SPD-EXC-3", "SPD-PAY-4", "SPD-LED-1", "SPD-LED-2", "C13", "C1", "C2", "C3", "C4", "C11", "C14"),
			func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				// 10.00 at 3.00 a use: 3 uses for 9.00, 1.00 stays.
				f.exchanges(ctx, f.excNext(ctx, excUses, 1, 3_00), 10_00, []byte("EXC-NONCE-0001"))
				// 5 uses for 4.00 (a bundle), the device's own nonce.
				f.exchanges(ctx, f.excNext(ctx, excUses, 5, 4_00), 4_00, nil)
				// 20.01 EUR at 1.0834 USD: 21.67 USD (the floor of 2167.88
				// cents) for ceil(2167*10000/10834) = 20.01 EUR.
				f.exchanges(ctx, f.excNext(ctx, excCurrency, 10_834, 10_000), 20_01, []byte("EXC-NONCE-0002"))
				// 7.00 EUR at 0.9134: 6.39 USD, whose least price is 6.9958
				// EUR, so 7.00 EUR.
				f.exchanges(ctx, f.excNext(ctx, excCurrency, 9_134, 10_000), 7_00, nil)
				// The ledger keeps each until an ACKNOWLEDGE names it; the
				// pending total counts payments only.
				s := f.state(ctx)
				Expect(s.Ledger).To(Equal(4))
				Expect(s.Pending).To(BeZero())
				atcs := []uint32{}
				for _, r := range s.Records {
					atcs = append(atcs, r.ATC)
				}
				Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, ATCs: atcs[:2]})).To(Equal(sw9000))
				Expect(f.Client.PendingCount(ctx)).To(Equal(2))
			}, SpecTimeout(60*time.Second))

		It("MUST keep the truncation remainder in the balance and compute exactly at the extremes of amount and rate",
			Case("TC-EXC-002", Positive, "SPD-EXC-3", "SPD-EXC-1", "C13", "C18", "C11"),
			func(ctx SpecContext) {
				p := TestProfile()
				p.Balance = 1 << 62
				f := personalised(ctx, d, &p)
				f.login(ctx)
				// 2^62 at one use per 2^32-1: 2^30 uses, remainder 2^30.
				rec := f.exchanges(ctx, f.excNext(ctx, excUses, 1, 1<<32-1), 1<<62, nil)
				Expect(rec.Target).To(Equal(uint64(1 << 30)))
				Expect(rec.Amount).To(Equal(int64(1<<62 - 1<<30)))
				Expect(f.Client.Balance(ctx)).To(Equal(int64(1 << 30)))
				Expect(f.Client.Uses(ctx)).To(Equal(uint32(10 + 1<<30)))
				// A rate of (2^32-1)/(2^32-1) on 1: target 1 for 1. Each
				// device is let go when done with: one sample at a time
				// is enough.
				f.exchanges(ctx, f.excNext(ctx, excCurrency, 1<<32-1, 1<<32-1), 1, nil)
				Expect(f.release()).To(Succeed())
				// The uses up to exactly 2^32-1: n = d = 1.
				p2 := TestProfile()
				p2.Balance = 1 << 62
				g := personalised(ctx, d, &p2)
				g.login(ctx)
				Expect(g.Client.Uses(ctx)).To(Equal(uint32(10)))
				g.exchanges(ctx, g.excNext(ctx, excUses, 1, 1), 1<<32-1-10, nil)
				Expect(g.Client.Uses(ctx)).To(Equal(uint32(1<<32 - 1)))
				// The largest rate each way on another currency: 1 unit at
				// (2^32-1)/1, and 2^62 at 1/1 (target exactly 2^62), which
				// empties the balance.
				g.exchanges(ctx, g.excNext(ctx, excCurrency, 1<<32-1, 1), 1, nil)
				Expect(g.release()).To(Succeed())
				h := personalised(ctx, d, &p)
				h.login(ctx)
				h.exchanges(ctx, h.excNext(ctx, excCurrency, 1, 1), 1<<62, nil)
				Expect(h.Client.Balance(ctx)).To(BeZero())
			}, SpecTimeout(60*time.Second))

		It("MUST refuse a forged, misdirected, other-kind, replayed or expired exchange rate with its status word, changing nothing",
			Case("TC-EXC-003", Negative, "SPD-EXC-2", "SPD-KEY-3", "SPD-APP-4", "C13", "C14", "C15", "C40"),
			func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				good := f.excNext(ctx, excUses, 1, 1_00)
				send := func(kind byte, v []byte) apdu.Command { return excCommand(kind, 5_00, v, nil) }
				// Forged: signed with the CA key, or by a key of nobody.
				forged, err := spd.SealIssuerData(f.Issuer.CA, 0x7C, f.Profile.DeviceID, good.body())
				Expect(err).NotTo(HaveOccurred())
				f.refuses(ctx, send(excUses, forged), sw6982, "a rate signed with the CA key")
				// Misdirected: another device, another domain (the host
				// assertion's 7A), a signature over another body.
				other, err := spd.SealIssuerData(f.Issuer.HostKey(), 0x7C, []byte{0x5D, 0x1A, 0xEE, 0, 0, 0, 0, 9}, good.body())
				Expect(err).NotTo(HaveOccurred())
				f.refuses(ctx, send(excUses, other), sw6982, "a rate for another device")
				assertionDomain, err := spd.SealIssuerData(f.Issuer.HostKey(), 0x7A, f.Profile.DeviceID, good.body())
				Expect(err).NotTo(HaveOccurred())
				f.refuses(ctx, send(excUses, assertionDomain), sw6982, "a rate signed in the host assertion's domain")
				sig := f.excSeal(good.body())[len(good.body()):]
				changed := good
				changed.d = 1
				tampered := append(changed.body(), sig...)
				f.refuses(ctx, send(excUses, tampered), sw6982, "a rate whose price was changed after signing")
				// A rate for the other kind or another currency sold.
				f.refuses(ctx, send(excCurrency, f.excSeal(good.body())), sw6982, "a rate for uses sent as an exchange into currency")
				cur := f.excNext(ctx, excCurrency, 1, 1)
				f.refuses(ctx, send(excUses, f.excSeal(cur.body())), sw6982, "a rate for currency sent as an exchange into uses")
				sold := good
				sold.currency = 840
				f.refuses(ctx, send(excUses, f.excSeal(sold.body())), sw6982, "a rate selling another currency")
				// Replayed: for the current ATC, or for one two ahead.
				past := good
				past.atc--
				f.refuses(ctx, send(excUses, f.excSeal(past.body())), sw6984, "a rate for the current ATC")
				ahead := good
				ahead.atc++
				f.refuses(ctx, send(excUses, f.excSeal(ahead.body())), sw6984, "a rate for the ATC after the next")
				// Expired: before the terminal time; exactly at it is valid.
				old := good
				old.expiry = Clock.Add(-time.Second)
				f.refuses(ctx, send(excUses, f.excSeal(old.body())), sw6985, "a rate that expired a second before the terminal time")
				// A body that breaks the table, signed: 6A80.
				for _, bad := range []struct {
					why  string
					edit func(*excRate)
				}{
					{"numerator 0", func(r *excRate) { r.n = 0 }},
					{"denominator 0", func(r *excRate) { r.d = 0 }},
					{"a currency bought on a rate for uses", func(r *excRate) { r.target = int(excUSD) }},
					{"no kind", func(r *excRate) { r.kind = -1 }},
					{"kind 03", func(r *excRate) { r.kind = 3 }},
				} {
					r := good
					bad.edit(&r)
					f.refuses(ctx, send(excUses, f.excSeal(r.body())), sw6A80, "a signed rate with "+bad.why)
				}
				noTarget := cur
				noTarget.target = -1
				f.refuses(ctx, send(excCurrency, f.excSeal(noTarget.body())), sw6A80, "a rate for currency without the currency bought")
				same := cur
				same.target = 978
				f.refuses(ctx, send(excCurrency, f.excSeal(same.body())), sw6A80, "a rate buying the currency it sells")
				// The good rate still serves, at exactly its expiry, once.
				atExpiry := good
				atExpiry.expiry = Clock
				v := f.excSeal(atExpiry.body())
				before := f.state(ctx)
				Expect(f.sw(ctx, send(excUses, v))).To(Equal(sw9000), "a rate at exactly its expiry")
				Expect(f.state(ctx).Balance).To(Equal(before.Balance - 5_00))
				f.refuses(ctx, send(excUses, v), sw6984, "the same rate again (replayed)")
				// The last sync time after the expiry: expired too.
				next := f.excNext(ctx, excUses, 1, 1_00)
				f.update(ctx, spd.ParameterUpdate{Counter: 1, Time: Clock.Add(time.Hour)})
				f.refuses(ctx, send(excUses, f.excSeal(next.body())), sw6985, "a rate that expired before the last sync time")
			}, SpecTimeout(60*time.Second))

		It("MUST refuse an exchange that buys nothing, passes its limits, exceeds the balance, breaks the command or comes in a blocked or terminated device, with its status word, changing nothing",
			Case("TC-EXC-004", Negative, "SPD-EXC-3", "SPD-EXC-1", "SPD-PIN-1", "SPD-LC-3", "SPD-APP-4", "C13", "C18", "C32"),
			func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				r := f.excNext(ctx, excUses, 1, 3_00)
				v := f.excSeal(r.body())
				f.refuses(ctx, excCommand(excUses, 2_99, v, nil), sw6A80, "2.99 at 3.00 a use buys nothing")
				f.refuses(ctx, excCommand(excUses, 100_00+3_00, v, nil), sw6985, "a debit of 102.00 above the balance of 100.00")
				// Uses past 2^32-1: 10 uses and 2^32-10 more.
				big := f.excNext(ctx, excUses, 1<<32-1, 1)
				f.refuses(ctx, excCommand(excUses, 1, f.excSeal(big.body()), nil), sw6A80, "uses past 2^32-1")
				bundle := f.excNext(ctx, excUses, 1, 1)
				f.refuses(ctx, excCommand(excUses, 1<<32-10, f.excSeal(bundle.body()), nil), sw6A80, "10 uses and 2^32-10 more")
				// Another currency above 2^62: 2^61+1 at 2/1.
				cur := f.excNext(ctx, excCurrency, 2, 1)
				f.refuses(ctx, excCommand(excCurrency, 1<<61+1, f.excSeal(cur.body()), nil), sw6A80, "a target above 2^62")
				// The command itself.
				cmd := excCommand(excUses, 3_00, v, nil)
				p2 := cmd
				p2.P2 = 1
				f.refuses(ctx, p2, sw6A86, "P2 01")
				for _, p1 := range []byte{0x00, 0x03, 0xFF} {
					c := cmd
					c.P1 = p1
					f.refuses(ctx, c, sw6A86, fmt.Sprintf("P1 %02X", p1))
				}
				withData := func(why string, edit func(*tlv.Builder)) {
					var b tlv.Builder
					edit(&b)
					data, err := b.Bytes()
					Expect(err).NotTo(HaveOccurred())
					c := cmd
					c.Data = data
					f.refuses(ctx, c, sw6A80, why)
				}
				withData("amount 0", func(b *tlv.Builder) {
					b.AddUint(0x9F02, 8, 0)
					b.AddUint(0x5F2A, 2, 978)
					b.AddUint(0x9A, 4, uint64(Clock.Unix()))
					b.Add(0xDF77, v)
				})
				withData("amount above 2^62", func(b *tlv.Builder) {
					b.AddUint(0x9F02, 8, 1<<62+1)
					b.AddUint(0x5F2A, 2, 978)
					b.AddUint(0x9A, 4, uint64(Clock.Unix()))
					b.Add(0xDF77, v)
				})
				withData("another currency", func(b *tlv.Builder) {
					b.AddUint(0x9F02, 8, 3_00)
					b.AddUint(0x5F2A, 2, 840)
					b.AddUint(0x9A, 4, uint64(Clock.Unix()))
					b.Add(0xDF77, v)
				})
				withData("no rate", func(b *tlv.Builder) {
					b.AddUint(0x9F02, 8, 3_00)
					b.AddUint(0x5F2A, 2, 978)
					b.AddUint(0x9A, 4, uint64(Clock.Unix()))
				})
				withData("a rate without its signature", func(b *tlv.Builder) {
					b.AddUint(0x9F02, 8, 3_00)
					b.AddUint(0x5F2A, 2, 978)
					b.AddUint(0x9A, 4, uint64(Clock.Unix()))
					b.Add(0xDF77, r.body())
				})
				withData("an unknown tag", func(b *tlv.Builder) {
					b.AddUint(0x9F02, 8, 3_00)
					b.AddUint(0x5F2A, 2, 978)
					b.AddUint(0x9A, 4, uint64(Clock.Unix()))
					b.Add(0xDF77, v)
					b.AddUint(0xDF26, 2, uint64(Home))
				})
				withData("a nonce of 3 bytes", func(b *tlv.Builder) {
					b.AddUint(0x9F02, 8, 3_00)
					b.AddUint(0x5F2A, 2, 978)
					b.AddUint(0x9A, 4, uint64(Clock.Unix()))
					b.Add(0xDF77, v)
					b.Add(0x9F37, []byte("abc"))
				})
				// Without cardholder verification.
				_, err := f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				f.refuses(ctx, cmd, sw6982, "EXCHANGE without VERIFY")
				// The precedence of 1.2: verification before the rate, so an
				// expired or replayed rate answers 6982 too when not verified.
				expired, replayed := r, r
				expired.expiry = Clock.Add(-time.Minute)
				replayed.atc += 5
				f.refuses(ctx, excCommand(excUses, 3_00, f.excSeal(expired.body()), nil), sw6982, "EXCHANGE without VERIFY at an expired rate")
				f.refuses(ctx, excCommand(excUses, 3_00, f.excSeal(replayed.body()), nil), sw6982, "EXCHANGE without VERIFY at a rate for another ATC")
				// Not in a blocked device; again once active.
				f.login(ctx)
				blocked, active := spd.StateBlocked, spd.StateActive
				f.update(ctx, spd.ParameterUpdate{Counter: 1, State: &blocked})
				f.login(ctx)
				f.refuses(ctx, cmd, sw6985, "EXCHANGE in a blocked device")
				f.update(ctx, spd.ParameterUpdate{Counter: 2, State: &active})
				f.login(ctx)
				f.exchanges(ctx, r, 3_00, nil)
				// Not in a terminated device, whose state check comes before
				// verification (section 1.1, step 4).
				terminated := spd.StateTerminated
				next := f.excNext(ctx, excUses, 1, 3_00)
				f.update(ctx, spd.ParameterUpdate{Counter: 3, State: &terminated})
				_, err = f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				f.refuses(ctx, excCommand(excUses, 3_00, f.excSeal(next.body()), nil), sw6985, "EXCHANGE in a terminated device")
			}, SpecTimeout(60*time.Second))

		It("MUST refuse an exchange into a full ledger with 6A84, changing nothing",
			Label("slow"), Case("TC-EXC-005", Negative, "SPD-EXC-1", "SPD-LED-1", "SPD-APP-4", "C13", "C4", "C7"),
			func(ctx SpecContext) {
				n := capacities(d).Ledger
				f := personalised(ctx, d, nil)
				f.login(ctx)
				for i := 0; i < n; i++ {
					r := f.excNext(ctx, excUses, 1, 1)
					Expect(f.sw(ctx, excCommand(excUses, 1, f.excSeal(r.body()), nil))).To(Equal(sw9000), "exchange %d", i+1)
				}
				Expect(f.Client.PendingCount(ctx)).To(Equal(n))
				r := f.excNext(ctx, excUses, 1, 1)
				f.refuses(ctx, excCommand(excUses, 1, f.excSeal(r.body()), nil), sw6A84, fmt.Sprintf("record %d of a ledger of %d", n+1, n))
				// A debit above the balance comes first.
				f.refuses(ctx, excCommand(excUses, 100_00, f.excSeal(r.body()), nil), sw6985, "a debit above the balance into a full ledger")
			}, SpecTimeout(60*time.Second))

		It("MUST leave the old state or the new after a power cut at any persistent write of EXCHANGE, conserving value",
			Serial, Label("slow"), Case("TC-EXC-006", Positive, "SPD-STO-1", "SPD-EXC-1", "C13", "C2", "C7"),
			func(ctx SpecContext) {
				need(d, Tearing)
				f := personalised(ctx, d, nil)
				for _, c := range []struct {
					kind         byte
					amount, n, d int64
					debit        int64
					uses         uint32
				}{
					{excUses, 10_00, 1, 3_00, 9_00, 3},
					{excCurrency, 10_00, 9_134, 10_000, 10_00, 0},
				} {
					c := c
					f.sweep(ctx, tearable{name: fmt.Sprintf("EXCHANGE P1 %02X", c.kind), verified: true,
						command: func(b DeviceState) apdu.Command {
							r := excRate{kind: int(c.kind), atc: int64(b.ATC) + 1, currency: 978, target: -1, n: c.n, d: c.d, expiry: Clock.Add(time.Minute)}
							if c.kind == excCurrency {
								r.target = int(excUSD)
							}
							return excCommand(c.kind, c.amount, f.excSeal(r.body()), []byte("TEAR-NONCE"))
						},
						isNew: func(b, a DeviceState) bool {
							w := b.Snapshot
							w.ATC++
							w.Ledger++
							w.Balance -= c.debit
							w.Uses += c.uses
							return grew(b, a, w, func(r spd.PendingRecord) bool {
								return r.ATC == w.ATC && r.Kind == 0x07 && r.Amount == c.debit && byte(r.Exchange) == c.kind
							})
						}})
				}
			}, SpecTimeout(60*time.Second))
	})
}

// defineExchangeService runs 4.11 end to end: the terminal has the lab's
// backend sign the rate, the DUT exchanges at it, and the backend settles
// the exchange record and keeps the books conserved with it.
func defineExchangeService(d Driver) {
	Describe("EXCHANGE through the issuer's host (SPEC.md 4.11)", func() {
		It("MUST exchange at the rate the host signs and settle the exchange once, the audit conserving the exchanged value; a rate the host refuses or a stale one exchanges nothing",
			Case("TC-EXC-007", Positive, Negative, "SPD-EXC-4", "SPD-EXC-5", "SPD-EXC-2", "SPD-LED-5", "C13", "C4", "C7", "C30", "C46", "C47"),
			func(ctx SpecContext) {
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				start := c.f.snapshot(ctx)
				// Into uses at the lab issuer's 2.50 a use: 10.00 buys 4,
				// settled at once and acknowledged on the device.
				o := done(c.tm.Exchange(ctx, terminal.ExchangeOrder{Kind: spd.ExchangeUses, Amount: 10_00}))
				Expect(o.Bought).To(Equal(uint64(4)))
				Expect(o.Amount).To(Equal(int64(10_00)))
				Expect(o.Online).To(BeTrue(), "settled at once: %s", o)
				after := c.f.snapshot(ctx)
				Expect(after.Balance).To(Equal(start.Balance - 10_00))
				Expect(after.Uses).To(Equal(start.Uses + 4))
				Expect(after.Ledger).To(BeZero(), "the host's ACKNOWLEDGE dropped the settled record")
				Expect(s.issuerBalance(ctx, c)).To(Equal(start.Balance - 10_00))
				a := s.conserved(ctx)
				Expect(a.Exchanged).To(Equal(int64(10_00)))
				Expect(a.UsesSold).To(Equal(int64(4)))
				Expect(a.Issued).To(Equal(a.Balances + a.Pending + a.Settled + a.InFlight + a.Exchanged))
				// Into USD at 1.0834, the backend away for the settlement: the
				// record waits in the ledger and settles on the next Settle,
				// once.
				s.net.At("/v1/settlements", backendtest.Unreachable, backendtest.Unreachable, backendtest.Unreachable)
				o = done(c.tm.Exchange(ctx, terminal.ExchangeOrder{Kind: spd.ExchangeCurrency, Amount: 20_01, Target: 840}))
				Expect(o.Bought).To(Equal(uint64(21_67)))
				Expect(o.Amount).To(Equal(int64(20_01)))
				Expect(o.Pending).To(BeTrue(), "the settlement did not reach the backend: %s", o)
				Expect(c.f.snapshot(ctx).Ledger).To(Equal(1))
				Expect(s.issuerBalance(ctx, c)).To(Equal(start.Balance - 10_00))
				s.net.Clear()
				st := done(c.tm.Settle(ctx))
				Expect(st.Settled).To(Equal(1))
				Expect(c.f.snapshot(ctx).Ledger).To(BeZero())
				Expect(s.issuerBalance(ctx, c)).To(Equal(start.Balance - 30_01))
				a = s.conserved(ctx)
				Expect(a.Exchanged).To(Equal(int64(30_01)))
				Expect(a.PaidOut).To(HaveKeyWithValue("840", int64(21_67)))

				// Refused by the host: a pair the issuer does not sell; then
				// a rate made for the next ATC goes stale when a payment takes
				// that ATC first, and the device refuses it (6984).
				before := c.f.snapshot(ctx)
				notDone(c.tm.Exchange(ctx, terminal.ExchangeOrder{Kind: spd.ExchangeCurrency, Amount: 5_00, Target: 392}), backend.CodeNoRate)
				rate, err := s.admin.Rate(ctx, backend.RateRequest{DeviceID: c.id(), ATC: before.ATC + 1, Kind: backend.ExchangeUses})
				Expect(err).NotTo(HaveOccurred())
				Expect(c.f.snapshot(ctx)).To(Equal(before), "a rate changes nothing on the device")
				if d.Profile().Has(PayBalance) {
					done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("1.00", "EXC-1")), Kind: spd.KindBalance}))
				} else {
					done(c.tm.Exchange(ctx, terminal.ExchangeOrder{Kind: spd.ExchangeUses, Amount: 2_50}))
				}
				c.f.login(ctx)
				c.f.refuses(ctx, excCommand(excUses, 5_00, rate.Rate, nil), sw6984, "a rate the host made for an ATC a payment took")
				// A revoked device gets no rate.
				_, err = s.admin.Revoke(ctx, backend.Revocation{DeviceID: c.id(), Reason: "lost"})
				Expect(err).NotTo(HaveOccurred())
				mid := c.f.snapshot(ctx)
				notDone(c.tm.Exchange(ctx, terminal.ExchangeOrder{Kind: spd.ExchangeUses, Amount: 5_00}), backend.CodeRevoked)
				Expect(c.f.snapshot(ctx)).To(Equal(mid), "nothing was exchanged")
				s.conserved(ctx)
			}, SpecTimeout(90*time.Second))
	})
}
