package scenarios

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

func defineTokens(d Driver) {
	Describe("Payment tokens", func() {
		It("MUST generate a signed token medium in the device that stands for the account and carries its domain controls",
			Case("TC-TOK-001", Positive, "SPD-TOK-1", "C20", "C22", "C25", "C26", "C27"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				controls := medium.TokenControls{MaxTransactions: 2, MaxAmount: 20_00, Channels: medium.ChannelInStore}
				res, err := f.Client.GenerateToken(ctx, spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour), Controls: controls})
				Expect(err).NotTo(HaveOccurred())
				Expect(res.Verify(f.Pub)).To(Succeed())
				info := res.Info()
				Expect(info.Kind).To(Equal(medium.KindToken))
				Expect(info.Token).To(HaveLen(spd.TokenLen))
				Expect(info.Token).NotTo(Equal(f.Profile.AccountToken), asserts("C25", "a token the SPD generated itself, not the static account token"))
				Expect(info.Controls).NotTo(BeNil())
				Expect(*info.Controls).To(Equal(controls), asserts("C22", "the token carries its domain controls"))
				Expect(string(res.Envelope)).NotTo(ContainSubstring(string(f.Profile.Account)), "the account never leaves the device")

				// Made once the first has expired: a device with room for one
				// live token (SPEC.md section 11) drops it first.
				again, err := f.Client.GenerateToken(ctx, spd.TokenRequest{Time: Clock.Add(2 * time.Hour), Expiry: Clock.Add(3 * time.Hour), Controls: controls})
				Expect(err).NotTo(HaveOccurred())
				Expect(again.Info().Token).NotTo(Equal(info.Token), asserts("C20", "dynamically generated tokens are unique"))
			}, SpecTimeout(30*time.Second))

		It("MUST enforce a token's transaction count, amount, validity and channel",
			Case("TC-TOK-002", Positive, Negative, "SPD-TOK-2", "C22", "C23", "C24"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				controls := medium.TokenControls{MaxTransactions: 2, MaxAmount: 20_00, Channels: medium.ChannelInStore}
				res, err := f.Client.GenerateToken(ctx, spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour), Controls: controls})
				Expect(err).NotTo(HaveOccurred())
				tok := res.Info().Token
				withToken := func(amount int64, at time.Time, ch medium.Channel) spd.PayRequest {
					r := payment(spd.KindBalance, spd.ModeOnline, amount)
					r.Token, r.Time, r.Channel = tok, at, ch
					return r
				}
				f.declines(ctx, withToken(20_01, Clock, medium.ChannelInStore), reasonTokenAmount)
				f.declines(ctx, withToken(1_00, Clock, medium.ChannelOnline), reasonTokenChannel)
				f.declines(ctx, withToken(1_00, Clock.Add(2*time.Hour), medium.ChannelInStore), reasonTokenExpired)

				ok := f.pays(ctx, withToken(5_00, Clock.Add(time.Minute), medium.ChannelInStore), 5_00)
				Expect(ok.Info().Token).To(Equal(tok), asserts("C24", "the token replaces the account in the result"))
				f.pays(ctx, withToken(5_00, Clock.Add(time.Minute), medium.ChannelInStore), 5_00)
				f.declines(ctx, withToken(5_00, Clock.Add(time.Minute), medium.ChannelInStore), reasonTokenUsedUp)

				recs, err := f.Client.PendingRecords(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(recs).To(HaveLen(2))
				for _, r := range recs {
					Expect(r.Token).To(Equal(tok), asserts("C23", "the token is used in the settlement step too; the backend detokenises"))
				}
			}, SpecTimeout(30*time.Second))

		It("MUST decline an unknown token",
			Case("TC-TOK-003", Negative, "SPD-TOK-2", "C24"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				r := payment(spd.KindBalance, spd.ModeOnline, 1_00)
				r.Token = make([]byte, spd.TokenLen)
				f.declines(ctx, r, reasonUnknownToken)
			}, SpecTimeout(30*time.Second))
	})
}
