package scenarios

import (
	"bytes"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

func defineMedia(d Driver) {
	Describe("Coded media", func() {
		It("MUST show a stored-value medium signed by a certified device key, with the token and never the account",
			Case("TC-MED-001", Positive, "SPD-MED-1", "SPD-KEY-2", "C1", "C8", "C9", "C12", "C24", "C50"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				nonce := []byte("MERCHANT-NONCE-42")
				res, err := f.Client.GenerateMedium(ctx, spd.MediumRequest{Time: Clock, PayeeNonce: nonce})
				Expect(err).NotTo(HaveOccurred())
				m := res.Medium
				cert, err := medium.VerifyCertificate(m, &f.Issuer.CA.PublicKey)
				Expect(err).NotTo(HaveOccurred(), "medium verifies through the device certificate to the issuer CA")
				Expect(cert.Subject.SerialNumber).To(Equal(spd.DeviceIDString(f.Profile.DeviceID)))
				s := f.snapshot(ctx)
				info := m.Info
				Expect(info.Kind).To(Equal(medium.KindStoredValue))
				Expect(info.Balance).To(Equal(s.Balance), asserts("C12", "the SPD generates a coded medium from its parameters: the balance"))
				Expect(uint32(info.Uses)).To(Equal(s.Uses))
				Expect(info.Token).To(Equal(f.Profile.AccountToken))
				Expect(info.PayeeNonce).To(Equal(nonce))
				Expect(info.Expiry.After(info.Issued)).To(BeTrue())
				Expect(string(res.Envelope)).NotTo(ContainSubstring(string(f.Profile.Account)))
			}, SpecTimeout(30*time.Second))

		It("MUST decode back to the same bytes from every image format, and refuse a tampered text",
			Label("slow"), Case("TC-MED-002", Positive, Negative, "SPD-MED-2", "C12", "C34"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				res, err := f.Client.GenerateMedium(ctx, spd.MediumRequest{Time: Clock})
				Expect(err).NotTo(HaveOccurred())
				text := medium.Text(res.Envelope)
				for _, format := range []medium.Format{medium.QR, medium.DataMatrix} {
					img, err := medium.Render(text, format, 4)
					Expect(err).NotTo(HaveOccurred(), format.String())
					recordMedium("stored value", format, text, img)
					got, gotFormat, err := medium.DecodeImage(img)
					Expect(err).NotTo(HaveOccurred(), format.String())
					Expect(gotFormat).To(Equal(format))
					Expect(got).To(Equal(text), asserts("C34", format.String()+" decodes back to the medium's text"))
					m, err := medium.ParseText(got)
					Expect(err).NotTo(HaveOccurred())
					Expect(m.Verify(f.Pub)).To(Succeed())
				}
				// The device itself must refuse a changed medium: raise the
				// balance after signing and have it parse the result.
				changed := append([]byte(nil), res.Envelope...)
				i := bytes.Index(changed, []byte{0xDF, 0x04, 0x08})
				Expect(i).To(BeNumerically(">", 0))
				changed[i+10] ^= 0x01
				f.refuses(ctx, spd.ParseMedium(changed), sw6982, "PARSE MEDIUM of a medium changed after signing")
			}, SpecTimeout(60*time.Second))
	})
}
