package scenarios

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
)

// The signed bytes of SPD-KEY-5, taken apart here from the raw responses
// (sections 7.1 and 8) rather than by the codecs the device shares.
const recordDomain = "SPDLAB-PR1"

// splitSigned splits a list of BER-TLV objects into the bytes before its
// last object, which must be 9F45, and that object's value.
func splitSigned(b []byte) (signed, sig []byte) {
	GinkgoHelper()
	rest, at := b, 0
	for len(rest) > 0 {
		o, next, err := tlv.Next(rest)
		Expect(err).NotTo(HaveOccurred(), "BER-TLV at offset %d", at)
		if len(next) == 0 {
			Expect(o.Tag).To(Equal(tlv.Tag(0x9F45)), "the last object is the signature")
			return b[:at], o.Value
		}
		at += len(rest) - len(next)
		rest = next
	}
	Fail("no objects")
	return nil, nil
}

func defineSignatureCases(d Driver) {
	It("MUST sign a pending record over \"SPDLAB-PR1\" and its children, and a medium over every byte before 9F45",
		Case("TC-KEY-006", Positive, "SPD-KEY-5", "SPD-LED-2", "C4", "C12"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			r := payment(spd.KindBalance, spd.ModeOffline, 3_33)
			r.Payee = []byte("MERCHANT-7")
			paid := f.pays(ctx, r, 3_33)

			resp, err := f.Client.Transmit(ctx, spd.ReadPending(0))
			Expect(err).NotTo(HaveOccurred())
			Expect(resp.SW).To(Equal(sw9000))
			rec, err := tlv.ParseOne(resp.Data)
			Expect(err).NotTo(HaveOccurred())
			Expect(rec.Tag).To(Equal(tlv.Tag(0xE1)))
			children, sig := splitSigned(rec.Value)
			digest := sha256.Sum256(append([]byte(recordDomain), children...))
			Expect(ecdsa.VerifyASN1(f.Pub, digest[:], sig)).To(BeTrue(), "the record's 9F45 over \"SPDLAB-PR1\" || its children")
			bare := sha256.Sum256(children)
			Expect(ecdsa.VerifyASN1(f.Pub, bare[:], sig)).To(BeFalse(), "the record's signature covers the domain prefix")
			Expect(bytes.Contains(children, append([]byte{0xDF, 0x09, 10}, r.Payee...))).To(BeTrue(), "the record names the payee (DF09)")

			for what, env := range map[string][]byte{"payment result": paid.Envelope, "stored-value medium": f.medium(ctx)} {
				signed, sig := splitSigned(env)
				Expect(signed[0]).To(Equal(byte(0x85)), "%s: the envelope starts with 85", what)
				digest := sha256.Sum256(signed)
				Expect(ecdsa.VerifyASN1(f.Pub, digest[:], sig)).To(BeTrue(), "%s: 9F45 over every byte before it", what)
			}
		}, SpecTimeout(30*time.Second))

	It("MUST keep a medium stored beforehand verifiable by its own certificate: without it 6A80, with another device's 6982",
		Case("TC-MED-009", Positive, Negative, "SPD-MED-5", "SPD-MED-4", "SPD-MED-6", "C10", "C38"), func(ctx SpecContext) {
			need(d, ParseMedium)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			env := f.medium(ctx)
			// Stored beforehand: as an image, read back later.
			img, err := medium.RenderPNG(medium.Text(env), medium.QR, 4)
			Expect(err).NotTo(HaveOccurred())
			text, format, err := medium.DecodePNG(bytes.NewReader(img))
			Expect(err).NotTo(HaveOccurred())
			Expect(format).To(Equal(medium.QR))
			stored, err := base64.StdEncoding.DecodeString(text)
			Expect(err).NotTo(HaveOccurred())
			Expect(stored).To(Equal(env))
			resp, err := f.Client.Transmit(ctx, spd.ParseMedium(stored))
			Expect(err).NotTo(HaveOccurred())
			Expect(resp.SW).To(Equal(sw9000), "the stored medium verifies by the certificate it carries")

			objs, err := tlv.Parse(stored)
			Expect(err).NotTo(HaveOccurred())
			Expect(objs).To(HaveLen(3))
			withCert := func(cert []byte) []byte {
				var kept []tlv.TLV
				for _, c := range objs[1].Children {
					if c.Tag != 0xDF11 {
						kept = append(kept, tlv.TLV{Tag: c.Tag, Value: c.Value})
					} else if cert != nil {
						kept = append(kept, tlv.TLV{Tag: 0xDF11, Value: cert})
					}
				}
				b, err := tlv.Encode(objs[0], tlv.TLV{Tag: 0x61, Children: kept}, objs[2])
				Expect(err).NotTo(HaveOccurred())
				return b
			}
			f.refuses(ctx, spd.ParseMedium(withCert(nil)), sw6A80, "a stored medium without its certificate")
			f.refuses(ctx, spd.ParseMedium(withCert(newForger(f.Issuer).Cert)), sw6982, "a stored medium carrying another device's certificate")
		}, SpecTimeout(30*time.Second))
}

// medium asks the device for a stored-value medium and returns its
// envelope.
func (f *Fixture) medium(ctx SpecContext) []byte {
	GinkgoHelper()
	res, err := f.Client.GenerateMedium(ctx, spd.MediumRequest{Time: Clock})
	Expect(err).NotTo(HaveOccurred())
	return res.Envelope
}
