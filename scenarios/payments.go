package scenarios

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

func definePayments(d Driver) {
	Describe("Payments", func() {
		It("MUST deduct the stored balance and return a signed success result",
			Case("TC-PAY-001", Positive, "SPD-PAY-1", "SPD-PAY-5", "C2", "C3", "C7", "C11", "C29", "C31"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				before := f.snapshot(ctx)
				r := payment(spd.KindBalance, spd.ModeOnline, 12_34)
				r.PayeeNonce = []byte("ORDER-0001")
				res := f.pay(ctx, r)
				Expect(res.Success()).To(BeTrue(), asserts("C31", "the result is a success (reason: %s)"), res.Info().Reason)
				info := res.Info()
				Expect(info.Kind).To(Equal(medium.KindPaymentResult))
				Expect(info.Amount).To(Equal(int64(12_34)))
				Expect(info.PayeeNonce).To(Equal([]byte("ORDER-0001")))
				Expect(info.DeviceID).To(Equal(f.Profile.DeviceID))
				after := f.snapshot(ctx)
				Expect(after.Balance).To(Equal(before.Balance - 12_34))
				Expect(after.ATC).To(Equal(before.ATC+1), asserts("C3", "the payment updated the ATC"))
				Expect(info.Balance).To(Equal(after.Balance), asserts("C29", "the result the SPD reports to the terminal shows the new balance"))
				Expect(info.ATC).To(Equal(after.ATC))
			}, SpecTimeout(30*time.Second))

		It("MUST record a designated-account payment as pending under the account token, balance untouched",
			Case("TC-PAY-002", Positive, "SPD-PAY-2", "SPD-LED-1", "C2", "C4", "C21", "C24"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				before := f.snapshot(ctx)
				res := f.pay(ctx, payment(spd.KindAccount, spd.ModeOnline, 40_00))
				Expect(res.Success()).To(BeTrue(), "reason: %s", res.Info().Reason)
				Expect(res.Info().Token).To(Equal(f.Profile.AccountToken), "the token, never the account")
				after := f.snapshot(ctx)
				Expect(after.Balance).To(Equal(before.Balance))
				Expect(after.Pending).To(Equal(before.Pending + 40_00))
				Expect(after.Ledger).To(Equal(before.Ledger + 1))
				recs, err := f.Client.PendingRecords(ctx)
				Expect(err).NotTo(HaveOccurred())
				last := recs[len(recs)-1]
				Expect(last.Verify(f.Pub)).To(Succeed())
				Expect(last.Kind).To(Equal(spd.KindAccount))
				Expect(last.Amount).To(Equal(int64(40_00)))
				Expect(last.Token).To(Equal(f.Profile.AccountToken))
				Expect(string(last.Token)).NotTo(ContainSubstring(string(f.Profile.Account)))
			}, SpecTimeout(30*time.Second))

		It("MUST write off exactly one use per use payment and decline when none is left",
			Case("TC-PAY-003", Positive, Negative, "SPD-PAY-3", "C2", "C3", "C31"), func(ctx SpecContext) {
				p := TestProfile()
				p.Uses = 2
				f := personalised(ctx, d, &p)
				f.login(ctx)
				for want := uint32(1); ; want-- {
					res := f.pay(ctx, payment(spd.KindUse, spd.ModeOnline, 0))
					Expect(res.Success()).To(BeTrue())
					Expect(f.Client.Uses(ctx)).To(Equal(want))
					if want == 0 {
						break
					}
				}
				f.declines(ctx, payment(spd.KindUse, spd.ModeOnline, 0), reasonNoUses)
			}, SpecTimeout(30*time.Second))

		It("MUST decline a payment above the balance with a signed failure and change nothing",
			Case("TC-PAY-004", Negative, "SPD-PAY-6", "C29", "C31"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				p := f.Profile
				f.update(ctx, spd.ParameterUpdate{Counter: 1, Limits: &spd.Limits{MaxPayment: 0, MaxPending: p.Limits.MaxPending,
					MaxOfflineCount: p.Limits.MaxOfflineCount, MaxOfflineAge: p.Limits.MaxOfflineAge}, Time: Clock})
				f.declines(ctx, payment(spd.KindBalance, spd.ModeOnline, f.Profile.Balance+1), reasonBalance)
			}, SpecTimeout(30*time.Second))

		It("MUST refuse a payment in another currency with 6A80",
			Case("TC-PAY-005", Negative, "SPD-PAY-1", "SPD-APP-4", "C2"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				r := payment(spd.KindBalance, spd.ModeOnline, 100)
				r.Currency = 840
				f.refuses(ctx, spd.Pay(r), sw6A80, "PAY in another currency")
			}, SpecTimeout(30*time.Second))

		It("MUST adjust the amount by membership tier and by location",
			Case("TC-ADJ-001", Positive, "SPD-ADJ-1", "C18"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				tier := uint8(2)
				Expect(f.sw(ctx, f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 1, Tier: &tier, Time: Clock})
				}))).To(Equal(apdu.SWOK))
				f.login(ctx)
				// 12.34 leaves truncation remainders: 1234 - trunc(246.8) = 988,
				// then abroad 988 + trunc(49.4) = 1037.
				res := f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 12_34), 9_88)
				Expect(res.Info().Amount).To(Equal(int64(9_88)), asserts("C18", "the amount adjusted by the tier-2 discount"))
				r := payment(spd.KindBalance, spd.ModeOnline, 12_34)
				r.Region = Abroad
				res = f.pays(ctx, r, 10_37)
				Expect(res.Info().Amount).To(Equal(int64(10_37)), asserts("C18", "the amount adjusted by the tier discount and the location"))
			}, SpecTimeout(30*time.Second))
	})
}
