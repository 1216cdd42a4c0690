package scenarios

import (
	"crypto/rand"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
)

func defineLifeCycle(d Driver) {
	Describe("Life cycle and personalisation", func() {
		It("MUST go blank -> initialised -> personalised -> active only through the issuer's commands",
			Case("TC-LC-001", Positive, Negative, "SPD-LC-1", "SPD-KEY-1", "SPD-KEY-2", "C40", "C41"), func(ctx SpecContext) {
				needFresh(d)
				f := open(ctx, d)
				sel, err := f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(sel.State).To(Equal(spd.StateBlank))
				Expect(f.sw(ctx, spd.Activate())).To(Equal(apdu.SWConditionsNotSat), "ACTIVATE while blank")

				p := TestProfile()
				pub, err := f.Client.Initialise(ctx, &f.Issuer.CA.PublicKey, p.DeviceID)
				Expect(err).NotTo(HaveOccurred())
				Expect(f.Client.State(ctx)).To(Equal(spd.StateInitialised))
				p.DevicePublicKey = pub

				script, err := f.Issuer.PersonalisationScript(p)
				Expect(err).NotTo(HaveOccurred())
				Expect(f.Client.Run(ctx, script[:1])).To(Succeed(), "PERSONALISE")
				Expect(f.Client.State(ctx)).To(Equal(spd.StatePersonalised))
				Expect(f.Client.Run(ctx, script[1:])).To(Succeed(), "VERIFY and ACTIVATE")
				Expect(f.Client.State(ctx)).To(Equal(spd.StateActive))

				cert, err := f.Client.Certificate(ctx)
				Expect(err).NotTo(HaveOccurred())
				certPub, id, err := spd.VerifyDeviceCertificate(cert, &f.Issuer.CA.PublicKey)
				Expect(err).NotTo(HaveOccurred())
				Expect(id).To(Equal(p.DeviceID))
				Expect(certPub.Equal(pub)).To(BeTrue(), "certificate names the key INITIALISE returned")
				Expect(f.Client.Balance(ctx)).To(Equal(p.Balance))
				Expect(f.Client.Uses(ctx)).To(Equal(p.Uses))
			}, SpecTimeout(60*time.Second))

		It("MUST refuse a personalisation signed by another CA and stay initialised",
			Case("TC-LC-002", Negative, "SPD-LC-1", "SPD-KEY-3", "C40", "C41"), func(ctx SpecContext) {
				needFresh(d)
				f := open(ctx, d)
				_, err := f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				p := TestProfile()
				pub, err := f.Client.Initialise(ctx, &f.Issuer.CA.PublicKey, p.DeviceID)
				Expect(err).NotTo(HaveOccurred())
				p.DevicePublicKey = pub
				rogue, err := issuer.Generate("rogue")
				Expect(err).NotTo(HaveOccurred())
				script, err := rogue.PersonalisationScript(p)
				Expect(err).NotTo(HaveOccurred())
				Expect(f.sw(ctx, script[0])).To(Equal(sw6982), "the CA signature of the profile does not verify")
				Expect(f.Client.State(ctx)).To(Equal(spd.StateInitialised))
			}, SpecTimeout(60*time.Second))

		It("MUST prove possession of the certified key by INTERNAL AUTHENTICATE",
			Case("TC-KEY-001", Positive, "SPD-KEY-4", "C33"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				challenge := make([]byte, 16)
				_, _ = rand.Read(challenge)
				id, err := f.Client.Authenticate(ctx, &f.Issuer.CA.PublicKey, challenge)
				Expect(err).NotTo(HaveOccurred())
				Expect(id).To(Equal(f.Profile.DeviceID), asserts("C33", "the device's certificate and its signature over the terminal's challenge confirm the device"))
				rogue, err := issuer.Generate("rogue")
				Expect(err).NotTo(HaveOccurred())
				_, err = f.Client.Authenticate(ctx, &rogue.CA.PublicKey, challenge)
				Expect(err).To(MatchError(spd.ErrBadSignature), "a certificate must not verify under another CA")
			}, SpecTimeout(30*time.Second))

		It("MUST refuse payments while blocked and accept them again after the host unblocks it",
			Case("TC-LC-003", Negative, "SPD-LC-2", "SPD-LC-3", "C14", "C15"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				blocked, active := spd.StateBlocked, spd.StateActive
				Expect(f.sw(ctx, f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 1, State: &blocked, Time: Clock})
				}))).To(Equal(apdu.SWOK))
				f.login(ctx)
				pay := spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 100))
				Expect(f.sw(ctx, pay)).To(Equal(apdu.SWConditionsNotSat))
				Expect(f.sw(ctx, f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 2, State: &active, Time: Clock})
				}))).To(Equal(apdu.SWOK))
				res := f.pay(ctx, payment(spd.KindBalance, spd.ModeOnline, 100))
				Expect(res.Success()).To(BeTrue(), "reason: %s", res.Info().Reason)
			}, SpecTimeout(30*time.Second))

		It("MUST apply a host parameter update once and refuse its replay with 6984",
			Case("TC-LC-004", Positive, Negative, "SPD-KEY-3", "C3", "C14", "C15"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				topUp := f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 7, TopUp: 25_00, AddUses: 3, Time: Clock})
				})
				Expect(f.sw(ctx, topUp)).To(Equal(apdu.SWOK))
				after := f.snapshot(ctx)
				Expect(after.Balance).To(Equal(f.Profile.Balance + 25_00))
				Expect(after.Uses).To(Equal(f.Profile.Uses + 3))
				Expect(f.sw(ctx, topUp)).To(Equal(apdu.SWRefDataNotUsable), "replayed update")
				Expect(f.snapshot(ctx)).To(Equal(after))

				forged := f.hostOrder(func(_ *ecdsaKey, id []byte) (apdu.Command, error) {
					rogue, err := issuer.Generate("rogue")
					if err != nil {
						return apdu.Command{}, err
					}
					return spd.UpdateParameters(rogue.HostKey(), id, spd.ParameterUpdate{Counter: 8, TopUp: 1_000_00, Time: Clock})
				})
				Expect(f.sw(ctx, forged)).To(Equal(apdu.SWSecurityNotSatisfied))
				Expect(f.snapshot(ctx)).To(Equal(after))
			}, SpecTimeout(30*time.Second))
	})
}
