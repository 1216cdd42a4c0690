package scenarios

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
)

// Cases that assert, each in its own terms, claims other cases only
// touch on: the account bound to the SPD (C21), an identification serving
// as the token (C26) overlaid on everything the SPD outputs (C27), the
// stored value as digital currency (C11), and the kinds of issuer (C41).

func defineClaims(d Driver) {
	Describe("Claims asserted in their own terms", func() {
		It("MUST keep the designated account bound to its SPD, paid under the SPD's own token, which alone leaves the device",
			Case("TC-CLM-001", Positive, Negative, "SPD-PAY-2", "SPD-MED-3", "C21", "C24", "C26", "C27"),
			func(ctx SpecContext) {
				need(d, PayAccount)
				s := newServiceLab(d)
				a := s.customer(ctx, d, nil)
				other := TestProfile()
				other.Account = []byte("FR7630006000011234567890189")
				b := s.customer(ctx, d, &other)

				// C21: the issuer's books bind each designated account to
				// its SPD, and an account payment is billed to that one.
				devA, err := s.admin.Device(ctx, a.id())
				Expect(err).NotTo(HaveOccurred())
				Expect(devA.Account).To(Equal(masked(a.f.Profile.Account)), "device A's designated account at the issuer (masked)")
				devB, err := s.admin.Device(ctx, b.id())
				Expect(err).NotTo(HaveOccurred())
				Expect(devB.Account).To(Equal(masked(other.Account)), "device B's designated account at the issuer (masked)")
				held, err := a.f.Client.Balance(ctx)
				Expect(err).NotTo(HaveOccurred())
				o := done(a.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("7.00", "CLM-1")), Kind: spd.KindAccount}))
				Expect(a.f.Client.Balance(ctx)).To(Equal(held), "an account payment leaves the SPD's stored value alone: the account pays")
				period := s.clock.Now().UTC().Format("2006-01")
				billA, err := s.admin.Bill(ctx, a.id(), period)
				Expect(err).NotTo(HaveOccurred())
				Expect(billA.Total).To(Equal(int64(7_00)), asserts("C21", "the account payment is billed to the account bound to device A"))
				Expect(billA.Account).To(Equal(masked(a.f.Profile.Account)), "the bill names A's account, masked")
				billB, err := s.admin.Bill(ctx, b.id(), period)
				Expect(err).NotTo(HaveOccurred())
				Expect(billB.Total).To(BeZero(), "nothing is billed to the account bound to device B")

				// C26: the SPD's identification serves as the token: the
				// token the payment carried is A's account token, and the
				// vault resolves it to device A and no other.
				Expect(o.Token).To(Equal(a.f.Profile.AccountToken), asserts("C24", "the payment ran under A's account token in place of the account"))
				tokA, err := s.admin.Token(ctx, strings.ToUpper(hex.EncodeToString(a.f.Profile.AccountToken)))
				Expect(err).NotTo(HaveOccurred())
				Expect(tokA.DeviceID).To(Equal(a.id()), asserts("C26", "the SPD's identification serves as the token: the vault binds A's token to device A alone"))
				Expect(bytes.Equal(a.f.Profile.AccountToken, b.f.Profile.AccountToken)).To(BeFalse(), "each SPD has its own token")

				// C27: the token is overlaid on every output: result,
				// pending record and medium carry it, and no answer of the
				// device carries the account.
				done(a.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("2.00", "CLM-3")), Kind: spd.KindAccount, Network: terminal.OfflineOnly}))
				rec := a.f.state(ctx).Records
				Expect(rec).NotTo(BeEmpty())
				Expect(rec[len(rec)-1].Token).To(Equal(a.f.Profile.AccountToken), asserts("C27", "the token overlays the account in the pending record"))
				if d.Profile().Has(Media) {
					env := a.f.medium(ctx)
					m, err := medium.Parse(env)
					Expect(err).NotTo(HaveOccurred())
					Expect(m.Info.Token).To(Equal(a.f.Profile.AccountToken), "the stored-value medium carries the token")
				}
				a.f.noAccountOutput()
				b.f.noAccountOutput()

				// The binding holds on the device too: device B cannot pay
				// under device A's token.
				b.f.login(ctx)
				foreign := spd.PayRequest{Kind: spd.KindAccount, Mode: spd.ModeOnline, Amount: 1_00, Currency: 978, Time: Clock,
					Region: Home, Token: a.f.Profile.AccountToken, Payee: []byte(codePayee), TerminalNonce: []byte("CLM-NONCE-01")}
				b.f.declines(ctx, foreign, reasonUnknownToken)
			}, SpecTimeout(90*time.Second))

		It("MUST hold value as digital currency: minor units of the issuer's currency, created only by the issuer, conserved through payment and settlement",
			Case("TC-CLM-002", Positive, Negative, "SPD-PAY-1", "SPD-UPD-1", "SPD-LED-5", "C3", "C11", "C14"),
			func(ctx SpecContext) {
				need(d, PayBalance)
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				f := c.f
				f.login(ctx)
				cur, err := f.Client.GetData(ctx, spd.TagCurrency)
				Expect(err).NotTo(HaveOccurred())
				Expect(cur).To(Equal([]byte{0x03, 0xD2}), "the device holds euro (ISO 4217 978)")
				// Value moves in minor units, one cent at a time.
				r := f.pays(ctx, spd.PayRequest{Kind: spd.KindBalance, Mode: spd.ModeOnline, Amount: 1, Currency: 978, Time: Clock,
					Region: Home, Payee: []byte(codePayee), TerminalNonce: []byte("CLM-NONCE-02")}, 1)
				Expect(r.Info().Currency).To(Equal(uint16(978)), "the result names the currency")
				Expect(r.Info().Balance).To(Equal(f.Profile.Balance-1), asserts("C11", "value moves as digital currency, one minor unit of the issuer's currency"))
				// Another currency is not this value.
				f.refuses(ctx, spd.Pay(spd.PayRequest{Kind: spd.KindBalance, Mode: spd.ModeOnline, Amount: 1_00, Currency: 840,
					Time: Clock, Region: Home}), sw6A80, "PAY in US dollars on a euro device")
				// Only the issuer creates value: a top-up signed by another
				// key is refused, one signed by the issuer's host adds it.
				rogue, err := issuer.Generate("rogue")
				Expect(err).NotTo(HaveOccurred())
				forged, err := spd.UpdateParameters(rogue.HostKey(), f.Profile.DeviceID, spd.ParameterUpdate{Counter: 1, TopUp: 1_000_00})
				Expect(err).NotTo(HaveOccurred())
				f.refuses(ctx, forged, sw6982, "a top-up signed by a key that is not the issuer's")
				_, err = s.admin.QueueParameter(ctx, c.id(), backend.ParameterUpdate{TopUp: 5_00})
				Expect(err).NotTo(HaveOccurred())
				done(c.tm.Sync(ctx))
				Expect(f.Client.Balance(ctx)).To(Equal(f.Profile.Balance-1+5_00), asserts("C3", asserts("C14", "the issuer's top-up updates the balance after the payment, at the next sync")))
				// Settlement keeps every unit: the issuer's books and the
				// device agree, and the audit is conserved.
				done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("3.00", "CLM-2")), Kind: spd.KindBalance, Network: terminal.OfflineOnly}))
				done(c.tm.Sync(ctx))
				s.conserved(ctx)
				dev, err := s.admin.Device(ctx, c.id())
				Expect(err).NotTo(HaveOccurred())
				bal, err := f.Client.Balance(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(bal).To(Equal(f.Profile.Balance-1+5_00-3_00), "the device's balance in minor units")
				Expect(dev.Currency).To(Equal(uint16(978)))
			}, SpecTimeout(90*time.Second))

		It("MUST accept its issuing institution alone, whichever kind it is (bank, insurer, telecom operator, merchant)",
			Case("TC-CLM-003", Positive, Negative, "SPD-LC-1", "SPD-KEY-2", "SPD-KEY-3", "C40", "C41"),
			func(ctx SpecContext) {
				// A device personalised by an issuer other than the lab's
				// cannot be returned to blank by the lab's TEST ERASE.
				need(d, Disposable)
				kinds := []string{"spdlab test bank", "spdlab test insurer", "spdlab test telecom operator", "spdlab test merchant"}
				issuers := make([]*issuer.Issuer, len(kinds))
				for i, k := range kinds {
					var err error
					issuers[i], err = newIssuer(k)
					Expect(err).NotTo(HaveOccurred())
				}
				for i, is := range issuers {
					next := issuers[(i+1)%len(issuers)]
					f := open(ctx, d)
					f.Issuer = is
					p := TestProfile()
					adaptProfile(&p, d.Profile())
					_, err := f.Client.Select(ctx)
					Expect(err).NotTo(HaveOccurred())
					pub, err := f.Client.Initialise(ctx, &is.CA.PublicKey, p.DeviceID)
					Expect(err).NotTo(HaveOccurred())
					p.DevicePublicKey = pub
					// Another institution's personalisation, even of the
					// device's own key: 6982, the device stays initialised.
					script, err := next.PersonalisationScript(p)
					Expect(err).NotTo(HaveOccurred())
					for _, cmd := range script {
						if cmd.INS == 0x52 {
							f.refuses0(ctx, cmd, sw6982, asserts("C40", "PERSONALISE by "+kinds[(i+1)%len(kinds)]+" of a device initialised for "+kinds[i]))
						}
					}
					got, err := is.Personalise(ctx, f.Client, p)
					Expect(err).NotTo(HaveOccurred(), "personalising by %s", kinds[i])
					f.Profile, f.Pub = got, got.DevicePublicKey
					cert, err := x509.ParseCertificate(got.Certificate)
					Expect(err).NotTo(HaveOccurred())
					Expect(cert.Issuer.Organization).To(Equal([]string{kinds[i]}), asserts("C41", "the device certificate names its issuing institution, whichever its kind"))
					Expect(cert.CheckSignatureFrom(mustCA(is))).To(Succeed(), "%s signed the certificate", kinds[i])
					Expect(cert.CheckSignatureFrom(mustCA(next))).NotTo(Succeed(), "no other institution signed it")
					// Its host orders come from that issuer alone.
					f.login(ctx)
					forged, err := spd.UpdateParameters(next.HostKey(), got.DeviceID, spd.ParameterUpdate{Counter: 1, TopUp: 1_00})
					Expect(err).NotTo(HaveOccurred())
					f.refuses(ctx, forged, sw6982, "a host order of another institution")
					f.update(ctx, spd.ParameterUpdate{Counter: 1, TopUp: 1_00})
					Expect(f.release()).To(Succeed())
				}
			}, SpecTimeout(120*time.Second))
	})
}

// masked is an account as the issuer shows it: all but its last four
// characters starred.
func masked(account []byte) string {
	n := max(len(account)-4, 0)
	return strings.Repeat("*", n) + string(account[n:])
}

// mustCA is an issuer's CA certificate.
func mustCA(is *issuer.Issuer) *x509.Certificate {
	GinkgoHelper()
	c, err := x509.ParseCertificate(is.CACertificate)
	Expect(err).NotTo(HaveOccurred())
	return c
}
