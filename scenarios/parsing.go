package scenarios

import (
	"bytes"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
	"github.com/spdlab/spdlab/rigs/link"
)

func defineParsing(d Driver) {
	Describe("Parsing coded media and form factors", func() {
		It("MUST parse and verify another device's medium by the issuer's rules, refuse a forged one, and change nothing",
			Case("TC-MED-003", Positive, Negative, "SPD-MED-4", "SPD-FORM-2", "C1", "C6", "C39", "C45"), func(ctx SpecContext) {
				shower := personalised(ctx, d, nil)
				reader := personalised(ctx, d, nil)
				shower.login(ctx)
				reader.login(ctx)
				shown, err := shower.Client.GenerateMedium(ctx, spd.MediumRequest{Time: Clock, PayeeNonce: []byte("N-1")})
				Expect(err).NotTo(HaveOccurred())
				before := reader.snapshot(ctx)
				info, err := reader.Client.ParseMedium(ctx, shown.Envelope)
				Expect(err).NotTo(HaveOccurred())
				Expect(info.DeviceID).To(Equal(shower.Profile.DeviceID))
				Expect(info.Balance).To(Equal(shown.Info().Balance), asserts("C1", "the SPD parses another's coded medium into its service information: the stored-value amount"))
				Expect(info.Token).To(Equal(shower.Profile.AccountToken), asserts("C45", "the parsing unit answers the medium's token over the transmission unit"))

				changed := bytes.Clone(shown.Envelope)
				i := bytes.Index(changed, []byte{0xDF, 0x04, 0x08})
				Expect(i).To(BeNumerically(">", 0))
				changed[i+10] ^= 0x01
				Expect(reader.sw(ctx, spd.ParseMedium(changed))).To(Equal(sw6982), "a medium whose balance was changed after signing")
				rogue, err := issuer.Generate("rogue")
				Expect(err).NotTo(HaveOccurred())
				forgedInfo := shown.Info()
				forgedInfo.Balance = 1_000_000_00
				forged, err := medium.Sign(forgedInfo, rogue.CA)
				Expect(err).NotTo(HaveOccurred())
				Expect(reader.sw(ctx, spd.ParseMedium(forged))).To(Equal(apdu.SWSecurityNotSatisfied), "re-signed by a key the certificate does not name")
				Expect(reader.sw(ctx, spd.ParseMedium([]byte("not a medium")))).To(Equal(apdu.SWWrongData))
				Expect(reader.snapshot(ctx)).To(Equal(before))
			}, SpecTimeout(60*time.Second))

		It("MUST let a medium stored beforehand as an image be verified later by any reader with the issuer key, until it expires",
			Label("slow"), Case("TC-MED-004", Positive, "SPD-MED-5", "SPD-MED-2", "C10", "C34", "C38"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				res, err := f.Client.GenerateMedium(ctx, spd.MediumRequest{Time: Clock, Expiry: Clock.Add(24 * time.Hour)})
				Expect(err).NotTo(HaveOccurred())
				png, err := medium.RenderPNG(medium.Text(res.Envelope), medium.QR, 4)
				Expect(err).NotTo(HaveOccurred())
				stored := filepath.Join(GinkgoT().TempDir(), "pre-stored.png")
				Expect(os.WriteFile(stored, png, 0o644)).To(Succeed())

				r, err := os.Open(stored)
				Expect(err).NotTo(HaveOccurred())
				defer r.Close()
				text, _, err := medium.DecodePNG(r)
				Expect(err).NotTo(HaveOccurred())
				m, err := terminal.ReadMedium(text, &f.Issuer.CA.PublicKey, Clock.Add(12*time.Hour))
				Expect(err).NotTo(HaveOccurred(), "within its validity")
				Expect(m.Info.DeviceID).To(Equal(f.Profile.DeviceID))
				_, err = terminal.ReadMedium(text, &f.Issuer.CA.PublicKey, Clock.Add(25*time.Hour))
				Expect(err).To(MatchError(ContainSubstring("expired")))
			}, SpecTimeout(60*time.Second))

		It("MUST present a valid T=1 Answer To Reset and keep its state when detached and attached again between payments",
			Serial, Case("TC-FORM-001", Positive, Negative, "SPD-FORM-1", "SPD-FORM-3", "SPD-STO-1", "C35", "C36", "C37", "C42", "C43", "C44"), func(ctx SpecContext) {
				need(d, PowerCycle)
				f := personalised(ctx, d, nil)
				if a, ok := f.rec.Link().(link.ATRer); ok {
					Expect(checkATR(a.ATR())).To(Succeed(), asserts("C36", "a SIM, eSIM or USB device reset through contacts or CCID answers a valid T=1 ATR"))
				}
				f.login(ctx)
				res := f.pay(ctx, payment(spd.KindBalance, spd.ModeOffline, 7_00))
				Expect(res.Success()).To(BeTrue())
				before := f.snapshot(ctx)
				reconnect(ctx, f) // the SPD leaves the terminal's interface and comes back
				Expect(f.snapshot(ctx)).To(Equal(before), asserts("C42", asserts("C43", asserts("C44",
					"connected only while paying, or worn and taken off: the state is kept across detaching"))))
				Expect(f.sw(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOffline, 1_00)))).To(Equal(apdu.SWSecurityNotSatisfied),
					"verification does not survive detaching")
				f.login(ctx)
				Expect(f.pay(ctx, payment(spd.KindBalance, spd.ModeOffline, 1_00)).Success()).To(BeTrue(),
					asserts("C37", "the same APDUs pay again over the link the rig reaches the device by, as over any other (SPD-FORM-1)"))
			}, SpecTimeout(60*time.Second))
	})
}
