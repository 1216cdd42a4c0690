package scenarios

import (
	"context"
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/link"
)

func defineVerification(d Driver) {
	Describe("Cardholder verification", func() {
		Describe("PIN try counter", Ordered, func() {
			var f *Fixture
			BeforeAll(func(ctx SpecContext) {
				f = personalised(ctx, d, nil)
				_, err := f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
			})

			It("MUST refuse PAY before VERIFY with 6982",
				Case("TC-PIN-001", Negative, "SPD-PIN-1", "C32", "C33"), func(ctx SpecContext) {
					Expect(f.sw(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 100)))).To(Equal(apdu.SWSecurityNotSatisfied),
						asserts("C32", "no payment before the cardholder's password is verified"))
				}, SpecTimeout(30*time.Second))

			It("MUST answer a wrong PIN with 63Cx counting down",
				Case("TC-PIN-002", Positive, "SPD-PIN-2", "C32", "C33"), func(ctx SpecContext) {
					Expect(f.sw(ctx, spd.VerifyPIN("0000"))).To(Equal(apdu.VerifyFailed(2)))
					Expect(f.sw(ctx, spd.VerifyPIN("1111"))).To(Equal(apdu.VerifyFailed(1)))
					Expect(f.Client.PINTries(ctx)).To(Equal(1))
				}, SpecTimeout(30*time.Second))

			It("MUST reset the counter on the right PIN",
				Case("TC-PIN-003", Positive, "SPD-PIN-2", "C32"), func(ctx SpecContext) {
					Expect(f.Client.VerifyPIN(ctx, TestPIN)).To(Succeed())
					Expect(f.Client.PINTries(ctx)).To(Equal(3))
				}, SpecTimeout(30*time.Second))

			It("MUST block after the try limit and refuse even the right PIN with 6983",
				Case("TC-PIN-004", Positive, "SPD-PIN-2", "SPD-PIN-3", "C32"), func(ctx SpecContext) {
					for i := 0; i < 3; i++ {
						f.sw(ctx, spd.VerifyPIN("9999"))
					}
					err := f.Client.VerifyPIN(ctx, TestPIN)
					Expect(errors.Is(err, apdu.ErrPINBlocked)).To(BeTrue(), "got %v", err)
					Expect(f.sw(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 100)))).To(Equal(apdu.SWSecurityNotSatisfied))
				}, SpecTimeout(30*time.Second))

			It("MUST unblock with the PUK and take the new PIN",
				Case("TC-PIN-005", Positive, "SPD-PIN-3", "C32"), func(ctx SpecContext) {
					Expect(f.sw(ctx, spd.UnblockPIN("00000000", "4321"))).To(Equal(apdu.VerifyFailed(9)))
					Expect(f.Client.UnblockPIN(ctx, TestPUK, "4321")).To(Succeed())
					Expect(f.Client.VerifyPIN(ctx, "4321")).To(Succeed())
					Expect(f.Client.ChangePIN(ctx, "4321", TestPIN)).To(Succeed())
					Expect(f.Client.VerifyPIN(ctx, TestPIN)).To(Succeed())
				}, SpecTimeout(30*time.Second))
		})

		It("MUST decrement the try counter before comparing in VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER, so a power cut cannot save a try",
			Serial, Case("TC-PIN-006", Positive, "SPD-PIN-2", "C32"), func(ctx SpecContext) {
				need(d, Tearing)
				f := selected(ctx, d, nil)
				// Each presentation of the right secret is cut at its second
				// persistent write (the restore): the decrement, the first
				// write, must have been made before the comparison.
				f.torn(ctx, spd.VerifyPIN(TestPIN), 2, "a VERIFY of the right PIN")
				Expect(f.Client.PINTries(ctx)).To(Equal(2), "the torn VERIFY cost a try")
				f.torn(ctx, spd.ChangePIN(TestPIN, "864213"), 2, "a CHANGE REFERENCE DATA with the right old PIN")
				Expect(f.Client.PINTries(ctx)).To(Equal(1), "the torn CHANGE REFERENCE DATA cost a try")
				Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw9000), "the torn change set no new PIN")
				Expect(f.Client.PINTries(ctx)).To(Equal(3))
				f.torn(ctx, spd.UnblockPIN(TestPUK, ""), 2, "a RESET RETRY COUNTER with the right PUK")
				Expect(f.sw(ctx, spd.UnblockPIN("00000000", ""))).To(Equal(sw63C(8)), "the torn unblock cost a PUK try: 10, 9, then 8 left")
			}, SpecTimeout(60*time.Second))

		It("MUST accept a biometric sample within the threshold and refuse a far one",
			Case("TC-BIO-001", Positive, Negative, "SPD-BIO-1", "SPD-BIO-2", "C32", "C33"), func(ctx SpecContext) {
				need(d, Biometric)
				f := selected(ctx, d, nil)
				near := append([]byte(nil), TestBioTemplate...)
				near[0] += 10
				near[5] += 5
				far := make([]byte, len(TestBioTemplate))
				for i := range far {
					far[i] = TestBioTemplate[i] ^ 0x80
				}
				Expect(f.sw(ctx, spd.VerifyBiometric(far))).To(Equal(sw63C(4)), "a far sample")
				Expect(f.Client.VerifyBiometric(ctx, near)).To(Succeed())
				res := f.pay(ctx, payment(spd.KindBalance, spd.ModeOnline, 100))
				Expect(res.Success()).To(BeTrue())
			}, SpecTimeout(30*time.Second))

		It("MUST decline a payment from a location outside the allowed regions",
			Case("TC-LOC-001", Negative, "SPD-VER-1", "C18", "C33"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				r := payment(spd.KindBalance, spd.ModeOnline, 100)
				r.Region = Barred
				f.declines(ctx, r, reasonLocation)
			}, SpecTimeout(30*time.Second))

		It("MUST decline a service that requires a higher membership tier",
			Case("TC-ATT-001", Negative, "SPD-VER-2", "C33"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				r := payment(spd.KindUse, spd.ModeOnline, 0)
				r.RequiredTier = 2
				f.declines(ctx, r, reasonTier)
			}, SpecTimeout(30*time.Second))
	})
}

// reconnect power-cycles the device after a tear and selects it again.
func reconnect(ctx context.Context, f *Fixture) {
	GinkgoHelper()
	// The recorded link has exactly the DUT link's abilities: what it
	// does goes into the case's transcript (and the run's trace).
	l := f.rec.Link()
	if p, ok := l.(link.PowerCycler); ok {
		Expect(p.PowerOff(ctx)).To(Succeed())
		_, err := p.PowerOn(ctx)
		Expect(err).NotTo(HaveOccurred())
	} else if r, ok := l.(link.Resetter); ok {
		_, err := r.Reset(ctx, true)
		Expect(err).NotTo(HaveOccurred())
	} else {
		Fail(f.Device.Link.String() + " can neither power-cycle nor reset the device")
	}
	_, err := f.Client.Select(ctx)
	Expect(err).NotTo(HaveOccurred())
}
