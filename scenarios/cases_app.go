package scenarios

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"fmt"
	"os"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/link"
)

// defineConformance registers the cases that check every requirement of
// SPEC.md positively and negatively, with exact status words and
// nothing-changed snapshots, the tearing sweep and the capacities.
func defineConformance(d Driver) {
	AfterEach(checkPolarity)
	ReportAfterSuite("tear points", func(r Report) {
		if s := TearPointsSummary(r); s != "" {
			fmt.Fprintln(os.Stdout, s)
		}
	})
	Describe("Command handling, every way", func() { defineCommandCases(d) })
	Describe("Life cycle and host orders, every way", func() { defineLifeCycleCases(d) })
	Describe("Cardholder verification, every way", func() { definePINCases(d) })
	Describe("Payments, limits and adjustment, every way", func() { definePaymentCases(d) })
	Describe("Tokens and media, every way", func() { defineTokenMediaCases(d) })
	Describe("Transfers, every way", func() { defineTransferCases(d) })
	Describe("Persistence under power cuts", func() { defineTearingCases(d) })
	Describe("Card pulled out of its reader", func() { defineRemovalCases(d) })
	Describe("Test samples", func() { defineEraseCases(d) })
	Describe("Every command sent wrong", func() { defineNegativeCases(d) })
	Describe("Optional features", func() { defineOptionalCases(d) })
	Describe("Signatures and stored media", func() { defineSignatureCases(d) })
}

