package scenarios

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
)

// The merchant's payee account and challenge the presented-code cases use.
const (
	codePayee     = "MERCHANT-0042"
	codeChallenge = "7F3A90C1"
)

// presentRequest is a balance payment of amount for codePayee, bound to
// the challenge.
func presentRequest(amount int64, challenge string) spd.PresentRequest {
	r := spd.PresentRequest{Kind: spd.KindBalance, Amount: amount, Currency: 978, Time: Clock, Region: Home,
		Payee: []byte(codePayee)}
	if challenge != "" {
		r.Challenge = []byte(challenge)
	}
	return r
}

// checkCode checks a payment code with the suite's own reading of SPEC.md
// 4.9: the certificate against the issuer CA names the device's key, the
// result and the record verify with it and describe one payment.
func checkCode(code spd.PaymentCode, ca *ecdsa.PublicKey, pub *ecdsa.PublicKey) {
	GinkgoHelper()
	Expect(code.Record).NotTo(BeNil(), "a successful code holds the payment's record")
	cert, err := x509.ParseCertificate(code.Certificate)
	Expect(err).NotTo(HaveOccurred(), "the code's certificate (DF11)")
	Expect(cert.CheckSignatureFrom(&x509.Certificate{PublicKey: ca, PublicKeyAlgorithm: x509.ECDSA,
		BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign})).To(Succeed(), "the issuer CA signed the code's certificate")
	Expect(cert.PublicKey.(*ecdsa.PublicKey).Equal(pub)).To(BeTrue(), "the code's certificate certifies the device's key")
	Expect(code.Result.Verify(pub)).To(Succeed(), "the result medium verifies with the device key")
	Expect(code.Record.Verify(pub)).To(Succeed(), "the record verifies with the device key (SPDLAB-PR1)")
	in, rec := code.Result.Info(), code.Record
	Expect(in.Kind).To(Equal(medium.KindPaymentResult))
	Expect(rec.DeviceID).To(Equal(in.DeviceID))
	Expect(rec.ATC).To(Equal(in.ATC))
	Expect(rec.Amount).To(Equal(in.Amount))
	Expect(rec.Currency).To(Equal(in.Currency))
	Expect(rec.Token).To(Equal(in.Token))
	Expect(rec.Payee).To(Equal(in.PayeeID))
	Expect(rec.PayeeNonce).To(Equal(in.PayeeNonce))
	Expect(rec.Time.Equal(in.Issued)).To(BeTrue(), "record time %s, result issued %s", rec.Time, in.Issued)
	Expect(rec.Mode).To(Equal(spd.ModeOffline), "a presented code is an offline payment of the device")
}

