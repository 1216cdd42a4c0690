package scenarios

import (
	"bytes"
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
			Case("TC-XFR-001", Positive, Negative, "SPD-XFR-1", "SPD-XFR-2", "C13", "C16", "C17", "C19"), func(ctx SpecContext) {
				payer := personalised(ctx, d, nil)
				payee := personalised(ctx, d, nil)
				payer.login(ctx)
				payee.login(ctx)
				pb, qb := payer.snapshot(ctx), payee.snapshot(ctx)
				qs := payee.state(ctx)

				res, err := payer.Client.TransferOut(ctx, spd.TransferRequest{Amount: 15_00, Currency: 978,
					Payee: payee.Profile.DeviceID, Time: Clock, Expiry: Clock.Add(24 * time.Hour)})
				Expect(err).NotTo(HaveOccurred())
				Expect(res.Verify(payer.Pub)).To(Succeed())
				info := res.Info()
				Expect(info.Kind).To(Equal(medium.KindTransfer))
				Expect(info.Amount).To(Equal(int64(15_00)))
				Expect(info.Serial).To(Equal(uint64(1)), "a device's first transfer is serial 1")
				Expect(info.PayerID).To(Equal(payer.Profile.DeviceID), asserts("C19", "the medium carries the first identity, the payer's device"))
				Expect(info.PayeeID).To(Equal(payee.Profile.DeviceID), asserts("C17", "the second medium names the second user's device"))
				Expect(payer.Client.Balance(ctx)).To(Equal(pb.Balance-15_00), asserts("C13", asserts("C16", "the transfer medium is generated from the adjusted balance, debited before the medium is shown")))

				in, err := payee.Client.TransferIn(ctx, spd.TransferImport{Medium: res.Envelope, Time: Clock.Add(time.Minute)})
				Expect(err).NotTo(HaveOccurred())
				Expect(in.Verify(payee.Pub)).To(Succeed())
				Expect(payee.Client.Balance(ctx)).To(Equal(qb.Balance + 15_00))
				// The last sync time moves only with PERSONALISE, ACKNOWLEDGE
				// and UPDATE PARAMETERS (SPD-LED-3): never with a terminal's time.
				Expect(payee.state(ctx).LastSync).To(Equal(qs.LastSync), "TRANSFER IN at a later terminal time leaves the last sync time")

				Expect(payee.sw(ctx, spd.TransferIn(res.Envelope, Clock.Add(2*time.Minute)))).To(Equal(apdu.SWRefDataNotUsable), "second import")
				Expect(payee.Client.Balance(ctx)).To(Equal(qb.Balance+15_00), "a replayed transfer credits nothing")
			}, SpecTimeout(60*time.Second))

		It("MUST refuse a transfer medium bound to another device, or tampered with",
			Case("TC-XFR-002", Negative, "SPD-XFR-2", "SPD-XFR-3", "C17"), func(ctx SpecContext) {
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
				payee.refuses(ctx, spd.TransferIn(res.Envelope, Clock), sw6A80, "imported by a device it is not bound to")
				payer.refuses(ctx, spd.TransferIn(res.Envelope, Clock), sw6A80, "imported back by the payer")
				if capacities(d).Transfers < 2 {
					// Room for the next: a device that keeps one transfer
					// (SPEC.md section 11) has the first closed by the host.
					Expect(payer.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, Serials: []uint64{1}})).To(Equal(sw9000))
				}

				bound, err := payer.Client.TransferOut(ctx, spd.TransferRequest{Amount: 3_00, Currency: 978,
					Payee: payee.Profile.DeviceID, Time: Clock, Expiry: Clock.Add(time.Hour)})
				Expect(err).NotTo(HaveOccurred())
				// Raise the amount after signing: the medium still parses and
				// its certificate verifies, so the check reached is the
				// medium's own signature.
				tampered := append([]byte(nil), bound.Envelope...)
				i := bytes.Index(tampered, []byte{0x9F, 0x02, 0x08})
				Expect(i).To(BeNumerically(">", 0))
				tampered[i+9] ^= 0x01
				payee.refuses(ctx, spd.TransferIn(tampered, Clock), sw6982, "a transfer medium whose amount was changed after signing")
			}, SpecTimeout(60*time.Second))

		It("MUST refuse a transfer beyond the balance and change nothing",
			Case("TC-XFR-003", Negative, "SPD-XFR-1", "SPD-APP-4", "C13"), func(ctx SpecContext) {
				payer := personalised(ctx, d, nil)
				payer.login(ctx)
				payee := []byte{1, 2, 3, 4, 5, 6, 7, 8}
				cmd := spd.TransferOut(spd.TransferRequest{Amount: payer.Profile.Balance + 1, Currency: 978,
					Payee: payee, Time: Clock, Expiry: Clock.Add(time.Hour)})
				payer.refuses(ctx, cmd, sw6985, "a transfer above the balance")
				// The transfer serial is no data object: the next transfer
				// shows whether the refused one spent it.
				res, err := payer.Client.TransferOut(ctx, spd.TransferRequest{Amount: 1_00, Currency: 978,
					Payee: payee, Time: Clock, Expiry: Clock.Add(time.Hour)})
				Expect(err).NotTo(HaveOccurred())
				Expect(res.Info().Serial).To(Equal(uint64(1)), "the first transfer after a refused one is serial 1: the refusal spent no serial")
			}, SpecTimeout(30*time.Second))
	})
}
