package scenarios

import (
	"bytes"
	"encoding/base64"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
)

func defineServiceTransfers(d Driver) {
	Describe("Transfers between users", func() {
		It("MUST transfer offline to the payee's device only, once, and settle both sides",
			Case("TC-SVC-020", Positive, Negative, "SPD-XFR-1", "SPD-XFR-2", "SPD-LED-5", "C13", "C16", "C17", "C19"), func(ctx SpecContext) {
				s := newServiceLab(d)
				payer := s.customer(ctx, d, nil)
				payee := s.customer(ctx, d, nil)
				s.net.Down.Store(true)
				out := done(payer.tm.SendTransfer(ctx, terminal.TransferOrder{Payee: payee.f.Profile.DeviceID, Amount: 15_00}))
				Expect(payer.f.snapshot(ctx).Balance).To(Equal(payer.f.Profile.Balance-15_00), "debited before the medium is shown")
				codes := payer.user.Codes()
				text, _, err := medium.DecodePNG(bytes.NewReader(shownPNG(codes[len(codes)-1])))
				Expect(err).NotTo(HaveOccurred(), "the payee's terminal scans the payer's screen")
				env, err := base64.StdEncoding.DecodeString(text)
				Expect(err).NotTo(HaveOccurred())
				// The payer's own device is not the one the medium is bound
				// to: its terminal says so, and the device itself refuses.
				notDone(payer.tm.ReceiveTransfer(ctx, text, terminal.Verification{}), "not this one")
				payer.f.login(ctx)
				payer.f.refuses(ctx, spd.TransferIn(env, s.clock.Now()), sw6A80, "imported back by the payer's device")
				in := done(payee.tm.ReceiveTransfer(ctx, text, terminal.Verification{}))
				Expect(in.Amount).To(Equal(int64(15_00)))
				Expect(in.Serial).To(Equal(out.Serial))
				notDone(payee.tm.ReceiveTransfer(ctx, text, terminal.Verification{}), "this transfer was imported before")
				payee.f.login(ctx)
				payee.f.refuses(ctx, spd.TransferIn(env, s.clock.Now()), sw6984, "imported a second time")
				Expect(payee.f.snapshot(ctx).Balance).To(Equal(payee.f.Profile.Balance + 15_00))
				s.net.Down.Store(false)
				// The payee settles first: the payer's settlement then finds
				// the import and hands the payer's device the serial to close
				// (ACKNOWLEDGE DF0A, SPD-LED-4).
				done(payee.tm.Settle(ctx))
				done(payer.tm.Settle(ctx))
				Expect(s.issuerBalance(ctx, payer)).To(Equal(payer.f.Profile.Balance - 15_00))
				Expect(s.issuerBalance(ctx, payee)).To(Equal(payee.f.Profile.Balance + 15_00))
				a := s.conserved(ctx)
				Expect(a.InFlight).To(Equal(int64(0)))
				Expect(payer.f.snapshot(ctx).Ledger).To(Equal(0))
				// Closed, the payer's device shows the transfer no more, and
				// it cannot be reclaimed.
				payer.f.login(ctx)
				payer.f.refuses(ctx, spd.TransferShow(out.Serial, s.clock.Now()), sw6A83, "a settled transfer shown again")
				payer.f.refuses(ctx, payer.f.reclaimOrder(out.Serial, s.clock.Now().Add(48*time.Hour)), sw6A83, "a settled transfer reclaimed")
			}, SpecTimeout(90*time.Second))

		It("MUST reclaim an offline transfer nobody imported, only after it expired, once",
			Case("TC-SVC-021", Positive, Negative, "SPD-XFR-3", "SPD-XFR-4", "SPD-LED-5", "C13", "C17"), func(ctx SpecContext) {
				s := newServiceLab(d)
				payer := s.customer(ctx, d, nil)
				payee := s.customer(ctx, d, nil)
				out := done(payer.tm.SendTransfer(ctx, terminal.TransferOrder{Payee: payee.f.Profile.DeviceID, Amount: 9_00,
					Expiry: s.clock.Now().Add(time.Hour)}))
				notDone(payer.tm.ReclaimTransfer(ctx, out.Serial), "RECLAIM")
				s.clock.Advance(2 * time.Hour)
				codes := payer.user.Codes()
				text, _, err := medium.DecodePNG(bytes.NewReader(shownPNG(codes[len(codes)-1])))
				Expect(err).NotTo(HaveOccurred())
				notDone(payee.tm.ReceiveTransfer(ctx, text, terminal.Verification{}), "expired")
				done(payer.tm.ReclaimTransfer(ctx, out.Serial))
				Expect(payer.f.snapshot(ctx).Balance).To(Equal(payer.f.Profile.Balance))
				notDone(payer.tm.ReclaimTransfer(ctx, out.Serial), "")
				st := done(payer.tm.Settle(ctx))
				Expect(st.Left).To(Equal(0))
				Expect(s.issuerBalance(ctx, payer)).To(Equal(payer.f.Profile.Balance))
				s.conserved(ctx)
			}, SpecTimeout(90*time.Second))

		It("MUST transfer online on both devices: the payer's debits, the payee's imports, the issuer follows them; unclaimed and expired, reclaimed once",
			Case("TC-SVC-022", Positive, Negative, "SPD-XFR-5", "SPD-XFR-4", "SPD-KEY-4", "C13", "C16", "C17", "C30"), func(ctx SpecContext) {
				s := newServiceLab(d)
				payer := s.customer(ctx, d, nil)
				payee := s.customer(ctx, d, nil)
				tr := terminal.OnlineTransfer{ID: "SUITE-X1", Payee: payee.f.Profile.DeviceID, Amount: 8_00, Expires: s.clock.Now().Add(time.Hour)}
				o := done(payer.tm.SendOnline(ctx, tr))
				Expect(o.Transfer.State).To(Equal(backend.TransferInFlight))
				Expect(payer.f.snapshot(ctx).Balance).To(Equal(payer.f.Profile.Balance-8_00), "the payer's device debited (TRANSFER)")
				Expect(payer.f.snapshot(ctx).Ledger).To(Equal(0), "its transfer-out record settled and was acknowledged")
				Expect(s.issuerBalance(ctx, payer)).To(Equal(payer.f.Profile.Balance-8_00), "the issuer's view of the payer follows its device")
				Expect(s.issuerBalance(ctx, payee)).To(Equal(payee.f.Profile.Balance), "nothing credited before the payee's device imports")
				Expect(s.conserved(ctx).InFlight).To(Equal(int64(8_00)))
				retry := tr
				retry.Serial = o.Serial
				Expect(done(payer.tm.SendOnline(ctx, retry)).Transfer.Repeated).To(BeTrue(), "sent again, it takes effect once")
				Expect(payer.f.snapshot(ctx).Balance).To(Equal(payer.f.Profile.Balance - 8_00))

				// A device it does not name cannot take it, its payer's
				// own included: the terminal says so, and the device itself
				// refuses the medium the backend carries (DF08 is this
				// device). Two devices are enough: a third's refusal (DF09
				// not this device) is TC-XFR-008's, on one.
				notDone(payer.tm.Claim(ctx, "SUITE-X1", terminal.Verification{}), "not this one")
				payer.f.login(ctx)
				payer.f.refuses(ctx, spd.TransferIn(o.Transfer.Medium, s.clock.Now()), sw6A80, "an online transfer imported back by its payer's device")
				Expect(payer.f.snapshot(ctx).Balance).To(Equal(payer.f.Profile.Balance-8_00), "nothing credited back")

				c := done(payee.tm.Claim(ctx, "SUITE-X1", terminal.Verification{}))
				Expect(c.Transfer.State).To(Equal(backend.TransferClaimed))
				Expect(payee.f.snapshot(ctx).Balance).To(Equal(payee.f.Profile.Balance+8_00), "the payee's device credited (TRANSFER IN)")
				Expect(payee.f.snapshot(ctx).Ledger).To(Equal(0), "its import record settled and was acknowledged")
				Expect(s.issuerBalance(ctx, payee)).To(Equal(payee.f.Profile.Balance + 8_00))
				done(payee.tm.Claim(ctx, "SUITE-X1", terminal.Verification{}))
				Expect(payee.f.snapshot(ctx).Balance).To(Equal(payee.f.Profile.Balance+8_00), "claimed again, credited once")
				payee.f.login(ctx)
				payee.f.refuses(ctx, spd.TransferIn(o.Transfer.Medium, s.clock.Now()), sw6984, "imported a second time")
				// The payer's device closes the transfer at its next contact.
				done(payer.tm.Sync(ctx))
				payer.f.login(ctx)
				payer.f.refuses(ctx, spd.TransferShow(o.Serial, s.clock.Now()), sw6A83, "a claimed transfer shown again")

				tr.ID = "SUITE-X2"
				o = done(payer.tm.SendOnline(ctx, tr))
				notDone(payer.tm.ReclaimOnline(ctx, "SUITE-X2", terminal.Verification{}), "refused")
				s.clock.Advance(2 * time.Hour)
				notDone(payee.tm.Claim(ctx, "SUITE-X2", terminal.Verification{}), "")
				Expect(payee.f.snapshot(ctx).Balance).To(Equal(payee.f.Profile.Balance+8_00), "an expired medium is not imported")
				done(payer.tm.ReclaimOnline(ctx, "SUITE-X2", terminal.Verification{}))
				Expect(payer.f.snapshot(ctx).Balance).To(Equal(payer.f.Profile.Balance-8_00), "the second transfer credited back on the payer's device")
				Expect(done(payer.tm.ReclaimOnline(ctx, "SUITE-X2", terminal.Verification{})).Reason).To(ContainSubstring("done once"), "reclaimed again")
				Expect(payer.f.snapshot(ctx).Balance).To(Equal(payer.f.Profile.Balance-8_00), "credited back once")
				Expect(s.issuerBalance(ctx, payer)).To(Equal(payer.f.Profile.Balance - 8_00))
				Expect(s.conserved(ctx).InFlight).To(Equal(int64(0)))
			}, SpecTimeout(90*time.Second))
	})
}
