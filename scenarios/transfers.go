package scenarios

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

func defineTransfers(d Driver) {
	Describe("Value transfers between devices", func() {
		It("MUST debit the payer before showing the transfer medium, and credit the named payee once",
			Case("TC-XFR-001", "SPD-XFR-1", "SPD-XFR-2", "C13", "C16", "C17", "C19"), func(ctx SpecContext) {
				payer := personalised(ctx, d, nil)
				payee := personalised(ctx, d, nil)
				payer.login(ctx)
				payee.login(ctx)
				pb, qb := payer.snapshot(ctx), payee.snapshot(ctx)

				res, err := payer.Client.TransferOut(ctx, spd.TransferRequest{Amount: 15_00, Currency: 978,
					Payee: payee.Profile.DeviceID, Time: Clock, Expiry: Clock.Add(24 * time.Hour)})
				Expect(err).NotTo(HaveOccurred())
				Expect(res.Verify(payer.Pub)).To(Succeed())
				info := res.Info()
				Expect(info.Kind).To(Equal(medium.KindTransfer))
				Expect(info.Amount).To(Equal(int64(15_00)))
				Expect(info.PayerID).To(Equal(payer.Profile.DeviceID))
				Expect(info.PayeeID).To(Equal(payee.Profile.DeviceID))
				Expect(payer.Client.Balance(ctx)).To(Equal(pb.Balance-15_00), "debited before the medium is shown")

				in, err := payee.Client.TransferIn(ctx, spd.TransferImport{Medium: res.Envelope, Time: Clock.Add(time.Minute)})
				Expect(err).NotTo(HaveOccurred())
				Expect(in.Verify(payee.Pub)).To(Succeed())
				Expect(payee.Client.Balance(ctx)).To(Equal(qb.Balance + 15_00))

				Expect(payee.sw(ctx, spd.TransferIn(res.Envelope, Clock.Add(2*time.Minute)))).To(Equal(apdu.SWRefDataNotUsable), "second import")
				Expect(payee.Client.Balance(ctx)).To(Equal(qb.Balance+15_00), "a replayed transfer credits nothing")
			}, SpecTimeout(60*time.Second))

		It("MUST refuse a transfer medium bound to another device, or tampered with",
			Case("TC-XFR-002", "SPD-XFR-2", "SPD-XFR-3", "C17"), func(ctx SpecContext) {
				payer := personalised(ctx, d, nil)
				payee := personalised(ctx, d, nil)
				payer.login(ctx)
				payee.login(ctx)
				// Bound to a third device that is not here: neither device
				// present may import it.
				elsewhere := []byte{0x5D, 0x1A, 0xFF, 0xFF, 0, 0, 0, 1}
				res, err := payer.Client.TransferOut(ctx, spd.TransferRequest{Amount: 3_00, Currency: 978,
					Payee: elsewhere, Time: Clock, Expiry: Clock.Add(time.Hour)})
				Expect(err).NotTo(HaveOccurred())
				qb := payee.snapshot(ctx)
				Expect(payee.sw(ctx, spd.TransferIn(res.Envelope, Clock))).NotTo(Equal(apdu.SWOK), "imported by a device it is not bound to")
				Expect(payee.snapshot(ctx)).To(Equal(qb))
				pb := payer.snapshot(ctx)
				Expect(payer.sw(ctx, spd.TransferIn(res.Envelope, Clock))).NotTo(Equal(apdu.SWOK), "imported back by the payer")
				Expect(payer.snapshot(ctx)).To(Equal(pb))

				bound, err := payer.Client.TransferOut(ctx, spd.TransferRequest{Amount: 3_00, Currency: 978,
					Payee: payee.Profile.DeviceID, Time: Clock, Expiry: Clock.Add(time.Hour)})
				Expect(err).NotTo(HaveOccurred())
				tampered := append([]byte(nil), bound.Envelope...)
				tampered[len(tampered)/2] ^= 0x01
				Expect(payee.sw(ctx, spd.TransferIn(tampered, Clock))).NotTo(Equal(apdu.SWOK))
				Expect(payee.snapshot(ctx)).To(Equal(qb))
			}, SpecTimeout(60*time.Second))

		It("MUST refuse a transfer beyond the balance and change nothing",
			Case("TC-XFR-003", "SPD-XFR-1", "C13"), func(ctx SpecContext) {
				payer := personalised(ctx, d, nil)
				payer.login(ctx)
				before := payer.snapshot(ctx)
				cmd := spd.TransferOut(spd.TransferRequest{Amount: payer.Profile.Balance + 1, Currency: 978,
					Payee: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Time: Clock, Expiry: Clock.Add(time.Hour)})
				Expect(payer.sw(ctx, cmd)).NotTo(Equal(apdu.SWOK))
				Expect(payer.snapshot(ctx)).To(Equal(before))
			}, SpecTimeout(30*time.Second))
	})
}
