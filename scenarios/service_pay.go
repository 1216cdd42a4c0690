package scenarios

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
	"github.com/spdlab/spdlab/rigs/dut"
)

var paymentKinds = []spd.PaymentKind{spd.KindBalance, spd.KindAccount, spd.KindUse}

func defineServicePayments(d Driver) {
	Describe("Payments and settlement", func() {
		It("MUST pay a scanned merchant code online with each kind, confirmed by the backend in real time",
			Case("TC-SVC-001", Positive, "SPD-PAY-7", "SPD-PAY-5", "SPD-LED-5", "C2", "C5", "C29", "C30", "C31", "C48"), func(ctx SpecContext) {
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				for _, k := range paymentKinds {
					o := done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("12.50", "ORDER-"+k.String())), Kind: k, Network: terminal.OnlineOnly}))
					Expect(o.Online).To(BeTrue(), "confirmed online: %s", o)
					Expect(o.Authorisation).NotTo(BeNil())
					Expect(o.Authorisation.Status).To(Equal(backend.Approved))
					Expect(o.Result.Info().PayeeNonce).To(Equal([]byte("ORDER-"+k.String())), "the order reference is bound into the result")
					Expect(o.Payee).To(Equal("MERCHANT-0042"))
				}
				Expect(c.user.Outcomes()).To(HaveLen(3), "every result is reported to the user (C29)")
				Expect(s.issuerBalance(ctx, c)).To(Equal(c.f.Profile.Balance - 2*12_50))
				snap := c.f.snapshot(ctx)
				Expect(snap.Ledger).To(Equal(0), "the online records were cleared by the backend's acknowledgement")
				Expect(snap.Balance).To(Equal(c.f.Profile.Balance - 12_50))
				Expect(s.conserved(ctx).RecordsSettled).To(Equal(int64(3)))
			}, SpecTimeout(60*time.Second))

		It("MUST pay offline with each kind and settle later, each record once",
			Case("TC-SVC-002", Positive, "SPD-LED-1", "SPD-LED-4", "SPD-LED-5", "C4", "C7", "C47", "C49"), func(ctx SpecContext) {
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				s.net.Down.Store(true)
				for _, k := range paymentKinds {
					o := done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("5.00", "OFF-1")), Kind: k}))
					Expect(o.Pending).To(BeTrue(), "pending: %s", o)
					Expect(o.Online).To(BeFalse())
				}
				notDone(c.tm.Settle(ctx), "stay on the device")
				Expect(c.f.snapshot(ctx).Ledger).To(Equal(3))
				s.net.Down.Store(false)
				st := done(c.tm.Settle(ctx))
				Expect(st.Settled).To(Equal(3))
				Expect(st.Left).To(Equal(0))
				Expect(st.Settlement.Verify(&d.Issuer().HostKey().PublicKey)).To(Succeed(), "the acknowledgement is signed by the host")
				st = done(c.tm.Settle(ctx))
				Expect(st.Settled + st.AlreadySettled).To(Equal(0))
				Expect(s.issuerBalance(ctx, c)).To(Equal(c.f.Profile.Balance - 2*5_00))
				Expect(s.conserved(ctx).RecordsSettled).To(Equal(int64(3)))
			}, SpecTimeout(60*time.Second))

		It("MUST settle a record handed over twice, by two terminals, exactly once",
			Case("TC-SVC-003", Positive, "SPD-LED-5", "SPD-LED-4", "C4", "C7"), func(ctx SpecContext) {
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				s.net.Down.Store(true)
				done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("8.00", "TWICE")), Kind: spd.KindBalance}))
				s.net.Down.Store(false)
				recs, err := c.f.Client.PendingRecords(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(recs).To(HaveLen(1))
				// A second terminal hands the same record to the backend
				// first, and its acknowledgement is lost.
				ack, err := s.admin.Settle(ctx, backend.SettlementBatch{BatchID: "OTHER-1", Records: [][]byte{recs[0].Marshal()}})
				Expect(err).NotTo(HaveOccurred())
				Expect(ack.Entries[0].Status).To(Equal(backend.Settled))
				st := done(c.tm.Settle(ctx))
				Expect(st.AlreadySettled).To(Equal(1))
				Expect(st.Left).To(Equal(0))
				Expect(s.issuerBalance(ctx, c)).To(Equal(c.f.Profile.Balance - 8_00))
				Expect(s.conserved(ctx).RecordsSettled).To(Equal(int64(1)))
			}, SpecTimeout(60*time.Second))

		It("MUST read a merchant code from its image and show the device's code for the merchant's scanner",
			Case("TC-SVC-004", Positive, "SPD-PAY-7", "SPD-MED-1", "SPD-MED-5", "C5", "C8", "C9", "C12", "C48", "C50"), func(ctx SpecContext) {
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				png, err := medium.RenderPNG(merchantOrder("3.20", "IMG-7"), medium.QR, 4)
				Expect(err).NotTo(HaveOccurred())
				order, err := terminal.ScanOrderPNG(bytes.NewReader(png))
				Expect(err).NotTo(HaveOccurred())
				Expect(order.Amount).To(Equal(int64(3_20)))
				o := done(c.tm.Pay(ctx, terminal.Payment{Order: order, Kind: spd.KindBalance}))
				Expect(o.Result.Info().PayeeNonce).To(Equal([]byte("IMG-7")))

				done(c.tm.ShowMedium(ctx, []byte("NONCE-42"), terminal.Verification{}))
				codes := c.user.Codes()
				Expect(codes).NotTo(BeEmpty())
				text, _, err := medium.DecodePNG(bytes.NewReader(shownPNG(codes[len(codes)-1])))
				Expect(err).NotTo(HaveOccurred())
				m, err := terminal.ReadMedium(text, &d.Issuer().CA.PublicKey, s.clock.Now())
				Expect(err).NotTo(HaveOccurred(), "the merchant's scanner reads and verifies it")
				Expect(m.Info.PayeeNonce).To(Equal([]byte("NONCE-42")))
				Expect(m.Info.Token).To(Equal(c.f.Profile.AccountToken))
				Expect(text).NotTo(ContainSubstring(string(c.f.Profile.Account)))
			}, SpecTimeout(60*time.Second))

		It("MUST issue a token with domain controls, register it in the vault, and pay a merchant with it once",
			Case("TC-SVC-005", Positive, Negative, "SPD-TOK-1", "SPD-TOK-2", "C20", "C22", "C23", "C24", "C25", "C26", "C27"), func(ctx SpecContext) {
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				tok := done(c.tm.IssueToken(ctx, terminal.TokenOrder{Expiry: s.clock.Now().Add(time.Hour),
					Controls: medium.TokenControls{MaxTransactions: 1, MaxAmount: 20_00, Channels: medium.ChannelInStore}}))
				codes := c.user.Codes()
				text, _, err := medium.DecodePNG(bytes.NewReader(shownPNG(codes[len(codes)-1])))
				Expect(err).NotTo(HaveOccurred())
				m, err := terminal.ReadMedium(text, &d.Issuer().CA.PublicKey, s.clock.Now())
				Expect(err).NotTo(HaveOccurred())
				Expect(m.Info.Token).To(Equal(tok.Token))
				vault, err := s.admin.Token(ctx, fmt.Sprintf("%X", tok.Token))
				Expect(err).NotTo(HaveOccurred())
				Expect(vault.MaxUses).To(Equal(int64(1)))
				Expect(vault.MaxAmount).To(Equal(int64(20_00)))

				pay := terminal.Payment{Order: scan(merchantOrder("15.00", "TOK-1")), Kind: spd.KindAccount, Token: m.Info.Token, Network: terminal.OnlineOnly}
				o := done(c.tm.Pay(ctx, pay))
				Expect(o.Online).To(BeTrue())
				Expect(o.Token).To(Equal(tok.Token), "the token stands for the account")
				Expect(o.Authorisation.Account).To(Equal(backend.MaskAccount(string(c.f.Profile.Account))), "the backend detokenises and shows the account masked")
				// The vault has counted its one use: online, the terminal
				// asks it and pays nothing.
				before := c.f.state(ctx)
				notDone(c.tm.Pay(ctx, pay), "vault")
				Expect(c.f.state(ctx)).To(Equal(before), "a refused token pays nothing")
				// Offline the device is asked, and its own count declines.
				pay.Network = terminal.OfflineOnly
				c.f.declinedThrough(c.tm.Pay(ctx, pay), reasonTokenUsedUp)
				Expect(c.f.state(ctx)).To(Equal(before), "the device's decline changes nothing")
				vault, err = s.admin.Token(ctx, fmt.Sprintf("%X", tok.Token))
				Expect(err).NotTo(HaveOccurred())
				Expect(vault.Uses).To(Equal(int64(1)))
				s.conserved(ctx)
			}, SpecTimeout(60*time.Second))

		It("MUST adjust the amount by the tier the backend pushes and by the location the user gives",
			Case("TC-SVC-006", Positive, "SPD-ADJ-1", "SPD-UPD-1", "SPD-VER-1", "C3", "C14", "C15", "C18"), func(ctx SpecContext) {
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				tier := uint8(2)
				_, err := s.admin.QueueParameter(ctx, c.id(), backend.ParameterUpdate{Tier: &tier})
				Expect(err).NotTo(HaveOccurred())
				sy := done(c.tm.Sync(ctx))
				Expect(sy.Applied).To(Equal(1))
				Expect(done(c.tm.Sync(ctx)).Applied).To(Equal(0), "an update applies once")
				v := terminal.Verification{Location: true}
				o := done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("10.00", "ADJ-1")), Kind: spd.KindBalance, Verify: v}))
				Expect(o.Amount).To(Equal(int64(8_00)), "tier 2: 20%% off at home")
				c.user.Region = Abroad
				o = done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("10.00", "ADJ-2")), Kind: spd.KindBalance, Verify: v}))
				Expect(o.Amount).To(Equal(int64(8_40)), "tier 2, then +5%% abroad")
				Expect(s.issuerBalance(ctx, c)).To(Equal(c.f.Profile.Balance - 16_40))
				s.conserved(ctx)
			}, SpecTimeout(60*time.Second))

		It("MUST start a service offline and finish it online",
			Case("TC-SVC-007", Positive, "SPD-LED-5", "SPD-PAY-5", "C4", "C7", "C30"), func(ctx SpecContext) {
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				s.net.Down.Store(true)
				off := done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("7.00", "PH-1")), Kind: spd.KindBalance}))
				Expect(off.Pending).To(BeTrue())
				s.net.Down.Store(false)
				on := done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("3.00", "PH-2")), Kind: spd.KindBalance}))
				Expect(on.Online).To(BeTrue())
				Expect(c.f.snapshot(ctx).Ledger).To(Equal(1), "the offline record waits for settlement")
				st := done(c.tm.Settle(ctx))
				Expect(st.Settled).To(Equal(1))
				Expect(s.issuerBalance(ctx, c)).To(Equal(c.f.Profile.Balance - 10_00))
				s.conserved(ctx)
			}, SpecTimeout(60*time.Second))

		It("MUST settle after the terminal restarts between payment and settlement",
			Case("TC-SVC-008", Positive, "SPD-LED-5", "SPD-STO-1", "C4", "C7", "C42"), func(ctx SpecContext) {
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				s.net.Down.Store(true)
				done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("6.00", "RS-1")), Kind: spd.KindBalance}))
				s.net.Down.Store(false)
				restarted := s.terminal(ctx, d, c.f.Client.Link, c.user)
				st := done(restarted.Settle(ctx))
				Expect(st.Settled).To(Equal(1))
				Expect(st.Left).To(Equal(0))
				Expect(s.issuerBalance(ctx, c)).To(Equal(c.f.Profile.Balance - 6_00))
				s.conserved(ctx)
			}, SpecTimeout(60*time.Second))

		It("MUST settle after the SPD restarts between payment and settlement",
			Case("TC-SVC-009", Positive, "SPD-LED-5", "SPD-STO-1", "SPD-STO-3", "C4", "C7", "C42"), func(ctx SpecContext) {
				s := newServiceLab(d)
				dd, ok := d.(*DUTDriver)
				if !ok || !dd.Emulated() {
					// A sample restarts by losing power: the rig cycles it.
					need(d, PowerCycle)
					f := personalised(ctx, d, nil)
					p := f.Profile
					_, err := s.admin.Register(ctx, terminal.Enrolment(p, phoneOf(p)))
					Expect(err).NotTo(HaveOccurred())
					u := &terminal.ScriptedUser{PINs: []string{p.PIN}, Agree: true}
					tm := s.terminal(ctx, d, f.Client.Link, u)
					s.net.Down.Store(true)
					done(tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("4.50", "SPD-RS")), Kind: spd.KindBalance}))
					s.net.Down.Store(false)
					reconnect(ctx, f)
					tm2 := s.terminal(ctx, d, f.Client.Link, u)
					st := done(tm2.Settle(ctx))
					Expect(st.Settled).To(Equal(1))
					Expect(st.Left).To(Equal(0))
					dev, err := s.admin.Device(ctx, spd.DeviceIDString(p.DeviceID))
					Expect(err).NotTo(HaveOccurred())
					Expect(dev.Balance).To(Equal(p.Balance - 4_50))
					s.conserved(ctx)
					return
				}
				dir, err := os.MkdirTemp("", "spdlab-spd-")
				Expect(err).NotTo(HaveOccurred())
				DeferCleanup(os.RemoveAll, dir)
				opt := dd.Options
				opt.StatePath = filepath.Join(dir, "spd.state")
				first, err := dut.Open(ctx, dd.Specs[0], opt)
				Expect(err).NotTo(HaveOccurred())
				p, err := d.Issuer().Personalise(ctx, spd.NewClient(first.Link), TestProfile())
				Expect(err).NotTo(HaveOccurred())
				_, err = s.admin.Register(ctx, terminal.Enrolment(p, phoneOf(p)))
				Expect(err).NotTo(HaveOccurred())
				u := &terminal.ScriptedUser{PINs: []string{p.PIN}, Agree: true}
				tm := s.terminal(ctx, d, first.Link, u)
				s.net.Down.Store(true)
				done(tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("4.50", "SPD-RS")), Kind: spd.KindBalance}))
				s.net.Down.Store(false)
				Expect(first.Close()).To(Succeed(), "the SPD is removed")

				second, err := dut.Open(ctx, dd.Specs[0], opt)
				Expect(err).NotTo(HaveOccurred())
				DeferCleanup(second.Close)
				tm2 := s.terminal(ctx, d, second.Link, u)
				st := done(tm2.Settle(ctx))
				Expect(st.Settled).To(Equal(1))
				Expect(st.Left).To(Equal(0))
				dev, err := s.admin.Device(ctx, spd.DeviceIDString(p.DeviceID))
				Expect(err).NotTo(HaveOccurred())
				Expect(dev.Balance).To(Equal(p.Balance - 4_50))
				bal, err := tm2.Card().Balance(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(bal).To(Equal(p.Balance - 4_50))
				s.conserved(ctx)
			}, SpecTimeout(90*time.Second))

		It("MUST credit the payee each settled record names, once, and bill account payments under the designated account",
			Case("TC-SVC-050", Positive, "SPD-LED-5", "SPD-PAY-7", "SPD-PAY-8", "C4", "C5", "C47", "C49"), func(ctx SpecContext) {
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				s.net.Down.Store(true)
				var paid, billed int64
				for _, k := range paymentKinds {
					o := done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("4.00", "PAYEE-1")), Kind: k}))
					Expect(o.Payee).To(Equal("MERCHANT-0042"))
					paid += o.Amount
					if k == spd.KindAccount {
						billed += o.Amount
					}
				}
				s.net.Down.Store(false)
				Expect(done(c.tm.Settle(ctx)).Settled).To(Equal(3))
				Expect(done(c.tm.Settle(ctx)).Settled).To(Equal(0))
				p, err := s.admin.Payee(ctx, "MERCHANT-0042")
				Expect(err).NotTo(HaveOccurred(), "the merchant has an account at the issuer")
				Expect(p.Balance).To(Equal(paid), "the payee is paid what the records it is named in carry, once")
				Expect(p.Records).To(Equal(int64(3)))
				bill, err := s.admin.Bill(ctx, c.id(), s.clock.Now().UTC().Format("2006-01"))
				Expect(err).NotTo(HaveOccurred())
				Expect(bill.Lines).To(HaveLen(1), "the account payment is billed")
				Expect(bill.Lines[0].Payee).To(Equal("MERCHANT-0042"))
				Expect(bill.Total).To(Equal(billed))
				Expect(bill.Account).NotTo(Equal(string(c.f.Profile.Account)), "the bill shows the account masked")
				a := s.conserved(ctx)
				Expect(a.PayeesPaid).To(Equal(a.Settled))
				Expect(a.Billed).To(Equal(billed))
			}, SpecTimeout(60*time.Second))
	})
}
