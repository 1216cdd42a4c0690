package scenarios

import (
	"fmt"
	"math/rand/v2"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

// tierProfile is TestProfile at membership tier t, so that adjusted and
// raw amounts differ (discounts 0, 10, 20, 30 %).
func tierProfile(t uint8) *spd.Profile {
	p := TestProfile()
	p.Tier = t
	return &p
}

func definePaymentCases(d Driver) {
	It("MUST record a use write-off as a ledger record of amount 0 and refuse a use payment with an amount with 6A80",
		Case("TC-PAY-006", Positive, Negative, "SPD-PAY-3", "SPD-LED-1", "C2", "C3"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			f.pays(ctx, payment(spd.KindUse, spd.ModeOnline, 0), 0)
			f.pays(ctx, payment(spd.KindUse, spd.ModeOffline, 0), 0)
			f.refuses(ctx, spd.Pay(payment(spd.KindUse, spd.ModeOnline, 1)), sw6A80, "a use write-off carrying an amount")
		}, SpecTimeout(30*time.Second))

	It("MUST take the first matching decline of section 4.4: the per-payment limit before the balance",
		Case("TC-PAY-007", Positive, Negative, "SPD-PAY-6", "SPD-LED-3", "C7", "C31"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			f.declines(ctx, payment(spd.KindBalance, spd.ModeOnline, 150_00), reasonPaymentLimit)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 50_00), 50_00)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 40_00), 40_00)
			f.declines(ctx, payment(spd.KindBalance, spd.ModeOnline, 10_01), reasonBalance)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 10_00), 10_00)
			f.declines(ctx, payment(spd.KindBalance, spd.ModeOnline, 1), reasonBalance)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 0), 0)
			r := payment(spd.KindBalance, spd.ModeOnline, 1_00)
			r.Region = Barred
			f.declines(ctx, r, reasonLocation)
			r.Region, r.RequiredTier = Home, 1
			f.declines(ctx, r, reasonTier)
		}, SpecTimeout(30*time.Second))

	It("MUST bind the merchant's payee and order reference into the signed result and the ledger record",
		Case("TC-PAY-008", Positive, Negative, "SPD-PAY-7", "SPD-PAY-5", "SPD-LED-2", "C5", "C29", "C48", "C50"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			for i, kind := range []spd.PaymentKind{spd.KindBalance, spd.KindAccount, spd.KindUse} {
				r := payment(kind, spd.ModeOnline, 3_21)
				if kind == spd.KindUse {
					r.Amount = 0
				}
				r.Payee = []byte("DE00MERCHANT" + string(rune('A'+i)))
				r.PayeeNonce = []byte("ORDER-77" + string(rune('0'+i)))
				f.pays(ctx, r, r.Amount)
			}
			r := payment(spd.KindBalance, spd.ModeOffline, 1_00)
			r.Payee = make([]byte, 33)
			f.refuses(ctx, spd.Pay(r), sw6A80, "a payee of 33 bytes")
			r.Payee, r.PayeeNonce = []byte("P"), make([]byte, 33)
			f.refuses(ctx, spd.Pay(r), sw6A80, "a payee nonce of 33 bytes")
		}, SpecTimeout(30*time.Second))

	It("MUST add exactly one to the ATC for each PAY not declined, medium, token and transfer, and never reuse a value",
		Case("TC-PAY-009", Positive, Negative, "SPD-PAY-4", "C3", "C15"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			Expect(f.Client.ATC(ctx)).To(Equal(uint32(0)), "the ATC starts at 0")
			var seen []uint32
			step := func(what string, do func() uint32) {
				before, err := f.Client.ATC(ctx)
				Expect(err).NotTo(HaveOccurred())
				got := do()
				after, err := f.Client.ATC(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(after).To(Equal(before+1), what)
				Expect(got).To(Equal(after), asserts("C15", "%s: the SPD updated its ATC and shows it"), what)
				Expect(seen).NotTo(ContainElement(after))
				seen = append(seen, after)
			}
			step("PAY", func() uint32 { return f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 1_00), 1_00).Info().ATC })
			step("GENERATE MEDIUM", func() uint32 {
				m, err := f.Client.GenerateMedium(ctx, spd.MediumRequest{Time: Clock})
				Expect(err).NotTo(HaveOccurred())
				return m.Info().ATC
			})
			f.declines(ctx, payment(spd.KindBalance, spd.ModeOnline, 99_00), reasonPaymentLimit)
			step("PAY kind 03", func() uint32 { return f.pays(ctx, payment(spd.KindUse, spd.ModeOffline, 0), 0).Info().ATC })
			step("TRANSFER", func() uint32 {
				return f.transferTo(ctx, []byte{0x5D, 0x1A, 0xEE, 0, 0, 0, 0, 9}, 1_00, Clock.Add(time.Hour)).Info().ATC
			})
			step("PAY kind 02", func() uint32 { return f.pays(ctx, payment(spd.KindAccount, spd.ModeOffline, 2_00), 2_00).Info().ATC })
		}, SpecTimeout(30*time.Second))

	It("MUST truncate the tier discount and the region adjustment toward zero, in that order",
		Case("TC-ADJ-002", Positive, "SPD-ADJ-1", "SPD-PAY-1", "SPD-PAY-2", "C18"), func(ctx SpecContext) {
			need(d, Location)
			f := personalised(ctx, d, tierProfile(2))
			f.login(ctx)
			// 999 at 20 %: 999 - 199 = 800; abroad +5 %: 800 + 40 = 840.
			Expect(adjusted(999, 2000, 0)).To(Equal(int64(800)))
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 999), 800)
			abroad := payment(spd.KindBalance, spd.ModeOnline, 999)
			abroad.Region = Abroad
			f.pays(ctx, abroad, 840)
			for _, amt := range []int64{1, 4, 5, 9, 19, 1_01, 12_34, 49_99} {
				abroad.Amount = amt
				f.pays(ctx, abroad, adjusted(amt, 2000, 500))
			}
			acct := payment(spd.KindAccount, spd.ModeOffline, 7_77)
			acct.Region = Abroad
			f.pays(ctx, acct, adjusted(7_77, 2000, 500))
		}, SpecTimeout(30*time.Second))

	It("MUST apply negative region adjustments, full discounts and the 2^62 clamp",
		Case("TC-ADJ-003", Positive, Negative, "SPD-ADJ-1", "SPD-PAY-2", "C18"), func(ctx SpecContext) {
			need(d, Location)
			p := TestProfile()
			p.Tier = 1
			p.TierDiscounts = [4]uint16{0, 1000, 10000, 0}
			p.Adjustments = []spd.RegionAdjustment{{Region: Home, BasisPoints: -333}, {Region: Abroad, BasisPoints: 500}}
			p.Limits.MaxPayment = 0
			f := personalised(ctx, d, &p)
			f.login(ctx)
			// 1001: -100 = 901; -333 bp: trunc(-30.0033) = -30: 871.
			Expect(adjusted(1001, 1000, -333)).To(Equal(int64(871)))
			f.pays(ctx, payment(spd.KindAccount, spd.ModeOnline, 1001), 871)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 99), adjusted(99, 1000, -333))
			over := payment(spd.KindAccount, spd.ModeOnline, 0)
			over.Amount = 1<<62 + 1
			f.refuses(ctx, spd.Pay(over), sw6A80, "an amount above 2^62")
			tier := uint8(3) // no discount
			f.update(ctx, spd.ParameterUpdate{Counter: 1, Tier: &tier, Time: Clock})
			huge := payment(spd.KindAccount, spd.ModeOnline, 1<<62)
			huge.Region = Abroad
			Expect(adjusted(1<<62, 0, 500)).To(Equal(int64(1<<62)), "+5 %% on 2^62 clamps to 2^62")
			f.pays(ctx, huge, 1<<62)
			tier = 2 // 100 % off
			f.update(ctx, spd.ParameterUpdate{Counter: 2, Tier: &tier, Time: Clock})
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 50_00), 0)
		}, SpecTimeout(30*time.Second))

	It("MUST check the per-payment limit on the adjusted amount: at the limit paid, one unit above declined",
		Case("TC-LIM-001", Positive, Negative, "SPD-LED-3", "SPD-ADJ-1", "C7", "C18"), func(ctx SpecContext) {
			f := personalised(ctx, d, tierProfile(1))
			f.login(ctx)
			// 55.55 at 10 %: 5555 - 555 = 5000, exactly the 50.00 limit.
			Expect(adjusted(55_55, 1000, 0)).To(Equal(int64(50_00)))
			f.pays(ctx, payment(spd.KindAccount, spd.ModeOnline, 55_55), 50_00)
			f.declines(ctx, payment(spd.KindAccount, spd.ModeOnline, 55_57), reasonPaymentLimit)
			f.declines(ctx, payment(spd.KindBalance, spd.ModeOnline, 55_56), reasonPaymentLimit)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 55_55), 50_00)
			f.declines(ctx, payment(spd.KindBalance, spd.ModeOffline, 55_58), reasonPaymentLimit)
		}, SpecTimeout(30*time.Second))

	It("MUST count only offline payment records of every kind against the offline pending limit, on adjusted amounts",
		Case("TC-OFF-005", Positive, Negative, "SPD-LED-3", "SPD-ADJ-1", "C4", "C7"), func(ctx SpecContext) {
			need(d, Offline)
			f := personalised(ctx, d, tierProfile(1))
			f.login(ctx)
			f.pays(ctx, payment(spd.KindAccount, spd.ModeOnline, 40_00), 36_00)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 20_00), 18_00)
			// Offline pending 0 + 30.00 (33.33 at 10 % off) is at the 30.00 limit.
			f.declines(ctx, payment(spd.KindAccount, spd.ModeOffline, 33_35), reasonPendingLimit)
			f.pays(ctx, payment(spd.KindAccount, spd.ModeOffline, 33_33), 30_00)
			f.pays(ctx, payment(spd.KindUse, spd.ModeOffline, 0), 0)
			f.declines(ctx, payment(spd.KindBalance, spd.ModeOffline, 1), reasonPendingLimit)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 1_00), 90)
		}, SpecTimeout(30*time.Second))

	It("MUST allow exactly max offline count offline payments and decline the next, any kind",
		Case("TC-OFF-006", Positive, Negative, "SPD-LED-3", "C7"), func(ctx SpecContext) {
			need(d, Offline)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			kinds := []spd.PaymentKind{spd.KindBalance, spd.KindAccount, spd.KindUse, spd.KindBalance, spd.KindUse}
			for _, k := range kinds {
				amt := int64(1_00)
				if k == spd.KindUse {
					amt = 0
				}
				f.pays(ctx, payment(k, spd.ModeOffline, amt), amt)
			}
			f.declines(ctx, payment(spd.KindUse, spd.ModeOffline, 0), reasonCountLimit)
			f.declines(ctx, payment(spd.KindAccount, spd.ModeOffline, 1), reasonCountLimit)
			f.pays(ctx, payment(spd.KindUse, spd.ModeOnline, 0), 0)
			recs := f.state(ctx).Records
			var atcs []uint32
			for _, r := range recs[:2] {
				atcs = append(atcs, r.ATC)
			}
			Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, ATCs: atcs})).To(Equal(sw9000))
			f.login(ctx)
			f.pays(ctx, payment(spd.KindUse, spd.ModeOffline, 0), 0)
			f.pays(ctx, payment(spd.KindUse, spd.ModeOffline, 0), 0)
			f.declines(ctx, payment(spd.KindUse, spd.ModeOffline, 0), reasonCountLimit)
		}, SpecTimeout(30*time.Second))

	It("MUST allow offline payments until exactly max seconds since the last sync, and at a time before it, and decline one second later",
		Case("TC-OFF-007", Positive, Negative, "SPD-LED-3", "C7"), func(ctx SpecContext) {
			need(d, Offline)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			age := f.Profile.Limits.MaxOfflineAge
			r := payment(spd.KindBalance, spd.ModeOffline, 1_00)
			r.Time = Clock.Add(age + time.Second)
			f.declines(ctx, r, reasonSyncTooOld)
			r.Time = Clock.Add(age)
			f.pays(ctx, r, 1_00)
			Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock.Add(age)})).To(Equal(sw9000))
			f.login(ctx)
			// A terminal whose clock is behind the last sync time: no time
			// has passed since the sync, as far as the limit goes.
			r.Time = Clock
			f.pays(ctx, r, 1_00)
			r.Time = Clock.Add(2*age + time.Second)
			f.declines(ctx, r, reasonSyncTooOld)
			r.Time = Clock.Add(2 * age)
			f.pays(ctx, r, 1_00)
			r.Mode = spd.ModeOnline
			r.Time = Clock.Add(100 * age)
			f.pays(ctx, r, 1_00)
		}, SpecTimeout(30*time.Second))

	It("MUST read a max offline count of 0 as no offline payment, and a max offline pending of 0 as no offline amount",
		Case("TC-OFF-009", Positive, Negative, "SPD-LED-3", "C7"), func(ctx SpecContext) {
			need(d, Offline)
			p := TestProfile()
			p.Limits.MaxOfflineCount = 0
			f := personalised(ctx, d, &p)
			f.login(ctx)
			f.declines(ctx, payment(spd.KindBalance, spd.ModeOffline, 1_00), reasonCountLimit)
			f.declines(ctx, payment(spd.KindAccount, spd.ModeOffline, 1_00), reasonCountLimit)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 1_00), 1_00)
			// Max offline pending 0 is no exception (max payment and max seconds
			// since sync take 0 as no limit): offline, only an amount of 0.
			f.update(ctx, spd.ParameterUpdate{Counter: 1, Limits: &spd.Limits{MaxPayment: 50_00, MaxPending: 0, MaxOfflineCount: 5,
				MaxOfflineAge: p.Limits.MaxOfflineAge}, Time: Clock})
			f.declines(ctx, payment(spd.KindBalance, spd.ModeOffline, 1), reasonPendingLimit)
			f.declines(ctx, payment(spd.KindAccount, spd.ModeOffline, 1_00), reasonPendingLimit)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 1_00), 1_00)
			f.pays(ctx, payment(spd.KindUse, spd.ModeOffline, 0), 0)
			f.update(ctx, spd.ParameterUpdate{Counter: 2, Limits: &spd.Limits{MaxPayment: 50_00, MaxPending: 30_00, MaxOfflineCount: 0,
				MaxOfflineAge: p.Limits.MaxOfflineAge}, Time: Clock})
			f.declines(ctx, payment(spd.KindUse, spd.ModeOffline, 0), reasonCountLimit)
		}, SpecTimeout(30*time.Second))

	It("MUST count neither against the offline count nor against the offline pending limit a transfer out, whose record is of mode 01",
		Case("TC-OFF-010", Positive, Negative, "SPD-LED-3", "SPD-XFR-1", "C7", "C13"), func(ctx SpecContext) {
			need(d, Offline)
			p := TestProfile()
			p.Limits.MaxOfflineCount, p.Limits.MaxPending = 1, 5_00
			f := personalised(ctx, d, &p)
			f.login(ctx)
			f.transferTo(ctx, []byte{0x5D, 0x1A, 0xEE, 0, 0, 0, 0, 9}, 10_00, Clock.Add(time.Hour))
			recs := f.state(ctx).Records
			Expect(recs).To(HaveLen(1))
			Expect(recs[0].Kind).To(Equal(spd.KindTransferOut))
			Expect(recs[0].Mode).To(Equal(spd.ModeOffline), "a device writes mode 01 for a transfer out (section 8)")
			// "Offline payment records" are of kinds 01-03 alone (SPEC.md 4.4).
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOffline, 5_00), 5_00)
			f.declines(ctx, payment(spd.KindBalance, spd.ModeOffline, 1), reasonPendingLimit)
			f.declines(ctx, payment(spd.KindAccount, spd.ModeOffline, 0), reasonCountLimit)
		}, SpecTimeout(30*time.Second))

	It("MUST decline a payment with no region when the profile lists regions, and accept any region when it lists none",
		Case("TC-LOC-002", Negative, "SPD-VER-1", "C18", "C33"), func(ctx SpecContext) {
			need(d, Location)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			r := payment(spd.KindBalance, spd.ModeOnline, 1_00)
			r.Region = 0
			f.declines(ctx, r, reasonLocation)
			r.Region = Barred
			f.declines(ctx, r, reasonLocation)
			r.Region = Abroad
			f.pays(ctx, r, 1_05)

			p := TestProfile()
			p.Regions, p.Adjustments = nil, nil
			g := personalised(ctx, d, &p)
			g.login(ctx)
			r.Region = 0
			g.pays(ctx, r, 1_00)
			r.Region = Barred
			g.pays(ctx, r, 1_00)
		}, SpecTimeout(30*time.Second))

	It("MUST accept a service whose required tier equals the device's and decline one above it",
		Case("TC-ATT-002", Positive, Negative, "SPD-VER-2", "C33"), func(ctx SpecContext) {
			need(d, Attribute)
			f := personalised(ctx, d, tierProfile(2))
			f.login(ctx)
			r := payment(spd.KindUse, spd.ModeOnline, 0)
			r.RequiredTier = 2
			f.pays(ctx, r, 0)
			r.RequiredTier = 3
			f.declines(ctx, r, reasonTier)
			bad := spd.Pay(r)
			for i := 0; i+2 < len(bad.Data); i++ {
				if bad.Data[i] == 0xDF && bad.Data[i+1] == 0x5E && bad.Data[i+2] == 0x01 {
					bad.Data[i+3] = 4
				}
			}
			f.refuses(ctx, bad, sw6A80, "a required tier of 4")
		}, SpecTimeout(30*time.Second))

	It("MUST refuse a ledger record beyond its capacity (the ICS's capacities.ledger) with 6A84 and change nothing, for payments of either mode and transfers",
		Label("slow"), Case("TC-LED-001", Negative, "SPD-LED-1", "SPD-APP-4", "C4", "C7"), func(ctx SpecContext) {
			n := capacities(d).Ledger
			p := TestProfile()
			p.Limits = spd.Limits{MaxPayment: 0, MaxPending: 1_000_00, MaxOfflineCount: max(100, n/2+1), MaxOfflineAge: 0}
			f := personalised(ctx, d, &p)
			f.login(ctx)
			for i := 0; i < n; i++ {
				kind := []spd.PaymentKind{spd.KindBalance, spd.KindAccount}[i%2]
				mode := []spd.Mode{spd.ModeOnline, spd.ModeOffline}[i/2%2]
				res := f.pay(ctx, payment(kind, mode, 1))
				Expect(res.Success()).To(BeTrue(), "payment %d: %s", i+1, res.Info().Reason)
			}
			Expect(f.Client.PendingCount(ctx)).To(Equal(n))
			f.refuses(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1)), sw6A84, fmt.Sprintf("record %d of a ledger of %d, online", n+1, n))
			f.refuses(ctx, spd.Pay(payment(spd.KindUse, spd.ModeOffline, 0)), sw6A84, fmt.Sprintf("record %d of a ledger of %d, offline use", n+1, n))
			f.refuses(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_000_00)), sw6A84, "a full ledger before any decline")
			f.refuses(ctx, spd.TransferOut(spd.TransferRequest{Amount: 1, Currency: 978, Payee: []byte{0x5D, 0x1A, 0xEE, 0, 0, 0, 0, 9},
				Time: Clock, Expiry: Clock.Add(time.Hour)}), sw6A84, "a transfer into a full ledger")
			recs := f.state(ctx).Records
			Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, ATCs: []uint32{recs[0].ATC}})).To(Equal(sw9000))
			f.login(ctx)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 1), 1)
		}, SpecTimeout(60*time.Second))

	It("MUST answer READ PENDING beyond the last record with 6A83, and with a data field 6700",
		Case("TC-LED-002", Positive, Negative, "SPD-LED-2", "SPD-APP-3", "C4"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			f.refuses(ctx, spd.ReadPending(0), sw6A83, "READ PENDING 0 of an empty ledger")
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOffline, 1_00), 1_00)
			f.pays(ctx, payment(spd.KindAccount, spd.ModeOnline, 2_00), 2_00)
			for _, i := range []int{2, 3, 0x100, 0xFFFF} {
				f.refuses(ctx, spd.ReadPending(i), sw6A83, "READ PENDING beyond the end")
			}
			withData := spd.ReadPending(0)
			withData.Data = []byte{0}
			f.refuses(ctx, withData, sw6700, "READ PENDING with a data field")
			r0, err := f.Client.ReadPending(ctx, 0)
			Expect(err).NotTo(HaveOccurred())
			r1, err := f.Client.ReadPending(ctx, 1)
			Expect(err).NotTo(HaveOccurred())
			Expect(r0.Amount).To(Equal(int64(1_00)), "oldest first")
			Expect(r1.Amount).To(Equal(int64(2_00)))
			Expect(r0.DeviceID).To(Equal(f.Profile.DeviceID))
			Expect(r0.Currency).To(Equal(uint16(978)))
			Expect(r0.Time.Equal(Clock)).To(BeTrue())
		}, SpecTimeout(30*time.Second))

	It("MUST conserve value over random payments, declines and settlements: balance, pending and settled totals computed here",
		Label("slow"), Case("TC-INV-003", Positive, "SPD-STO-1", "SPD-PAY-1", "SPD-PAY-2", "SPD-LED-1", "SPD-LED-4", "C2", "C4", "C7"), func(ctx SpecContext) {
			f := personalised(ctx, d, tierProfile(1))
			f.login(ctx)
			rng := rand.New(rand.NewPCG(7, 11))
			balance, uses := f.Profile.Balance, f.Profile.Uses
			pending := map[uint32]int64{} // ATC -> amount, payment records not yet settled
			var settled, paidFromBalance int64
			for i := 0; i < 40; i++ {
				kind := []spd.PaymentKind{spd.KindBalance, spd.KindAccount, spd.KindUse}[rng.IntN(3)]
				mode := []spd.Mode{spd.ModeOnline, spd.ModeOffline}[rng.IntN(2)]
				r := payment(kind, mode, int64(rng.IntN(25_00)))
				if kind == spd.KindUse {
					r.Amount = 0
				}
				if rng.IntN(2) == 0 {
					r.Region = Abroad
				}
				res := f.pay(ctx, r)
				if res.Success() {
					want := int64(0)
					if kind != spd.KindUse {
						want = adjusted(r.Amount, 1000, map[uint16]int64{Home: 0, Abroad: 500}[r.Region])
					}
					Expect(res.Info().Amount).To(Equal(want), "step %d", i)
					pending[res.Info().ATC] = want
					switch kind {
					case spd.KindBalance:
						balance -= want
						paidFromBalance += want
					case spd.KindUse:
						uses--
					}
				}
				if i%8 == 7 {
					var atcs []uint32
					for _, rec := range f.state(ctx).Records {
						if rng.IntN(2) == 0 {
							atcs = append(atcs, rec.ATC)
							settled += pending[rec.ATC]
							delete(pending, rec.ATC)
						}
					}
					Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, ATCs: atcs})).To(Equal(sw9000))
					f.login(ctx)
				}
				s := f.state(ctx)
				var pend int64
				for _, amt := range pending {
					pend += amt
				}
				Expect(s.Balance).To(Equal(balance), "balance, step %d", i)
				Expect(s.Uses).To(Equal(uses), "uses, step %d", i)
				Expect(s.Pending).To(Equal(pend), "pending total, step %d", i)
				Expect(s.Ledger).To(Equal(len(pending)), "ledger, step %d", i)
				for _, rec := range s.Records {
					Expect(pending).To(HaveKeyWithValue(rec.ATC, rec.Amount), "record ATC %d", rec.ATC)
				}
			}
			AddReportEntry("conservation", fmt.Sprintf("issued %d = balance %d + paid from balance %d; settled %d, pending %d",
				f.Profile.Balance, balance, paidFromBalance, settled, f.state(ctx).Pending))
			Expect(balance + paidFromBalance).To(Equal(f.Profile.Balance))
		}, SpecTimeout(60*time.Second))

	It("MUST refuse PAY with a missing required tag, a duplicated tag or a bad length with 6A80 and change nothing",
		Case("TC-PAY-010", Negative, "SPD-APP-3", "SPD-APP-4", "C31"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			good := spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)).Data
			cases := map[string][]byte{
				"no amount":         good[11:],
				"duplicated amount": append(append([]byte(nil), good[:11]...), good...),
				"amount of 7 bytes": append([]byte{0x9F, 0x02, 0x07}, good[4:]...),
				"empty data":        {},
				"trailing byte":     append(append([]byte(nil), good...), 0x00),
			}
			for why, data := range cases {
				cmd := spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00))
				cmd.Data = data
				f.refuses(ctx, cmd, sw6A80, why)
			}
			_ = apdu.SWOK
		}, SpecTimeout(30*time.Second))
}
