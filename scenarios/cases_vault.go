package scenarios

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

// vaultCase is one domain control of the issuer's token vault (C22) set
// tighter than the device's own for the same token: the device pays, and
// the vault, asked by the backend when the payment's record comes for
// authorisation, refuses it.
type vaultCase struct {
	id, control string
	// device are the controls the device's token carries; vault the
	// issuer's registration of it.
	device medium.TokenControls
	expiry time.Duration // of the device's token, from Clock
	vault  func(tok string, dev string) backend.TokenRequest
	// within is a payment both allow; beyond one the device allows and
	// the vault refuses, made after advance on the service clock.
	within, beyond vaultPayment
	advance        time.Duration
	// reason is the vault's refusal, as the backend states it.
	reason func(tok string) string
}

type vaultPayment struct {
	amount  int64
	channel medium.Channel
}

func defineVaultCases(d Driver) {
	both := medium.ChannelInStore | medium.ChannelOnline
	cases := []vaultCase{
		{id: "TC-SVC-046", control: "amount per transaction",
			device: medium.TokenControls{MaxTransactions: 5, MaxAmount: 20_00, Channels: both}, expiry: 2 * time.Hour,
			vault: func(tok, dev string) backend.TokenRequest {
				return backend.TokenRequest{DeviceID: dev, Token: tok, MaxAmount: 10_00}
			},
			within: vaultPayment{10_00, medium.ChannelInStore}, beyond: vaultPayment{10_01, medium.ChannelInStore},
			reason: func(tok string) string { return fmt.Sprintf("token %q: amount 1001 over the limit 1000", tok) }},
		{id: "TC-SVC-047", control: "validity period",
			device: medium.TokenControls{MaxTransactions: 5, MaxAmount: 20_00, Channels: both}, expiry: 2 * time.Hour,
			vault: func(tok, dev string) backend.TokenRequest {
				return backend.TokenRequest{DeviceID: dev, Token: tok, NotAfter: Clock.Add(time.Hour)}
			},
			within: vaultPayment{1_00, medium.ChannelInStore}, beyond: vaultPayment{1_00, medium.ChannelInStore},
			advance: time.Hour + time.Second,
			reason: func(tok string) string {
				return fmt.Sprintf("token %q: expired at %s", tok, Clock.Add(time.Hour).Format(time.RFC3339))
			}},
		{id: "TC-SVC-048", control: "payment channel",
			device: medium.TokenControls{MaxTransactions: 5, MaxAmount: 20_00, Channels: both}, expiry: 2 * time.Hour,
			vault: func(tok, dev string) backend.TokenRequest {
				return backend.TokenRequest{DeviceID: dev, Token: tok, Channels: []string{"qr"}}
			},
			within: vaultPayment{1_00, medium.ChannelInStore}, beyond: vaultPayment{1_00, medium.ChannelOnline},
			reason: func(tok string) string { return fmt.Sprintf("token %q: channel \"online\" not allowed (qr)", tok) }},
		{id: "TC-SVC-049", control: "number of transactions",
			device: medium.TokenControls{MaxTransactions: 5, MaxAmount: 20_00, Channels: both}, expiry: 2 * time.Hour,
			vault: func(tok, dev string) backend.TokenRequest {
				return backend.TokenRequest{DeviceID: dev, Token: tok, MaxUses: 1}
			},
			within: vaultPayment{1_00, medium.ChannelInStore}, beyond: vaultPayment{1_00, medium.ChannelInStore},
			reason: func(tok string) string { return fmt.Sprintf("token %q: used 1 of 1 transactions", tok) }},
	}
	Describe("The issuer's token vault behind the device's controls (C22)", func() {
		for _, vc := range cases {
			It("MUST have the backend's vault refuse a token payment the device made within its own controls, by the vault's "+vc.control,
				Case(vc.id, Positive, "SPD-TOK-2", "SPD-LED-5", "C20", "C22", "C24"), func(ctx SpecContext) {
					s := newServiceLab(d)
					c := s.customer(ctx, d, nil)
					f := c.f
					f.login(ctx)
					res, err := f.Client.GenerateToken(ctx, spd.TokenRequest{Time: Clock, Expiry: Clock.Add(vc.expiry), Controls: vc.device})
					Expect(err).NotTo(HaveOccurred())
					tok := strings.ToUpper(fmt.Sprintf("%X", res.Info().Token))
					_, err = s.admin.MintToken(ctx, vc.vault(tok, c.id()))
					Expect(err).NotTo(HaveOccurred(), "the issuer registers the token with its own controls")
					acquirer, err := backend.NewClient(s.url, nil)
					Expect(err).NotTo(HaveOccurred())
					acquirer.Credential = s.terminalToken

					// Within both: the device pays and the vault approves.
					authorise := func(p vaultPayment) (backend.AuthorisationResult, error) {
						r := payment(spd.KindAccount, spd.ModeOnline, p.amount)
						r.Token, r.Channel, r.Time = res.Info().Token, p.channel, s.clock.Now()
						r.Payee = []byte("MERCHANT-0042")
						f.pays(ctx, r, p.amount)
						recs, err := f.Client.PendingRecords(ctx)
						Expect(err).NotTo(HaveOccurred())
						rec := recs[len(recs)-1]
						return acquirer.Authorise(ctx, backend.AuthorisationRequest{Record: rec.Marshal(),
							Channel:  map[medium.Channel]string{medium.ChannelInStore: "qr", medium.ChannelOnline: "online"}[p.channel],
							Merchant: "MERCHANT-0042"})
					}
					ok, err := authorise(vc.within)
					Expect(err).NotTo(HaveOccurred())
					Expect(ok.Status).To(Equal(backend.Approved))
					Expect(ok.Amount).To(Equal(vc.within.amount))

					// Beyond the vault's control, within the device's.
					s.clock.Advance(vc.advance)
					before := vaultState(ctx, s, c, tok)
					_, err = authorise(vc.beyond)
					var refused *backend.APIError
					Expect(errors.As(err, &refused)).To(BeTrue(), "the backend authorised a payment its vault must refuse: %v", err)
					Expect(refused.Status).To(Equal(http.StatusUnprocessableEntity))
					Expect(refused.Code).To(Equal(backend.CodeTokenRefused))
					Expect(refused.Reason).To(Equal(vc.reason(tok)), asserts("C22", "the vault enforces the token's domain control: "+vc.control))
					Expect(vaultState(ctx, s, c, tok)).To(Equal(before), "a refused token payment moves nothing at the issuer")
				}, SpecTimeout(60*time.Second))
		}
	})
}

// vaultState is what a refused authorisation must leave as it was: the
// issuer's view of the device and the vault's count of the token's uses.
func vaultState(ctx context.Context, s *serviceLab, c *customer, tok string) [2]int64 {
	GinkgoHelper()
	t, err := s.admin.Token(ctx, tok)
	Expect(err).NotTo(HaveOccurred())
	return [2]int64{s.issuerBalance(ctx, c), t.Uses}
}