func definePresentedCodes(d Driver) {
	Describe("Payment codes presented to a merchant (SPEC.md 4.9)", func() {
		It("MUST commit the payment before the code exists and answer a one-time code bound to its ATC, the challenge and a short life",
			Case("TC-PRC-001", Positive, "SPD-PRC-1", "SPD-PRC-2", "SPD-PAY-4", "C2", "C7", "C8", "C9", "C11", "C20", "C24", "C46", "C50"),
			func(ctx SpecContext) {
				need(d, PayBalance)
				f := personalised(ctx, d, nil)
				f.login(ctx)
				before := f.state(ctx)
				code, err := f.Client.PresentCode(ctx, presentRequest(12_50, codeChallenge))
				Expect(err).NotTo(HaveOccurred())
				checkCode(code, &d.Issuer().CA.PublicKey, f.Pub)
				after := f.state(ctx)
				want := before.Snapshot
				want.ATC++
				want.Ledger++
				want.Pending += 12_50
				want.Balance -= 12_50
				Expect(after.Snapshot).To(Equal(want), asserts("C2", asserts("C7", "the code's payment, offline, is deducted from the stored balance and committed: balance, ATC, ledger, pending")))
				in := code.Result.Info()
				Expect(in.ATC).To(Equal(after.ATC), "the code carries the new ATC")
				Expect(in.Balance).To(Equal(after.Balance))
				Expect(in.PayeeNonce).To(Equal([]byte(codeChallenge)), "the code binds the merchant's challenge")
				Expect(string(in.PayeeID)).To(Equal(codePayee))
				Expect(in.Expiry).To(Equal(Clock.Add(time.Minute)), "default life: 9A + 60 s")
				Expect(in.Token).To(Equal(f.Profile.AccountToken), asserts("C20", "the dynamically generated code carries the token, never the account"))
				Expect(code.Marshal()).NotTo(ContainSubstring(string(f.Profile.Account)))
				// The record in the code is the ledger's (READ PENDING).
				last := after.Records[len(after.Records)-1]
				mine := *code.Record
				mine.Signature = nil
				Expect(mine).To(Equal(last), asserts("C46", "the code's record is the ledger's record of the payment"))

				// A second code is another payment: a new ATC; a time-based
				// code (no challenge) with the longest life.
				r := presentRequest(1_00, "")
				r.Expiry = Clock.Add(5 * time.Minute)
				second, err := f.Client.PresentCode(ctx, r)
				Expect(err).NotTo(HaveOccurred())
				checkCode(second, &d.Issuer().CA.PublicKey, f.Pub)
				Expect(second.Result.Info().ATC).To(Equal(in.ATC+1), "every code has its own ATC")
				Expect(second.Result.Info().PayeeNonce).To(BeNil(), "a time-based code has no challenge")
				Expect(second.Result.Info().Expiry).To(Equal(Clock.Add(5 * time.Minute)))
			}, SpecTimeout(60*time.Second))

		It("MUST refuse a code life beyond 300 s, a P2 other than 00 and an unverified cardholder, and decline within the offline limits, changing nothing",
			Case("TC-PRC-002", Negative, "SPD-PRC-1", "SPD-PRC-2", "SPD-PIN-1", "SPD-LED-3", "C7", "C8", "C32"),
			func(ctx SpecContext) {
				need(d, PayBalance)
				f := personalised(ctx, d, nil)
				f.login(ctx)
				long := presentRequest(1_00, codeChallenge)
				long.Expiry = Clock.Add(5*time.Minute + time.Second)
				f.refuses(ctx, spd.PresentCode(long), apdu.SW(0x6A80), "a code life of 301 s")
				none := presentRequest(1_00, codeChallenge)
				none.Expiry = Clock
				f.refuses(ctx, spd.PresentCode(none), apdu.SW(0x6A80), "a code life of 0 s")
				p2 := spd.PresentCode(presentRequest(1_00, codeChallenge))
				p2.P2 = 0x01
				f.refuses(ctx, p2, apdu.SW(0x6A86), "PRESENT CODE with P2 01")
				// Over the offline pending limit (30.00): a signed decline.
				f.declinesCode(ctx, presentRequest(30_01, codeChallenge), reasonPendingLimit)
				// Too long since the last sync (decline 13): the offline limits
				// are those of PAY P2 01, every one of them.
				stale := presentRequest(1_00, codeChallenge)
				stale.Time = Clock.Add(f.Profile.Limits.MaxOfflineAge + time.Second)
				f.declinesCode(ctx, stale, reasonSyncTooOld)
				// A new session without VERIFY.
				_, err := f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				f.refuses(ctx, spd.PresentCode(presentRequest(1_00, codeChallenge)), apdu.SW(0x6982), "PRESENT CODE unverified")
			}, SpecTimeout(60*time.Second))

		It("MUST make a code of the account kind as PAY P2 01 of that kind: pending under the account token, the balance untouched",
			Case("TC-PRC-005", Positive, "SPD-PRC-1", "SPD-PAY-2", "C2", "C4", "C8", "C21", "C50"),
			func(ctx SpecContext) {
				need(d, PayAccount)
				f := personalised(ctx, d, nil)
				f.login(ctx)
				r := presentRequest(7_00, codeChallenge)
				r.Kind = spd.KindAccount
				before := f.state(ctx)
				code, err := f.Client.PresentCode(ctx, r)
				Expect(err).NotTo(HaveOccurred())
				checkCode(code, &d.Issuer().CA.PublicKey, f.Pub)
				after := f.state(ctx)
				want := before.Snapshot
				want.ATC++
				want.Ledger++
				want.Pending += 7_00
				Expect(after.Snapshot).To(Equal(want), asserts("C4", "the code's account payment is pending under the account, the stored balance untouched"))
				Expect(code.Record.Kind).To(Equal(spd.KindAccount), "the code's record is of the account kind")
				Expect(code.Record.Amount).To(Equal(int64(7_00)))
				Expect(code.Record.Token).To(Equal(f.Profile.AccountToken))
				in := code.Result.Info()
				Expect(in.Balance).To(Equal(after.Balance), "the code shows the balance, untouched")
				Expect(in.Pending).To(Equal(after.Pending))
				last := after.Records[len(after.Records)-1]
				mine := *code.Record
				mine.Signature = nil
				Expect(mine).To(Equal(last), "the code's record is the ledger's record of the payment")
			}, SpecTimeout(60*time.Second))

		It("MUST enforce a token's controls on a code paid under it, on the in-store channel, and count the code against it",
			Case("TC-PRC-006", Positive, Negative, "SPD-PRC-1", "SPD-TOK-2", "C8", "C20", "C22", "C23", "C50"),
			func(ctx SpecContext) {
				need(d, PayBalance)
				f := personalised(ctx, d, nil)
				f.login(ctx)
				// The on-line token expires before the other is made, so that
				// a device with room for one live token (SPEC.md section 11)
				// runs the case.
				online := f.newToken(ctx, Clock, Clock.Add(time.Minute), medium.TokenControls{MaxTransactions: 5, MaxAmount: 5_00, Channels: medium.ChannelOnline})
				r := presentRequest(1_00, codeChallenge)
				r.Token = online
				f.declinesCode(ctx, r, reasonTokenChannel)
				at := Clock.Add(2 * time.Minute)
				once := f.newToken(ctx, at, at.Add(time.Hour), medium.TokenControls{MaxTransactions: 1, MaxAmount: 5_00, Channels: medium.ChannelInStore})
				r.Token = once
				r.Time = at.Add(time.Hour + time.Second)
				f.declinesCode(ctx, r, reasonTokenExpired)
				r.Time, r.Amount = at, 5_01
				f.declinesCode(ctx, r, reasonTokenAmount)
				r.Amount = 1_00
				code, err := f.Client.PresentCode(ctx, r)
				Expect(err).NotTo(HaveOccurred())
				checkCode(code, &d.Issuer().CA.PublicKey, f.Pub)
				Expect(code.Record.Token).To(Equal(once), asserts("C20", "the code carries the token paid under"))
				f.declinesCode(ctx, r, reasonTokenUsedUp)
			}, SpecTimeout(60*time.Second))

		It("MUST let an on-line merchant charge a code once and refuse it replayed, photographed for another merchant, or for another challenge",
			Case("TC-PRC-003", Negative, "SPD-PRC-3", "SPD-PRC-2", "C8", "C9", "C30", "C31", "C50"),
			func(ctx SpecContext) {
				need(d, PayBalance)
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				lane := s.merchant(d, codePayee, "LANE1", true)
				challenge := lane.Challenge()
				code, o := c.tm.PresentCode(ctx, terminal.Presented{Amount: 8_00, Payee: codePayee, Challenge: challenge}, terminal.Verification{PIN: true})
				done(o)
				before := s.issuerBalance(ctx, c)

				// Another merchant that photographed it, and the right
				// merchant with another challenge on its display.
				thief := s.merchant(d, "MERCHANT-0666", "THIEF", true)
				_, err := thief.Scan(ctx, code.Text(), challenge)
				Expect(errors.Is(err, terminal.ErrCodeNotForUs)).To(BeTrue(), "another payee: %v", err)
				_, err = lane.Scan(ctx, code.Text(), []byte("00000000"))
				Expect(errors.Is(err, terminal.ErrCodeNotForUs)).To(BeTrue(), "another challenge: %v", err)
				Expect(s.issuerBalance(ctx, c)).To(Equal(before), "a refused code moves nothing")

				ch, err := lane.Scan(ctx, code.Text(), challenge)
				Expect(err).NotTo(HaveOccurred())
				Expect(ch.Online).To(BeTrue(), asserts("C9", "the merchant's reader parsed the code with the issuer's rules and charged it on-line"))
				Expect(ch.Authorisation.Status).To(Equal(backend.Approved), asserts("C30", "the backend's result reaches the merchant in real time"))
				Expect(ch.Amount).To(Equal(int64(8_00)))
				Expect(s.issuerBalance(ctx, c)).To(Equal(before-8_00), asserts("C8", "the code the SPD showed was read by an external reader and paid"))
				Expect(s.payeeCredit(ctx, codePayee)).To(Equal([2]int64{8_00, 1}), asserts("C50", "the merchant that scanned the shown code is paid, once"))

				// The same code again, at the same lane and at a second lane
				// of the same merchant: the backend has seen it.
				_, err = lane.Scan(ctx, code.Text(), challenge)
				Expect(errors.Is(err, terminal.ErrCodeReplayed)).To(BeTrue(), asserts("C31", "a replayed code fails: %v"), err)
				lane2 := s.merchant(d, codePayee, "LANE2", true)
				_, err = lane2.Scan(ctx, code.Text(), challenge)
				Expect(errors.Is(err, terminal.ErrCodeReplayed)).To(BeTrue(), "replayed at another lane: %v", err)
				Expect(s.issuerBalance(ctx, c)).To(Equal(before-8_00), "a replay charges nothing")
				Expect(s.payeeCredit(ctx, codePayee)).To(Equal([2]int64{8_00, 1}), "a replay credits nothing")
				Expect(s.payeeCredit(ctx, "MERCHANT-0666")).To(Equal([2]int64{0, 0}), "the photographing merchant is paid nothing")

				// Past its life.
				late, o := c.tm.PresentCode(ctx, terminal.Presented{Amount: 1_00, Payee: codePayee, Challenge: challenge}, terminal.Verification{PIN: true})
				done(o)
				s.clock.Advance(time.Minute + time.Second)
				_, err = lane.Scan(ctx, late.Text(), challenge)
				Expect(errors.Is(err, terminal.ErrCodeExpired)).To(BeTrue(), "a code past its life: %v", err)
				caseDeclined = true
				s.conserved(ctx)
			}, SpecTimeout(90*time.Second))

		It("MUST let off-line merchant lanes keep a code and settle it later, once: a replay at a second lane is caught at settlement",
			Case("TC-PRC-004", Positive, "SPD-PRC-3", "SPD-PRC-1", "SPD-LED-5", "C4", "C8", "C9", "C46", "C47", "C49", "C50"),
			func(ctx SpecContext) {
				need(d, PayBalance)
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				code, o := c.tm.PresentCode(ctx, terminal.Presented{Amount: 6_00, Payee: codePayee}, terminal.Verification{PIN: true})
				done(o)
				// The storage unit keeps the record the code hands over (C46).
				stored, err := c.f.Client.PendingRecords(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(stored).To(HaveLen(1))
				Expect(stored[0].Body()).To(Equal(code.Record.Body()), asserts("C46", "the storage unit keeps the very record the code hands over"))
				before := s.issuerBalance(ctx, c)
				lane1 := s.merchant(d, codePayee, "LANE1", false)
				lane2 := s.merchant(d, codePayee, "LANE2", false)
				first, err := lane1.Scan(ctx, code.Text(), nil)
				Expect(err).NotTo(HaveOccurred())
				Expect(first.Online).To(BeFalse(), "an off-line lane keeps the code")
				_, err = lane1.Scan(ctx, code.Text(), nil)
				Expect(errors.Is(err, terminal.ErrCodeReplayed)).To(BeTrue(), "the lane refuses a code it charged: %v", err)
				// A photographed copy at a second lane, off-line: it cannot
				// know, and keeps it too.
				_, err = lane2.Scan(ctx, code.Text(), nil)
				Expect(err).NotTo(HaveOccurred())
				Expect(s.issuerBalance(ctx, c)).To(Equal(before), asserts("C47", "payment and settlement are separate: nothing moves at the issuer before settlement"))

				lane1.Connect(s.merchantBackend())
				lane2.Connect(s.merchantBackend())
				got, err := lane1.Settle(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(got.Paid).To(HaveLen(1), "the first lane's settlement pays the code")
				Expect(got.Replays).To(BeEmpty())
				Expect(s.issuerBalance(ctx, c)).To(Equal(before-6_00), asserts("C4", asserts("C49", "settlement deducts the pending amount from the account's stored value, once")))
				Expect(s.payeeCredit(ctx, codePayee)).To(Equal([2]int64{6_00, 1}), "settlement credits the merchant")
				got, err = lane2.Settle(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(got.Paid).To(BeEmpty(), "the replay is not paid")
				Expect(got.Replays).To(HaveLen(1), "the replay is caught at settlement")
				Expect(got.Replays[0].ATC).To(Equal(first.ATC))
				Expect(s.issuerBalance(ctx, c)).To(Equal(before-6_00), "a replay caught at settlement charges nothing")
				Expect(s.payeeCredit(ctx, codePayee)).To(Equal([2]int64{6_00, 1}), "and credits nothing")

				// The device's own terminal hands its ledger over later: the
				// record settles as already settled and leaves the ledger.
				st := c.tm.Settle(ctx)
				done(st)
				Expect(st.AlreadySettled).To(Equal(1))
				n, err := c.f.Client.PendingCount(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(n).To(Equal(0), asserts("C46", "the device's ledger no longer holds the record after settlement"))
				s.conserved(ctx)
			}, SpecTimeout(90*time.Second))
	})
}

// merchantBackend is a backend client with the terminals' credential,
// through the lab's network.
func (s *serviceLab) merchantBackend() *backend.Client {
	GinkgoHelper()
	be, err := backend.NewClient(s.url, nil)
	Expect(err).NotTo(HaveOccurred())
	be.Credential = s.terminalToken
	return be
}

// payeeCredit is what settlement credited payee: its balance and the
// number of records, {0, 0} for a payee paid nothing (404 not_found).
func (s *serviceLab) payeeCredit(ctx context.Context, payee string) [2]int64 {
	GinkgoHelper()
	p, err := s.admin.Payee(ctx, payee)
	var ae *backend.APIError
	if errors.As(err, &ae) && ae.Code == backend.CodeNotFound {
		return [2]int64{0, 0}
	}
	Expect(err).NotTo(HaveOccurred())
	return [2]int64{p.Balance, p.Records}
}

// merchant is a merchant lane for payee; online lanes reach the backend.
func (s *serviceLab) merchant(d Driver, payee, name string, online bool) *terminal.Merchant {
	GinkgoHelper()
	cfg := terminal.MerchantConfig{Payee: payee, IssuerCA: &d.Issuer().CA.PublicKey, Clock: s.clock.Now, Name: name}
	if online {
		cfg.Backend = s.merchantBackend()
	}
	m, err := terminal.NewMerchant(cfg)
	Expect(err).NotTo(HaveOccurred())
	return m
}
