package scenarios

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

func defineApplication(d Driver) {
	Describe("Application selection and command handling", func() {
		It("MUST answer SELECT by the SPD AID with its AID and life-cycle state",
			Case("TC-APP-001", Positive, "SPD-APP-1", "C1", "C28"), func(ctx SpecContext) {
				f := open(ctx, d)
				sel, err := f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(sel.AID).To(Equal(spd.AID), asserts("C28", "the SPD runs its own application, selected by its AID"))
				if d.Profile().Has(Fresh) {
					Expect(sel.State).To(Equal(spd.StateBlank))
				}
			}, SpecTimeout(30*time.Second))

		It("MUST answer 6A82 to SELECT of another AID",
			Case("TC-APP-002", Negative, "SPD-APP-1", "C28"), func(ctx SpecContext) {
				f := open(ctx, d)
				other := apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x04, P2: 0x00, Data: []byte{0xA0, 0x00, 0x00, 0x00, 0x03, 0x10, 0x10}, Ne: 256}
				Expect(f.sw(ctx, other)).To(Equal(apdu.SWFileNotFound))
			}, SpecTimeout(30*time.Second))

		It("MUST answer 6985 to any command before the application is selected",
			Case("TC-APP-003", Negative, "SPD-APP-2", "C28"), func(ctx SpecContext) {
				f := open(ctx, d)
				Expect(f.sw(ctx, spd.GetData(spd.TagBalance))).To(Equal(apdu.SWConditionsNotSat))
				Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(apdu.SWConditionsNotSat))
			}, SpecTimeout(30*time.Second))

		It("MUST answer 6E00 to an unknown class and 6D00 to an unknown instruction",
			Case("TC-APP-004", Negative, "SPD-APP-3"), func(ctx SpecContext) {
				f := open(ctx, d)
				_, err := f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(f.sw(ctx, apdu.Command{CLA: 0x90, INS: 0x60})).To(Equal(apdu.SWClaNotSupported))
				Expect(f.sw(ctx, apdu.Command{CLA: 0x80, INS: 0x7E})).To(Equal(apdu.SWInsNotSupported))
				Expect(f.sw(ctx, apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x07, P2: 0x00, Data: spd.AID})).To(Equal(apdu.SWIncorrectP1P2))
			}, SpecTimeout(30*time.Second))

		It("MUST answer malformed APDUs with 6700 and change nothing",
			Case("TC-APP-005", Positive, Negative, "SPD-APP-3", "SPD-APP-4"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				before := f.snapshot(ctx)
				for _, raw := range [][]byte{
					{0x80, 0x60, 0x01, 0x00, 0x05, 0x01, 0x02},             // Lc beyond the data
					{0x80, 0x60, 0x01, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04}, // trailing bytes
					{0x80, 0x60, 0x01},                   // truncated header
					{0x80, 0x60, 0x01, 0x00, 0x00, 0x00}, // extended length cut short
				} {
					resp, err := f.Client.Link.Exchange(ctx, raw)
					if err != nil && len(raw) < 4 {
						// PC/SC and some readers refuse to carry less than a
						// header; the device never sees it.
						continue
					}
					Expect(err).NotTo(HaveOccurred())
					Expect(resp).To(HaveLen(2), "% X answered with data", raw)
					sw := apdu.SW(uint16(resp[0])<<8 | uint16(resp[1]))
					Expect(sw).To(Equal(apdu.SWWrongLength), "% X", raw)
				}
				Expect(f.snapshot(ctx)).To(Equal(before))
			}, SpecTimeout(30*time.Second))

		It("MUST refuse a payment data field with an unknown tag with 6A80 and change nothing",
			Case("TC-APP-006", Negative, "SPD-APP-3", "SPD-APP-4"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				before := f.snapshot(ctx)
				cmd := spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 100))
				cmd.Data = append(cmd.Data, 0xDF, 0x7F, 0x01, 0x00)
				Expect(f.sw(ctx, cmd)).To(Equal(apdu.SWWrongData))
				Expect(f.snapshot(ctx)).To(Equal(before))
			}, SpecTimeout(30*time.Second))
	})
}
