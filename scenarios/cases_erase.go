package scenarios

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

func defineEraseCases(d Driver) {
	It("MUST return a test sample to blank on TEST ERASE signed by the CA with a fresh counter, and refuse every other TEST ERASE",
		Case("TC-TST-001", Positive, Negative, "SPD-TST-1", "SPD-KEY-3", "SPD-APP-4", "C40", "C41"), func(ctx SpecContext) {
			p := TestProfile() // a test sample (DF5F 01)
			f := personalised(ctx, d, &p)
			f.login(ctx)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOffline, 2_00), 2_00)
			// A sample the lab erased before starts above 0 (SPD-TST-2).
			n0, err := f.Client.EraseCounter(ctx)
			Expect(err).NotTo(HaveOccurred())
			erase := func(key *ecdsaKey, counter uint32) apdu.Command {
				cmd, err := spd.TestErase(key, f.Profile.DeviceID, counter)
				Expect(err).NotTo(HaveOccurred())
				return cmd
			}
			f.refuses(ctx, erase(f.Issuer.HostKey(), 1), sw6982, "TEST ERASE signed by the host key")
			other := append([]byte(nil), f.Profile.DeviceID...)
			other[7] ^= 1
			forOther, err := spd.TestErase(f.Issuer.CA, other, 1)
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, forOther, sw6982, "TEST ERASE for another device")
			p1 := erase(f.Issuer.CA, n0+1)
			p1.P1 = 1
			f.refuses(ctx, p1, sw6A86, "TEST ERASE P1 01")
			f.refuses(ctx, apdu.Command{CLA: 0x80, INS: 0x5E, Data: []byte{0xDF, 0x2F, 0x01, 0x01}}, sw6A80, "TEST ERASE without a signature")
			Expect(f.sw(ctx, erase(f.Issuer.CA, n0+1))).To(Equal(sw9000))
			_, sw := f.raw(ctx, rawCmd(spd.GetData(spd.TagBalance)))
			Expect(sw).To(Equal(sw6985), "TEST ERASE ended the session")
			sel, err := f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(sel.State).To(Equal(spd.StateBlank))
			Expect(sel.DeviceID).To(BeEmpty(), "a blank device has no device ID")
			Expect(f.Client.EraseCounter(ctx)).To(Equal(n0 + 1))
			f.refuses0(ctx, erase(f.Issuer.CA, n0+2), sw6985, "TEST ERASE of a blank device")
			// Section 12: state blank (6985) comes before P1-P2 (6A86).
			blankP1 := erase(f.Issuer.CA, n0+2)
			blankP1.P1 = 1
			f.refuses0(ctx, blankP1, sw6985, "TEST ERASE P1 01 of a blank device")
			// An initialised device holds no profile, so no DF5F: section 12
			// asks for DF5F only from personalised on, and erases it.
			_, err = f.Client.Initialise(ctx, &f.Issuer.CA.PublicKey, f.Profile.DeviceID)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, erase(f.Issuer.CA, n0+2))).To(Equal(sw9000), "TEST ERASE of an initialised device")
			sel, err = f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(sel.State).To(Equal(spd.StateBlank))
			Expect(f.Client.EraseCounter(ctx)).To(Equal(n0 + 2))

		}, SpecTimeout(30*time.Second))

	It("MUST keep the erase counter across TEST ERASE and refuse a recorded TEST ERASE after re-personalisation with 6984",
		Case("TC-TST-002", Positive, Negative, "SPD-TST-2", "SPD-TST-1", "C40"), func(ctx SpecContext) {
			p := TestProfile() // a test sample (DF5F 01)
			f := selected(ctx, d, &p)
			n0, err := f.Client.EraseCounter(ctx)
			Expect(err).NotTo(HaveOccurred())
			if dd, ok := d.(*DUTDriver); ok && dd.Emulated() {
				Expect(n0).To(Equal(uint32(0)), "a new device's erase counter is 0")
			}
			// SPD-TST-1: TEST ERASE destroys every stored medium too; the
			// sample personalised again holds none of its earlier life.
			media := d.Profile().Has(StoredMedia)
			if media {
				code := merchantCode(mpm("00", "01"), mpm("26", mpm("00", "spdlab")+mpm("01", "ERASED-1")), mpm("53", "978"))
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "before-erase", Format: spd.FormatMerchantCode, Content: []byte(code)}))).
					To(Equal(sw9000))
			}
			recorded, err := spd.TestErase(f.Issuer.CA, p.DeviceID, n0+5)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, recorded)).To(Equal(sw9000))
			got, err := f.Issuer.Personalise(ctx, f.Client, p)
			Expect(err).NotTo(HaveOccurred(), "personalised again after TEST ERASE")
			f.Profile, f.Pub = got, got.DevicePublicKey
			_, err = f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Client.EraseCounter(ctx)).To(Equal(n0+5), "the erase counter survives TEST ERASE")
			if media {
				list, err := f.Client.ListMedia(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(list).To(BeEmpty(), "no stored medium survives TEST ERASE")
				f.refuses(ctx, spd.ShowMedium("before-erase", Clock), sw6A83, "SHOW MEDIUM of a medium stored before TEST ERASE")
			}
			f.refuses(ctx, recorded, sw6984, "the recorded TEST ERASE replayed")
			older, err := spd.TestErase(f.Issuer.CA, p.DeviceID, n0+4)
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, older, sw6984, "an older counter")
		}, SpecTimeout(30*time.Second))

	It("MUST refuse TEST ERASE of a production device (no DF5F) with 6985 and change nothing",
		Case("TC-TST-003", Negative, "SPD-TST-1", "SPD-APP-4", "C40", "C41"), func(ctx SpecContext) {
			// A production personalisation cannot be erased by the lab: the
			// sample must be one it may spend.
			need(d, Disposable)
			prod := TestProfile()
			prod.TestSample = false
			g := selected(ctx, d, &prod)
			n0, err := g.Client.EraseCounter(ctx)
			Expect(err).NotTo(HaveOccurred())
			cmd, err := spd.TestErase(g.Issuer.CA, g.Profile.DeviceID, n0+1)
			Expect(err).NotTo(HaveOccurred())
			g.refuses(ctx, cmd, sw6985, "TEST ERASE of a production device (no DF5F)")
		}, SpecTimeout(30*time.Second))
}

// refuses0 is refuses for a device with no profile: only the status word
// and the life-cycle state can be read.
func (f *Fixture) refuses0(ctx SpecContext, cmd apdu.Command, sw apdu.SW, why string) {
	GinkgoHelper()
	before, err := f.Client.State(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(f.sw(ctx, cmd)).To(Equal(sw), why)
	Expect(f.Client.State(ctx)).To(Equal(before), why)
}
