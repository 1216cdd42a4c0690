package scenarios

import (
	"bytes"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
)

// newToken generates a token and returns its value.
func (f *Fixture) newToken(ctx SpecContext, at, expiry time.Time, c medium.TokenControls) []byte {
	GinkgoHelper()
	res, err := f.Client.GenerateToken(ctx, spd.TokenRequest{Time: at, Expiry: expiry, Controls: c})
	Expect(err).NotTo(HaveOccurred())
	Expect(res.Verify(f.Pub)).To(Succeed())
	return res.Info().Token
}

func defineTokenMediaCases(d Driver) {
	inStore := medium.TokenControls{MaxTransactions: 5, MaxAmount: 20_00, Channels: medium.ChannelInStore}

	It("MUST check a token's max amount against the adjusted amount",
		Case("TC-TOK-004", Positive, Negative, "SPD-TOK-2", "SPD-ADJ-1", "C22", "C18"), func(ctx SpecContext) {
			need(d, Tokens)
			f := personalised(ctx, d, tierProfile(2))
			f.login(ctx)
			tok := f.newToken(ctx, Clock, Clock.Add(time.Hour), inStore)
			r := payment(spd.KindBalance, spd.ModeOnline, 25_00)
			r.Token = tok
			// 25.00 at 20 % off is 20.00: at the token's max amount.
			f.pays(ctx, r, 20_00)
			r.Amount = 25_02 // 2502 - 500 = 2002
			f.declines(ctx, r, reasonTokenAmount)
			r.Kind = spd.KindAccount
			r.Amount = 24_00
			f.pays(ctx, r, 19_20)
		}, SpecTimeout(30*time.Second))

	It("MUST accept a token payment at exactly the token's expiry, decline it one second later, and check the token's controls before the per-payment limit",
		Case("TC-TOK-005", Positive, Negative, "SPD-TOK-2", "SPD-PAY-6", "C22", "C23", "C31"), func(ctx SpecContext) {
			need(d, Tokens)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			tok := f.newToken(ctx, Clock, Clock.Add(time.Hour), inStore)
			r := payment(spd.KindBalance, spd.ModeOnline, 1_00)
			r.Token, r.Time = tok, Clock.Add(time.Hour+time.Second)
			f.declines(ctx, r, reasonTokenExpired)
			r.Time = Clock.Add(time.Hour)
			f.pays(ctx, r, 1_00)
			// Decline order: expired (4) before over the token amount (6) and the
			// channel (7), and each before the per-payment limit (8): 60.00 is
			// above the token's 20.00 and the profile's 50.00 alike.
			r.Time, r.Amount, r.Channel = Clock.Add(2*time.Hour), 60_00, medium.ChannelOnline
			f.declines(ctx, r, reasonTokenExpired)
			r.Time = Clock
			f.declines(ctx, r, reasonTokenAmount)
			r.Amount = 1_00
			f.declines(ctx, r, reasonTokenChannel)
		}, SpecTimeout(30*time.Second))

	It("MUST make tokens of 12 unguessable bytes followed by the ATC that made them",
		Case("TC-TOK-006", Positive, "SPD-TOK-1", "C20", "C25"), func(ctx SpecContext) {
			need(d, Tokens)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			seen := map[string]bool{}
			// Each token expires before the next is made, so that a device
			// of any token capacity (SPEC.md section 11) has room for it.
			for i := 0; i < 4; i++ {
				at := Clock.Add(time.Duration(i) * 2 * time.Minute)
				res, err := f.Client.GenerateToken(ctx, spd.TokenRequest{Time: at, Expiry: at.Add(time.Minute), Controls: inStore})
				Expect(err).NotTo(HaveOccurred())
				info := res.Info()
				Expect(info.Token).To(HaveLen(16))
				Expect(info.Token[12:]).To(Equal([]byte{byte(info.ATC >> 24), byte(info.ATC >> 16), byte(info.ATC >> 8), byte(info.ATC)}),
					"the last 4 bytes are the ATC that made the token")
				random := string(info.Token[:12])
				Expect(seen[random]).To(BeFalse(), "two tokens share their random part")
				Expect(bytes.Count(info.Token[:12], info.Token[:1])).To(BeNumerically("<", 12), "a constant random part")
				seen[random] = true
				Expect(info.Expiry.Equal(at.Add(time.Minute))).To(BeTrue())
				Expect(info.Certificate).To(Equal(f.Profile.Certificate))
			}
		}, SpecTimeout(30*time.Second))

	It("MUST keep as many live tokens as its capacity (the ICS's capacities.tokens) and refuse one more with 6A84, changing nothing",
		Case("TC-TOK-007", Positive, Negative, "SPD-TOK-1", "SPD-APP-4", "C22"), func(ctx SpecContext) {
			need(d, Tokens)
			n := capacities(d).Tokens
			f := personalised(ctx, d, nil)
			f.login(ctx)
			var toks [][]byte
			for i := 0; i < n; i++ {
				toks = append(toks, f.newToken(ctx, Clock, Clock.Add(time.Hour), inStore))
			}
			f.refuses(ctx, spd.GenerateToken(spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour), Controls: inStore}), sw6A84,
				fmt.Sprintf("live token %d of a table of %d", n+1, n))
			for _, t := range toks {
				r := payment(spd.KindBalance, spd.ModeOnline, 1)
				r.Token = t
				f.pays(ctx, r, 1)
			}
		}, SpecTimeout(30*time.Second))

	It("MUST drop expired and used-up tokens to make room for a new one",
		Case("TC-TOK-008", Positive, Negative, "SPD-TOK-1", "SPD-TOK-2", "C22", "C23"), func(ctx SpecContext) {
			need(d, Tokens)
			n := capacities(d).Tokens
			f := personalised(ctx, d, nil)
			f.login(ctx)
			// A full table whose first token is good for one payment.
			once := f.newToken(ctx, Clock, Clock.Add(time.Hour), medium.TokenControls{MaxTransactions: 1, MaxAmount: 5_00, Channels: medium.ChannelInStore})
			for i := 1; i < n; i++ {
				f.newToken(ctx, Clock, Clock.Add(time.Hour), inStore)
			}
			full := spd.GenerateToken(spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour), Controls: inStore})
			f.refuses(ctx, full, sw6A84, fmt.Sprintf("token %d while all %d are live at the request's time", n+1, n))
			r := payment(spd.KindBalance, spd.ModeOnline, 1_00)
			r.Token = once
			f.pays(ctx, r, 1_00)
			// In place of the used-up one, a token that expires first.
			short := f.newToken(ctx, Clock, Clock.Add(time.Minute), inStore)
			f.refuses(ctx, full, sw6A84, fmt.Sprintf("token %d once the used-up one was replaced", n+1))
			f.refuses(ctx, spd.GenerateToken(spd.TokenRequest{Time: Clock.Add(time.Minute), Expiry: Clock.Add(time.Hour), Controls: inStore}), sw6A84,
				fmt.Sprintf("token %d while the short one is live at exactly its expiry", n+1))
			f.newToken(ctx, Clock.Add(2*time.Minute), Clock.Add(time.Hour), inStore) // in place of the expired one
			r.Token, r.Time = short, Clock
			f.declines(ctx, r, reasonUnknownToken)
			r.Token = once
			f.declines(ctx, r, reasonUnknownToken)
		}, SpecTimeout(30*time.Second))

	It("MUST refuse GENERATE TOKEN with an expiry not after the time, controls out of range, or without verification",
		Case("TC-TOK-009", Negative, "SPD-TOK-1", "SPD-PIN-1", "SPD-APP-3", "C22"), func(ctx SpecContext) {
			need(d, Tokens)
			f := selected(ctx, d, nil)
			f.refuses(ctx, spd.GenerateToken(spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour), Controls: inStore}), sw6982, "GENERATE TOKEN not verified")
			Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw9000))
			for why, r := range map[string]spd.TokenRequest{
				"expiry at the time":      {Time: Clock, Expiry: Clock, Controls: inStore},
				"expiry before the time":  {Time: Clock, Expiry: Clock.Add(-time.Second), Controls: inStore},
				"0 max transactions":      {Time: Clock, Expiry: Clock.Add(time.Hour), Controls: medium.TokenControls{MaxTransactions: 0, MaxAmount: 1, Channels: 1}},
				"2^20+1 max transactions": {Time: Clock, Expiry: Clock.Add(time.Hour), Controls: medium.TokenControls{MaxTransactions: 1<<20 + 1, MaxAmount: 1, Channels: 1}},
				"channels 0":              {Time: Clock, Expiry: Clock.Add(time.Hour), Controls: medium.TokenControls{MaxTransactions: 1, MaxAmount: 1, Channels: 0}},
				"channels 8":              {Time: Clock, Expiry: Clock.Add(time.Hour), Controls: medium.TokenControls{MaxTransactions: 1, MaxAmount: 1, Channels: 8}},
			} {
				f.refuses(ctx, spd.GenerateToken(r), sw6A80, why)
			}
			f.newToken(ctx, Clock, Clock.Add(time.Second), medium.TokenControls{MaxTransactions: 1 << 20, MaxAmount: 1 << 62, Channels: 7})
		}, SpecTimeout(30*time.Second))

	It("MUST enforce a token's controls on a use write-off paid under it, and count against a token only the payments made under it",
		Case("TC-TOK-010", Positive, Negative, "SPD-TOK-2", "SPD-PAY-3", "SPD-PAY-6", "C2", "C22", "C23", "C31"), func(ctx SpecContext) {
			need(d, Tokens)
			p := TestProfile()
			p.Uses = 1
			f := personalised(ctx, d, &p)
			f.login(ctx)
			once := f.newToken(ctx, Clock, Clock.Add(time.Hour), medium.TokenControls{MaxTransactions: 1, MaxAmount: 5_00, Channels: medium.ChannelInStore})
			use := payment(spd.KindUse, spd.ModeOnline, 0)
			use.Token, use.Time = once, Clock.Add(time.Hour+time.Second)
			f.declines(ctx, use, reasonTokenExpired)
			use.Time, use.Channel = Clock, medium.ChannelOnline
			f.declines(ctx, use, reasonTokenChannel)
			use.Channel = medium.ChannelInStore
			f.pays(ctx, use, 0)
			f.declines(ctx, use, reasonTokenUsedUp)
			r := payment(spd.KindBalance, spd.ModeOnline, 1_00)
			r.Token = once
			f.declines(ctx, r, reasonTokenUsedUp)

			// A payment that passes the token's controls and is then declined
			// (no use left, decline 10) is no payment: it changes nothing,
			// the token's count included.
			single := f.newToken(ctx, Clock, Clock.Add(time.Hour), medium.TokenControls{MaxTransactions: 1, MaxAmount: 5_00, Channels: medium.ChannelInStore})
			use.Token = single
			f.declines(ctx, use, reasonNoUses)
			f.declines(ctx, use, reasonNoUses)
			r.Token = single
			f.pays(ctx, r, 1_00)
			f.declines(ctx, r, reasonTokenUsedUp)
		}, SpecTimeout(30*time.Second))

	It("MUST raise the ATC on GENERATE MEDIUM and show the new ATC, the pending total and a default validity of 300 s",
		Case("TC-MED-006", Positive, "SPD-MED-1", "SPD-PAY-4", "C1", "C8", "C9"), func(ctx SpecContext) {
			need(d, Media)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			f.pays(ctx, payment(spd.KindAccount, spd.ModeOffline, 6_50), 6_50)
			before := f.state(ctx)
			res, err := f.Client.GenerateMedium(ctx, spd.MediumRequest{Time: Clock.Add(time.Minute)})
			Expect(err).NotTo(HaveOccurred())
			Expect(res.Verify(f.Pub)).To(Succeed())
			after := f.state(ctx)
			want := before
			want.ATC++
			Expect(after).To(Equal(want), "GENERATE MEDIUM changes the ATC only")
			info := res.Info()
			Expect(info.ATC).To(Equal(after.ATC))
			Expect(info.Pending).To(Equal(int64(6_50)), "the medium shows the pending total")
			Expect(info.Balance).To(Equal(after.Balance))
			Expect(info.Issued.Equal(Clock.Add(time.Minute))).To(BeTrue())
			Expect(info.Expiry.Sub(info.Issued)).To(Equal(defaultMediumExpiry))
			Expect(info.PayeeNonce).To(BeEmpty())
			res, err = f.Client.GenerateMedium(ctx, spd.MediumRequest{Time: Clock, Expiry: Clock.Add(42 * time.Second), PayeeNonce: []byte("N")})
			Expect(err).NotTo(HaveOccurred())
			Expect(res.Info().Expiry.Equal(Clock.Add(42 * time.Second))).To(BeTrue())
			Expect(res.Info().ATC).To(Equal(after.ATC + 1))
		}, SpecTimeout(30*time.Second))

	It("MUST refuse GENERATE MEDIUM without verification, with a bad expiry, nonce or P1-P2, changing nothing",
		Case("TC-MED-007", Negative, "SPD-MED-1", "SPD-PIN-1", "SPD-APP-3", "C1"), func(ctx SpecContext) {
			need(d, Media)
			f := selected(ctx, d, nil)
			f.refuses(ctx, spd.GenerateMedium(spd.MediumRequest{Time: Clock}), sw6982, "not verified")
			Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw9000))
			f.refuses(ctx, spd.GenerateMedium(spd.MediumRequest{Time: Clock, Expiry: Clock}), sw6A80, "expiry at the time")
			f.refuses(ctx, spd.GenerateMedium(spd.MediumRequest{Time: Clock, PayeeNonce: make([]byte, 33)}), sw6A80, "a 33-byte nonce")
			p1 := spd.GenerateMedium(spd.MediumRequest{Time: Clock})
			p1.P1 = 1
			f.refuses(ctx, p1, sw6A86, "P1 01")
			noTime := spd.GenerateMedium(spd.MediumRequest{Time: Clock})
			noTime.Data = []byte{0xDF, 0x07, 0x01, 0x41}
			f.refuses(ctx, noTime, sw6A80, "no time")
		}, SpecTimeout(30*time.Second))

	It("MUST refuse in PARSE MEDIUM a medium certified by another CA or re-signed, and answer the exact template of one the issuer certified",
		Case("TC-MED-008", Negative, "SPD-MED-4", "SPD-KEY-2", "SPD-KEY-5", "C1", "C6", "C39"), func(ctx SpecContext) {
			need(d, ParseMedium)
			f := selected(ctx, d, nil)
			info := medium.ServiceInfo{Kind: medium.KindStoredValue, AID: spd.AID, Balance: 5_00, Uses: 1, ATC: 3, Currency: 978,
				Token: bytes.Repeat([]byte{7}, 16), Issued: Clock, Expiry: Clock.Add(time.Hour)}
			genuine := newForger(f.Issuer)
			info.DeviceID = genuine.ID
			env := genuine.sign(info)
			m, err := medium.Parse(env)
			Expect(err).NotTo(HaveOccurred())
			_, template, err := tlv.Next(m.Signed)
			Expect(err).NotTo(HaveOccurred())
			before := f.state(ctx)
			resp, err := f.Client.Transmit(ctx, spd.ParseMedium(env))
			Expect(err).NotTo(HaveOccurred())
			Expect(resp.SW).To(Equal(sw9000), "a medium the issuer's CA certified")
			Expect(resp.Data).To(Equal(template), "the medium's own template, byte for byte")

			rogue, err := issuer.Generate("rogue")
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, spd.ParseMedium(newForger(rogue).sign(info)), sw6982, "a medium certified by another CA")
			resigned := bytes.Clone(env)
			resigned[len(resigned)-1] ^= 0x01
			f.refuses(ctx, spd.ParseMedium(resigned), sw6982, "a medium whose signature does not verify")
			changed := bytes.Clone(env)
			i := bytes.Index(changed, []byte{0xDF, 0x04, 0x08})
			Expect(i).To(BeNumerically(">", 0))
			changed[i+10] ^= 0x01
			f.refuses(ctx, spd.ParseMedium(changed), sw6982, "a medium whose balance was changed after signing")
			f.refuses(ctx, spd.ParseMedium([]byte("not a medium")), sw6A80, "bytes that are no medium")
			f.refuses(ctx, apdu.Command{CLA: 0x80, INS: 0x72, Data: env}, sw6A80, "a medium outside DF60")
			Expect(f.state(ctx)).To(Equal(before))
		}, SpecTimeout(30*time.Second))
}
