package scenarios

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
)

func defineLedger(d Driver) {
	Describe("Offline payments and the pending ledger", func() {
		It("MUST pay offline within the risk limits and record each payment as a signed pending record",
			Case("TC-OFF-001", Positive, "SPD-LED-1", "SPD-LED-2", "C4", "C7"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				for _, amt := range []int64{5_00, 7_50, 2_25} {
					res := f.pay(ctx, payment(spd.KindBalance, spd.ModeOffline, amt))
					Expect(res.Success()).To(BeTrue(), "reason: %s", res.Info().Reason)
				}
				recs, err := f.Client.PendingRecords(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(recs).To(HaveLen(3))
				var sum int64
				for i, r := range recs {
					Expect(r.Verify(f.Pub)).To(Succeed())
					Expect(r.DeviceID).To(Equal(f.Profile.DeviceID))
					Expect(r.Mode).To(Equal(spd.ModeOffline))
					if i > 0 {
						Expect(r.ATC).To(BeNumerically(">", recs[i-1].ATC))
					}
					sum += r.Amount
				}
				Expect(f.Client.Pending(ctx)).To(Equal(sum))
			}, SpecTimeout(30*time.Second))

		It("MUST decline offline payments beyond the cumulative pending limit and the count limit",
			Case("TC-OFF-002", Negative, "SPD-LED-3", "C4", "C7"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				lim := f.Profile.Limits
				res := f.pay(ctx, payment(spd.KindBalance, spd.ModeOffline, lim.MaxPending))
				Expect(res.Success()).To(BeTrue(), "reason: %s", res.Info().Reason)
				f.declines(ctx, payment(spd.KindBalance, spd.ModeOffline, 1), reasonPendingLimit)

				g := personalised(ctx, d, nil)
				g.login(ctx)
				for i := 0; i < lim.MaxOfflineCount; i++ {
					Expect(g.pay(ctx, payment(spd.KindUse, spd.ModeOffline, 0)).Success()).To(BeTrue())
				}
				g.declines(ctx, payment(spd.KindUse, spd.ModeOffline, 0), reasonCountLimit)
			}, SpecTimeout(60*time.Second))

		It("MUST decline offline payments when too long has passed since the last sync",
			Case("TC-OFF-003", Negative, "SPD-LED-3", "C7"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				r := payment(spd.KindBalance, spd.ModeOffline, 1_00)
				r.Time = Clock.Add(f.Profile.Limits.MaxOfflineAge + time.Hour)
				f.declines(ctx, r, reasonSyncTooOld)
				r.Mode = spd.ModeOnline
				Expect(f.pay(ctx, r).Success()).To(BeTrue(), "online is not bound by the offline age")
			}, SpecTimeout(30*time.Second))

		It("MUST clear exactly the acknowledged records, named in any order or twice, once, keeping the rest oldest first, ignoring ATCs it does not hold, and refuse a forged acknowledgement",
			Case("TC-OFF-004", Positive, Negative, "SPD-LED-4", "SPD-LED-2", "SPD-KEY-3", "C4"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				for _, amt := range []int64{1_00, 2_00, 3_00, 4_00, 5_00} {
					Expect(f.pay(ctx, payment(spd.KindBalance, spd.ModeOffline, amt)).Success()).To(BeTrue())
				}
				recs, err := f.Client.PendingRecords(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(recs).To(HaveLen(5))
				// left checks that READ PENDING answers exactly the records
				// want, oldest first (SPD-LED-2), and the pending total and
				// count with them.
				left := func(why string, want ...int) {
					GinkgoHelper()
					got, err := f.Client.PendingRecords(ctx)
					Expect(err).NotTo(HaveOccurred())
					Expect(got).To(HaveLen(len(want)), "%s: the records left", why)
					var sum int64
					for i, k := range want {
						Expect(got[i].ATC).To(Equal(recs[k].ATC), "%s: READ PENDING P1-P2 = %d answers the records left oldest first", why, i)
						Expect(got[i].Body()).To(Equal(recs[k].Body()), "%s: READ PENDING %d answers the record as it was made", why, i)
						sum += recs[k].Amount
					}
					Expect(f.Client.PendingCount(ctx)).To(Equal(len(want)), "%s: DF22", why)
					Expect(f.Client.Pending(ctx)).To(Equal(sum), "%s: DF05", why)
				}

				forged := f.hostOrder(func(_ *ecdsaKey, id []byte) (apdu.Command, error) {
					rogue, err := issuer.Generate("rogue")
					if err != nil {
						return apdu.Command{}, err
					}
					return spd.Acknowledge(rogue.HostKey(), id, spd.Acknowledgement{SyncTime: Clock, ATCs: []uint32{recs[0].ATC}})
				})
				f.refuses(ctx, forged, sw6982, "an acknowledgement signed by another host")

				// Two records from the middle, named newest first (not in the
				// ledger's order): exactly they go, the rest keep their order.
				ack := f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.Acknowledge(k, id, spd.Acknowledgement{SyncTime: Clock.Add(time.Minute), ATCs: []uint32{recs[3].ATC, recs[1].ATC}})
				})
				Expect(f.sw(ctx, ack)).To(Equal(apdu.SWOK))
				left("after acknowledging the 2nd and 4th records", 0, 2, 4)
				// The same acknowledgement again clears nothing more.
				f.refuses(ctx, ack, sw9000, "the same acknowledgement again")
				// The oldest record, named twice: it goes, once, and the next
				// becomes the first.
				Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock.Add(time.Minute),
					ATCs: []uint32{recs[0].ATC, recs[0].ATC}})).To(Equal(sw9000))
				left("after acknowledging the oldest record, named twice", 2, 4)
				// ATCs the device does not hold are ignored wherever they stand:
				// one it dropped and one it never used, before the ones it holds.
				Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock.Add(time.Minute),
					ATCs: []uint32{recs[0].ATC, 0xFFFFFFFF, recs[2].ATC, recs[4].ATC}})).To(Equal(sw9000))
				Expect(f.Client.PendingCount(ctx)).To(Equal(0), "the records named after ATCs the device does not hold are dropped")
				Expect(f.Client.Pending(ctx)).To(Equal(int64(0)))
			}, SpecTimeout(30*time.Second))

		It("MUST bind the payee, the payee nonce and a payment nonce into every payment record, the same on every export, and refuse a nonce of a wrong length",
			Case("TC-OFF-008", Positive, Negative, "SPD-PAY-8", "SPD-PAY-7", "C4", "C5", "C7", "C19"), func(ctx SpecContext) {
				need(d, PayBalance)
				f := personalised(ctx, d, nil)
				f.login(ctx)
				given := payment(spd.KindBalance, spd.ModeOnline, 1_00)
				given.Payee, given.PayeeNonce = []byte("SHOP-0008"), []byte("ORDER-0008")
				given.TerminalNonce = []byte{0x08, 0x17, 0x26, 0x35, 0x44, 0x53, 0x62, 0x71, 0x80, 0x9F, 0xAE, 0xBD}
				Expect(f.pay(ctx, given).Success()).To(BeTrue())
				bare := payment(spd.KindBalance, spd.ModeOnline, 1_00)
				for range 2 {
					Expect(f.pay(ctx, bare).Success()).To(BeTrue())
				}
				recs, err := f.Client.PendingRecords(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(recs).To(HaveLen(3))
				Expect(recs[0].Payee).To(Equal(given.Payee), "the payee (DF09)")
				Expect(recs[0].PayeeNonce).To(Equal(given.PayeeNonce), "the payee nonce (DF07)")
				Expect(recs[0].Nonce).To(Equal(given.TerminalNonce), "the terminal's nonce is the record's 9F37")
				for _, r := range recs[1:] {
					Expect(r.Verify(f.Pub)).To(Succeed())
					Expect(r.Payee).To(BeEmpty())
					Expect(r.PayeeNonce).To(BeEmpty())
					Expect(r.Nonce).To(HaveLen(16), "the device's own nonce for a PAY without 9F37")
				}
				Expect(recs[1].Nonce).NotTo(Equal(recs[2].Nonce), "two payments, two nonces")
				again, err := f.Client.ReadPending(ctx, 1)
				Expect(err).NotTo(HaveOccurred())
				Expect(again.Body()).To(Equal(recs[1].Body()), "a record exported again is the same record (only the signature differs)")

				for _, n := range [][]byte{{1, 2, 3}, make([]byte, 33)} {
					bad := payment(spd.KindBalance, spd.ModeOnline, 1_00)
					bad.TerminalNonce = n
					f.refuses(ctx, spd.Pay(bad), sw6A80, fmt.Sprintf("a terminal nonce of %d bytes", len(n)))
				}
			}, SpecTimeout(30*time.Second))
	})
}