func defineCommandCases(d Driver) {
	It("MUST deselect the application on SELECT of another AID, a longer one that starts with its own included",
		Case("TC-APP-007", Positive, Negative, "SPD-APP-1", "SPD-APP-2", "C28"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			_, sw := f.raw(ctx, rawCmd(apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x04, Data: []byte{0xA0, 0, 0, 0, 0x03, 0x10, 0x10}, Ne: 256}))
			Expect(sw).To(Equal(sw6A82))
			_, sw = f.raw(ctx, rawCmd(spd.GetData(spd.TagBalance)))
			Expect(sw).To(Equal(sw6985), "GET DATA after SELECT of another AID: the application is deselected")
			// SPEC.md 1.2, SELECT: a data field other than exactly the 8-byte
			// AID answers 6A82, also one that starts with the AID.
			for _, extra := range [][]byte{{0x00}, {0x02}, {0x01, 0x01}} {
				_, err := f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				longer := append(append([]byte(nil), spd.AID...), extra...)
				_, sw = f.raw(ctx, rawCmd(apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x04, Data: longer, Ne: 256}))
				Expect(sw).To(Equal(sw6A82), "SELECT of the AID followed by % X", extra)
				_, sw = f.raw(ctx, rawCmd(spd.GetData(spd.TagBalance)))
				Expect(sw).To(Equal(sw6985), "GET DATA after SELECT of the AID followed by % X: the application is deselected", extra)
			}
			_, err := f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)), sw6982, "PAY: verification ended with the deselection")
		}, SpecTimeout(30*time.Second))

	It("MUST end cardholder verification when the application is selected again",
		Case("TC-APP-008", Positive, Negative, "SPD-APP-2", "SPD-PIN-1", "C28", "C32"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			_, err := f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)), sw6982, "PAY after a second SELECT")
			f.refuses(ctx, spd.GenerateMedium(spd.MediumRequest{Time: Clock}), sw6982, "GENERATE MEDIUM after a second SELECT")
		}, SpecTimeout(30*time.Second))

	It("MUST end the session and keep persistent memory on a warm reset",
		Serial, Case("TC-APP-009", Positive, Negative, "SPD-STO-3", "SPD-APP-2", "C42"), func(ctx SpecContext) {
			need(d, PowerCycle)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOffline, 3_00), 3_00)
			before := f.state(ctx)
			r, ok := f.rec.Link().(link.Resetter)
			if !ok {
				Skip(Why(PowerCycle, d.Profile().Name))
			}
			_, err := r.Reset(ctx, false)
			Expect(err).NotTo(HaveOccurred())
			_, sw := f.raw(ctx, rawCmd(spd.GetData(spd.TagBalance)))
			Expect(sw).To(Equal(sw6985), "the reset ended the selection")
			_, err = f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.state(ctx)).To(Equal(before), "a warm reset keeps persistent memory")
			f.refuses(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)), sw6982, "PAY after a warm reset")
		}, SpecTimeout(30*time.Second))

	It("MUST check the instruction before the selection, and refuse everything else before SELECT with 6985",
		Case("TC-APP-010", Positive, Negative, "SPD-APP-2", "SPD-APP-3", "C28"), func(ctx SpecContext) {
			f := open(ctx, d)
			for _, c := range []struct {
				cmd  apdu.Command
				want apdu.SW
				why  string
			}{
				{apdu.Command{CLA: 0x80, INS: 0x7E}, sw6D00, "unknown proprietary INS before SELECT"},
				{apdu.Command{CLA: 0x00, INS: 0xB0}, sw6D00, "unknown interindustry INS before SELECT"},
				{apdu.Command{CLA: 0x94, INS: 0x60}, sw6E00, "unknown class before SELECT"},
				{spd.GetData(spd.TagState), sw6985, "GET DATA before SELECT"},
				{spd.GetChallenge(), sw6985, "GET CHALLENGE before SELECT"},
				{spd.ReadPending(0), sw6985, "READ PENDING before SELECT"},
			} {
				_, sw := f.raw(ctx, rawCmd(c.cmd))
				Expect(sw).To(Equal(c.want), c.why)
			}
		}, SpecTimeout(30*time.Second))

	It("MUST check the life-cycle state before P1/P2 and the data field before verification",
		Case("TC-APP-011", Positive, Negative, "SPD-APP-3", "SPD-APP-4", "SPD-LC-3"), func(ctx SpecContext) {
			f := selected(ctx, d, nil)
			bad := spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00))
			bad.P1 = 0x09
			f.refuses(ctx, bad, sw6A86, "PAY kind 09, selected, not verified: P1 (step 5) before verification (step 7)")
			bad.P1, bad.P2 = 0x01, 0x02
			f.refuses(ctx, bad, sw6A86, "PAY mode 02")
			r := payment(spd.KindBalance, spd.ModeOnline, 1_00)
			r.Currency = 840
			f.refuses(ctx, spd.Pay(r), sw6A80, "PAY in another currency, not verified: the data field (step 6) before verification (step 7)")
			f.refuses(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)), sw6982, "PAY not verified")

			blocked := spd.StateBlocked
			f.update(ctx, spd.ParameterUpdate{Counter: 1, State: &blocked, Time: Clock})
			f.login(ctx)
			bad.P1, bad.P2 = 0x09, 0x00
			f.refuses(ctx, bad, sw6985, "PAY kind 09 while blocked: the state (step 4) before P1/P2 (step 5)")
		}, SpecTimeout(30*time.Second))

	It("MUST answer GET DATA with a data field 6700 and of an unknown tag 6A88, before and after personalisation",
		Case("TC-APP-012", Positive, Negative, "SPD-APP-3", "SPD-LC-3"), func(ctx SpecContext) {
			needFresh(d)
			f := open(ctx, d)
			_, err := f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			v, sw := f.raw(ctx, rawCmd(spd.GetData(spd.TagState)))
			Expect(sw).To(Equal(sw9000))
			Expect(v).To(Equal([]byte{0xDF, 0x20, 0x01, 0x00}), "DF20 of a blank device")
			for _, tag := range []uint16{0xDF02, 0xDF24, 0xDF04, 0xDF11, 0x9F36, 0xDF23} {
				_, sw = f.raw(ctx, rawCmd(apdu.Command{CLA: 0x00, INS: 0xCA, P1: byte(tag >> 8), P2: byte(tag), Ne: 256}))
				Expect(sw).To(Equal(sw6985), "GET DATA %04X on a blank device", tag)
			}
			p := TestProfile()
			_, err = f.Client.Initialise(ctx, &f.Issuer.CA.PublicKey, p.DeviceID)
			Expect(err).NotTo(HaveOccurred())
			v, sw = f.raw(ctx, rawCmd(spd.GetData(spd.TagDeviceID)))
			Expect(sw).To(Equal(sw9000))
			Expect(v).To(Equal(append([]byte{0xDF, 0x02, 0x08}, p.DeviceID...)))
			_, sw = f.raw(ctx, rawCmd(spd.GetData(spd.TagBalance)))
			Expect(sw).To(Equal(sw6985), "GET DATA DF04 of an initialised device")

			g := personalised(ctx, d, nil)
			_, err = g.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			before := g.state(ctx)
			withData := spd.GetData(spd.TagBalance)
			withData.Data = []byte{0x00}
			_, sw = g.raw(ctx, rawCmd(withData))
			Expect(sw).To(Equal(sw6700), "GET DATA with a data field")
			for _, tag := range []uint16{0xDF2A, 0xDF31, 0xDF32, 0x0042, 0xDF7F} {
				_, sw = g.raw(ctx, rawCmd(apdu.Command{CLA: 0x00, INS: 0xCA, P1: byte(tag >> 8), P2: byte(tag), Ne: 256}))
				Expect(sw).To(Equal(sw6A88), "GET DATA of tag %04X", tag)
			}
			Expect(g.state(ctx)).To(Equal(before))
			g.noAccountOutput()
		}, SpecTimeout(30*time.Second))

	It("MUST answer a response longer than 256 bytes whole, and GET RESPONSE with nothing pending or with a data field 6985",
		Case("TC-APP-013", Positive, Negative, "SPD-APP-5"), func(ctx SpecContext) {
			// Through Exchange every link resolves 61xx below it
			// (rigs/link.Resolve), so the case sees the whole response; the
			// device's own chaining is checked through raw exchanges by
			// TC-APP-014 to TC-APP-016.
			f := personalised(ctx, d, nil)
			f.login(ctx)
			f.refuses(ctx, spd.GetResponse(256), sw6985, "GET RESPONSE with nothing pending")
			cmd := spd.GenerateMedium(spd.MediumRequest{Time: Clock, PayeeNonce: []byte("CHAIN")})
			cmd.Ne = 0 // Le absent: Ne is 256
			whole, sw := f.raw(ctx, rawCmd(cmd))
			Expect(sw).To(Equal(sw9000))
			Expect(len(whole)).To(BeNumerically(">", 256), "a medium with its certificate is longer than 256 bytes")
			m, err := medium.Parse(whole)
			Expect(err).NotTo(HaveOccurred(), "the parts make the medium")
			Expect(m.Verify(f.Pub)).To(Succeed())
			f.refuses(ctx, spd.GetResponse(256), sw6985, "GET RESPONSE after the whole response")
			withData := spd.GetResponse(256)
			withData.Data = []byte{0x01}
			f.refuses(ctx, withData, sw6985, "GET RESPONSE with a data field")
		}, SpecTimeout(30*time.Second))

	It("MUST answer a response longer than Ne with its first Ne bytes and 61xx, and GET RESPONSE with the next part by its own Le",
		Case("TC-APP-014", Positive, Negative, "SPD-APP-5"), func(ctx SpecContext) {
			need(d, RawExchange)
			f := selected(ctx, d, nil)
			c := chainingOf(ctx, f, d)
			whole := c.whole
			// GET DATA of the certificate with Le absent (Ne 256), Le 00
			// (256) and shorter Le, each followed by GET RESPONSE with Le
			// values of its own, absent (256) and 00 among them.
			for _, run := range []struct {
				ne   int   // GET DATA's Ne, 0 for Le absent
				gets []int // GET RESPONSE's Ne, in turn, 0 for Le absent
			}{
				{0, []int{0}},
				{256, []int{256}},
				{1, []int{7, 0, 100}},
				{16, []int{256, 5}},
				{100, []int{1, 255, 0}},
				{255, []int{3}},
			} {
				got, sw := c.send(ctx, spd.GetData(spd.TagCertificate), run.ne)
				ne := neOf(run.ne)
				Expect(got).To(Equal(whole[:ne]), "GET DATA DF11 with Ne %d answers the first %d bytes", ne, ne)
				Expect(sw).To(Equal(moreWord(len(whole)-ne)), "GET DATA DF11 with Ne %d: 61xx with the %d bytes remaining", ne, len(whole)-ne)
				parts := append([]byte(nil), got...)
				for i := 0; sw != sw9000; i++ {
					Expect(i).To(BeNumerically("<", 1000), "GET RESPONSE never ends the response")
					gne := neOf(run.gets[i%len(run.gets)])
					rest := whole[len(parts):]
					got, sw = c.send(ctx, spd.GetResponse(0), run.gets[i%len(run.gets)])
					if len(rest) > gne {
						Expect(got).To(Equal(rest[:gne]), "GET RESPONSE with Ne %d, %d bytes pending: the next %d", gne, len(rest), gne)
						Expect(sw).To(Equal(moreWord(len(rest)-gne)), "GET RESPONSE with Ne %d, %d bytes pending", gne, len(rest))
					} else {
						Expect(got).To(Equal(rest), "GET RESPONSE with Ne %d, %d bytes pending: all of them", gne, len(rest))
						Expect(sw).To(Equal(sw9000), "GET RESPONSE with Ne %d, %d bytes pending: the last part", gne, len(rest))
					}
					parts = append(parts, got...)
				}
				Expect(parts).To(Equal(whole), "the parts make the whole response")
				c.idle(ctx, "GET RESPONSE after the last part")
			}
			// A response of at most Ne bytes is answered whole.
			got, sw := c.send(ctx, spd.GetData(spd.TagBalance), 0)
			Expect(sw).To(Equal(sw9000))
			Expect(got).To(HaveLen(2+1+8), "GET DATA DF04 with Le absent: DF04, length and 8 bytes")
		}, SpecTimeout(60*time.Second))

	It("MUST discard a pending response on GET RESPONSE refused 6A86 or 6985 and on any other command",
		Case("TC-APP-015", Positive, Negative, "SPD-APP-5"), func(ctx SpecContext) {
			need(d, RawExchange)
			f := selected(ctx, d, nil)
			c := chainingOf(ctx, f, d)
			bad := []apdu.Command{
				{CLA: 0x00, INS: byte(spd.INSGetResponse), P1: 0x01, P2: 0x00, Ne: 16},
				{CLA: 0x00, INS: byte(spd.INSGetResponse), P1: 0x00, P2: 0x01, Ne: 16},
				{CLA: 0x00, INS: byte(spd.INSGetResponse), P1: 0x01, P2: 0x00, Data: []byte{0x01}, Ne: 16},
			}
			for _, cmd := range bad {
				c.pending(ctx, 16)
				got, sw := c.send(ctx, cmd, cmd.Ne)
				Expect(sw).To(Equal(sw6A86), "GET RESPONSE P1-P2 %02X %02X (data %X) with a response pending", cmd.P1, cmd.P2, cmd.Data)
				Expect(got).To(BeEmpty())
				c.idle(ctx, fmt.Sprintf("GET RESPONSE after one with P1-P2 %02X %02X answered 6A86", cmd.P1, cmd.P2))
			}
			c.pending(ctx, 16)
			withData := spd.GetResponse(16)
			withData.Data = []byte{0x01}
			got, sw := c.send(ctx, withData, 16)
			Expect(sw).To(Equal(sw6985), "GET RESPONSE with a data field and a response pending")
			Expect(got).To(BeEmpty())
			c.idle(ctx, "GET RESPONSE after one with a data field answered 6985")
			// Any other command, whatever it answers; after part of the
			// response was fetched as well as before.
			for _, other := range []struct {
				cmd  apdu.Command
				want apdu.SW
				why  string
			}{
				{spd.GetData(spd.TagBalance), sw9000, "GET DATA DF04"},
				{spd.GetData(0xDF7F), sw6A88, "GET DATA of an unknown tag"},
				{apdu.Command{CLA: 0x00, INS: 0x84, P1: 0x01, Ne: 16}, sw6A86, "GET CHALLENGE with P1 01"},
			} {
				for _, fetched := range []bool{false, true} {
					c.pending(ctx, 16)
					if fetched {
						_, sw := c.send(ctx, spd.GetResponse(16), 16)
						Expect(sw).To(Equal(moreWord(len(c.whole)-32)), "GET RESPONSE with Ne 16 after the first 16 bytes")
					}
					_, sw := c.send(ctx, other.cmd, other.cmd.Ne)
					Expect(sw).To(Equal(other.want), other.why)
					c.idle(ctx, "GET RESPONSE after "+other.why+" with a response pending")
				}
			}
			// SELECT too: the application is selected again.
			c.pending(ctx, 16)
			_, err := f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			c.idle(ctx, "GET RESPONSE after SELECT with a response pending")
		}, SpecTimeout(60*time.Second))

	It("MUST discard a pending response on a warm reset and on power-off and power-on",
		Serial, Case("TC-APP-016", Positive, Negative, "SPD-APP-5"), func(ctx SpecContext) {
			need(d, RawExchange)
			need(d, PowerCycle)
			f := selected(ctx, d, nil)
			c := chainingOf(ctx, f, d)
			r, ok := f.rec.Link().(link.Resetter)
			if !ok {
				Skip(Why(PowerCycle, d.Profile().Name))
			}
			c.pending(ctx, 16)
			_, err := r.Reset(ctx, false)
			Expect(err).NotTo(HaveOccurred())
			c.idle(ctx, "GET RESPONSE after a warm reset with a response pending")
			_, err = f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			c.pending(ctx, 16)
			pc, ok := f.rec.Link().(link.PowerCycler)
			if !ok {
				Skip(Why(PowerCycle, d.Profile().Name))
			}
			Expect(pc.PowerOff(ctx)).To(Succeed())
			_, err = pc.PowerOn(ctx)
			Expect(err).NotTo(HaveOccurred())
			c.idle(ctx, "GET RESPONSE after power-off and power-on with a response pending")
		}, SpecTimeout(60*time.Second))

	It("MUST answer GET CHALLENGE with 16 fresh random bytes for Le 10 or 00, and 6700 for any other Le or a data field",
		Case("TC-KEY-002", Positive, Negative, "SPD-KEY-1", "SPD-APP-3", "C33"), func(ctx SpecContext) {
			f := selected(ctx, d, nil)
			before := f.state(ctx)
			seen := map[string]bool{}
			for _, ne := range []int{16, 256, 16, 256} {
				c, sw := f.raw(ctx, rawCmd(apdu.Command{CLA: 0x00, INS: 0x84, Ne: ne}))
				Expect(sw).To(Equal(sw9000), "Le %d", ne)
				Expect(c).To(HaveLen(16))
				Expect(seen[string(c)]).To(BeFalse(), "a challenge repeated")
				seen[string(c)] = true
			}
			for _, ne := range []int{8, 17, 32} {
				_, sw := f.raw(ctx, rawCmd(apdu.Command{CLA: 0x00, INS: 0x84, Ne: ne}))
				Expect(sw).To(Equal(sw6700), "GET CHALLENGE with Le %d", ne)
			}
			_, sw := f.raw(ctx, rawCmd(apdu.Command{CLA: 0x00, INS: 0x84, Data: []byte{1}, Ne: 16}))
			Expect(sw).To(Equal(sw6700), "GET CHALLENGE with a data field")
			_, sw = f.raw(ctx, rawCmd(apdu.Command{CLA: 0x00, INS: 0x84, P1: 0x01, Ne: 16}))
			Expect(sw).To(Equal(sw6A86))
			Expect(f.state(ctx)).To(Equal(before))
		}, SpecTimeout(30*time.Second))

	It("MUST sign INTERNAL AUTHENTICATE over its domain, device ID and a 1..64-byte challenge, and refuse other lengths with 6700",
		Case("TC-KEY-003", Positive, Negative, "SPD-KEY-4", "SPD-VER-3", "C33"), func(ctx SpecContext) {
			need(d, CertVerify)
			f := selected(ctx, d, nil)
			for _, n := range []int{1, 16, 64} {
				ch := bytes.Repeat([]byte{byte(n)}, n)
				sig, sw := f.raw(ctx, rawCmd(spd.InternalAuthenticate(ch)))
				Expect(sw).To(Equal(sw9000), "challenge of %d bytes", n)
				h := sha256.New()
				h.Write([]byte("SPDLAB-IA1"))
				h.Write(f.Profile.DeviceID)
				h.Write(ch)
				Expect(ecdsa.VerifyASN1(f.Pub, h.Sum(nil), sig)).To(BeTrue(), "signature over SPDLAB-IA1 || device ID || challenge (%d bytes)", n)
			}
			_, sw := f.raw(ctx, rawCmd(spd.InternalAuthenticate(make([]byte, 65))))
			Expect(sw).To(Equal(sw6700), "a 65-byte challenge")
			_, sw = f.raw(ctx, rawCmd(apdu.Command{CLA: 0x00, INS: 0x88, Ne: 256}))
			Expect(sw).To(Equal(sw6700), "no challenge")
		}, SpecTimeout(30*time.Second))

	It("MUST NOT output the designated account in any response",
		Case("TC-MED-005", Positive, Negative, "SPD-MED-3", "C19", "C24", "C27"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			tok, err := f.Client.GetData(ctx, spd.TagToken)
			Expect(err).NotTo(HaveOccurred())
			Expect(tok).To(Equal(f.Profile.AccountToken), "GET DATA DF03 answers the account token")
			_, sw := f.raw(ctx, rawCmd(apdu.Command{CLA: 0x00, INS: 0xCA, P1: 0xDF, P2: 0x2A, Ne: 256}))
			Expect(sw).To(Equal(sw6A88), "GET DATA DF2A (the account) is no readable object")
			r := payment(spd.KindAccount, spd.ModeOffline, 2_00)
			r.Payee = []byte("MERCHANT-1")
			f.pays(ctx, r, 2_00)
			_, err = f.Client.GenerateMedium(ctx, spd.MediumRequest{Time: Clock})
			Expect(err).NotTo(HaveOccurred())
			_, err = f.Client.GenerateToken(ctx, spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour),
				Controls: medium.TokenControls{MaxTransactions: 1, MaxAmount: 1_00, Channels: medium.ChannelInStore}})
			Expect(err).NotTo(HaveOccurred())
			_ = f.state(ctx)
			_, _ = f.Client.Certificate(ctx)
			_, err = f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			f.noAccountOutput()
		}, SpecTimeout(30*time.Second))
}
