package scenarios

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
)

func definePINCases(d Driver) {
	It("MUST refuse a malformed PIN with 6A80 without spending a try",
		Case("TC-PIN-007", Negative, "SPD-PIN-2", "SPD-APP-3", "C32"), func(ctx SpecContext) {
			f := selected(ctx, d, nil)
			for _, pin := range []string{"12a4", "123", "1234567890123", "25 8", "２５８０"} {
				f.refuses(ctx, spd.VerifyPIN(pin), sw6A80, "VERIFY of the malformed PIN "+pin)
			}
			Expect(f.Client.PINTries(ctx)).To(Equal(3))
			Expect(f.sw(ctx, spd.VerifyPIN("258000000000"))).To(Equal(sw63C(2)), "12 digits is a well-formed wrong PIN")
			Expect(f.sw(ctx, spd.VerifyPIN("2580"))).To(Equal(sw9000))
			// A malformed PIN is refused before any try is spent, and the
			// verification of the session is kept (SPEC.md 1.2, VERIFY).
			for _, pin := range []string{"12a4", "1234567890123"} {
				f.refuses(ctx, spd.VerifyPIN(pin), sw6A80, "VERIFY of the malformed PIN "+pin+" when verified")
				f.refuses(ctx, spd.PINStatus(), sw9000, "PIN status after the malformed PIN "+pin+": still verified")
			}
			// CHANGE REFERENCE DATA ends the verified status only after its
			// data field passes its row (SPEC.md 1.2): a 6A80 keeps it.
			for _, c := range []struct{ old, pin string }{{TestPIN, "12a4"}, {TestPIN, "123"}, {"", "4444"}} {
				f.refuses(ctx, spd.ChangePIN(c.old, c.pin), sw6A80, "CHANGE REFERENCE DATA from "+c.old+" to the PIN "+c.pin+" when verified")
				f.refuses(ctx, spd.PINStatus(), sw9000, "PIN status after CHANGE REFERENCE DATA refused 6A80: still verified")
			}
		}, SpecTimeout(30*time.Second))

	It("MUST end verification on a failed VERIFY",
		Case("TC-PIN-008", Positive, Negative, "SPD-PIN-1", "C32"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			Expect(f.sw(ctx, spd.VerifyPIN("0000"))).To(Equal(sw63C(2)))
			f.refuses(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)), sw6982, "PAY after a failed VERIFY")
			f.refuses(ctx, spd.GenerateMedium(spd.MediumRequest{Time: Clock}), sw6982, "GENERATE MEDIUM after a failed VERIFY")
		}, SpecTimeout(30*time.Second))

	It("MUST answer an empty VERIFY with the tries left, 9000 when verified, 6983 when blocked, spending nothing",
		Case("TC-PIN-009", Positive, Negative, "SPD-PIN-2", "SPD-PIN-3", "C32"), func(ctx SpecContext) {
			f := selected(ctx, d, nil)
			f.refuses(ctx, spd.PINStatus(), sw63C(3), "PIN status, not verified")
			Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw9000))
			f.refuses(ctx, spd.PINStatus(), sw9000, "PIN status, verified")
			Expect(f.sw(ctx, spd.VerifyPIN("1111"))).To(Equal(sw63C(2)))
			f.refuses(ctx, spd.PINStatus(), sw63C(2), "PIN status after a failure")
			Expect(f.sw(ctx, spd.VerifyPIN("1111"))).To(Equal(sw63C(1)))
			Expect(f.sw(ctx, spd.VerifyPIN("1111"))).To(Equal(sw63C(0)))
			f.refuses(ctx, spd.PINStatus(), sw6983, "PIN status, blocked")
			f.refuses(ctx, spd.VerifyPIN("1111"), sw6983, "a wrong PIN when blocked")
			f.refuses(ctx, spd.ChangePIN(TestPIN, "9999"), sw6983, "CHANGE REFERENCE DATA when blocked")
		}, SpecTimeout(30*time.Second))

	It("MUST leave the session verified after CHANGE REFERENCE DATA and take the new PIN",
		Case("TC-PIN-010", Positive, Negative, "SPD-PIN-3", "SPD-PIN-1", "C32"), func(ctx SpecContext) {
			f := selected(ctx, d, nil)
			Expect(f.sw(ctx, spd.ChangePIN(TestPIN, "864213"))).To(Equal(sw9000))
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 1_00), 1_00)
			_, err := f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw63C(2)), "the old PIN no longer verifies")
			Expect(f.sw(ctx, spd.VerifyPIN("864213"))).To(Equal(sw9000))
			Expect(f.Client.PINTries(ctx)).To(Equal(3))
		}, SpecTimeout(30*time.Second))

	It("MUST spend a try on CHANGE REFERENCE DATA with a wrong old PIN, keep the PIN, and restore the profile's try limit on a match",
		Case("TC-PIN-011", Positive, Negative, "SPD-PIN-2", "C32"), func(ctx SpecContext) {
			// A try limit other than the 3 of TestProfile: a match restores
			// the counter to the profile's DF57 (SPD-PIN-2), not to a default.
			p := TestProfile()
			p.PINTryLimit = 5
			f := selected(ctx, d, &p)
			Expect(f.Client.PINTries(ctx)).To(Equal(5), "personalised with DF57 = 5")
			Expect(f.sw(ctx, spd.ChangePIN("0000", "4444"))).To(Equal(sw63C(4)))
			Expect(f.Client.PINTries(ctx)).To(Equal(4))
			f.refuses(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)), sw6982, "no verification from a failed change")
			bad := spd.ChangePIN(TestPIN, "12a4")
			f.refuses(ctx, bad, sw6A80, "CHANGE REFERENCE DATA to a malformed PIN")
			Expect(f.sw(ctx, spd.VerifyPIN("4444"))).To(Equal(sw63C(3)), "the new PIN of the failed change was not set")
			Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw9000))
			Expect(f.Client.PINTries(ctx)).To(Equal(5), "the match restored the profile's limit")
		}, SpecTimeout(30*time.Second))

	It("MUST count wrong PUKs down, unblock with the right one restoring the PIN tries without verifying, and keep the PIN when none is given",
		Case("TC-PIN-012", Positive, Negative, "SPD-PIN-2", "SPD-PIN-3", "SPD-PIN-1", "C32"), func(ctx SpecContext) {
			f := selected(ctx, d, nil)
			for i := 2; i >= 0; i-- {
				Expect(f.sw(ctx, spd.VerifyPIN("0000"))).To(Equal(sw63C(i)))
			}
			// A data field that breaks the row (SPEC.md 1.2) answers 6A80
			// before the PUK counter: no PUK try is spent (SPD-APP-4).
			for _, c := range []struct{ puk, pin string }{{"1234abcd", ""}, {"12345678901234567", ""}, {"", ""}, {TestPUK, "12a4"}} {
				f.refuses(ctx, spd.UnblockPIN(c.puk, c.pin), sw6A80, "RESET RETRY COUNTER with the PUK "+c.puk+" and the new PIN "+c.pin)
			}
			for left := 9; left >= 7; left-- {
				Expect(f.sw(ctx, spd.UnblockPIN("00000000", ""))).To(Equal(sw63C(left)), "wrong PUK")
			}
			Expect(f.Client.PINTries(ctx)).To(Equal(0), "a wrong PUK unblocks nothing")
			Expect(f.sw(ctx, spd.UnblockPIN(TestPUK, ""))).To(Equal(sw9000))
			Expect(f.Client.PINTries(ctx)).To(Equal(3), "the PUK restores the PIN tries")
			// SPD-PIN-3: an unblock verifies no one; the PIN must be presented.
			f.refuses(ctx, spd.PINStatus(), sw63C(3), "PIN status after a PUK unblock: not verified")
			Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw9000), "the PIN is kept")
			for left := 9; left >= 1; left-- {
				Expect(f.sw(ctx, spd.UnblockPIN("00000000", ""))).To(Equal(sw63C(left)), "the right PUK restored the PUK tries")
			}
			Expect(f.sw(ctx, spd.UnblockPIN("00000000", ""))).To(Equal(sw63C(0)))
			f.refuses(ctx, spd.UnblockPIN(TestPUK, "1234"), sw6983, "the right PUK once the PUK is blocked")
		}, SpecTimeout(30*time.Second))

	It("MUST unblock on a host-signed RESET RETRY COUNTER with a fresh counter, restoring PIN and PUK tries, once",
		Case("TC-PIN-013", Positive, Negative, "SPD-PIN-3", "SPD-KEY-3", "SPD-UPD-1", "C32", "C14"), func(ctx SpecContext) {
			f := selected(ctx, d, nil)
			for i := 2; i >= 0; i-- {
				Expect(f.sw(ctx, spd.VerifyPIN("0000"))).To(Equal(sw63C(i)))
			}
			Expect(f.sw(ctx, spd.UnblockPIN("00000000", ""))).To(Equal(sw63C(9)))
			unblock := func(counter uint32, pin string) apdu.Command {
				return f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.UnblockByHost(k, id, spd.Unblock{Counter: counter, NewPIN: pin})
				})
			}
			rogue, err := issuer.Generate("rogue")
			Expect(err).NotTo(HaveOccurred())
			forged, err := spd.UnblockByHost(rogue.HostKey(), f.Profile.DeviceID, spd.Unblock{Counter: 9})
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, forged, sw6982, "a host unblock signed by another host")
			Expect(f.sw(ctx, unblock(3, "7777"))).To(Equal(sw9000))
			s := f.state(ctx)
			Expect(s.PINTries).To(Equal(3))
			Expect(s.UpdateCounter).To(Equal(uint32(3)), "the host unblock shares the update counter")
			f.refuses(ctx, spd.PINStatus(), sw63C(3), "PIN status after a host unblock: not verified")
			f.refuses(ctx, unblock(3, "5555"), sw6984, "the same host unblock again")
			f.refuses(ctx, unblock(2, "5555"), sw6984, "an older host unblock")
			f.refuses(ctx, f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
				return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 3, TopUp: 1_00, Time: Clock})
			}), sw6984, "an update with the counter the unblock used")
			for left := 9; left >= 8; left-- {
				Expect(f.sw(ctx, spd.UnblockPIN("00000000", ""))).To(Equal(sw63C(left)), "the host unblock restored the PUK tries")
			}
			Expect(f.sw(ctx, spd.VerifyPIN("7777"))).To(Equal(sw9000), "the host set the new PIN")
		}, SpecTimeout(30*time.Second))

	It("MUST match a biometric sample at exactly the threshold distance, refuse one just beyond with 63C4, and end verification on it",
		Case("TC-BIO-002", Positive, Negative, "SPD-BIO-1", "SPD-PIN-1", "C32", "C33"), func(ctx SpecContext) {
			need(d, Biometric)
			f := selected(ctx, d, nil)
			// TestProfile's threshold is 400: 20^2 is at it, 20^2+1^2 beyond.
			beyond := append([]byte(nil), TestBioTemplate...)
			beyond[3] += 20
			beyond[9]++
			Expect(f.sw(ctx, spd.VerifyBiometric(beyond))).To(Equal(sw63C(4)), "distance 401")
			f.refuses(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)), sw6982, "PAY after a refused sample")
			at := append([]byte(nil), TestBioTemplate...)
			at[3] += 20
			Expect(f.sw(ctx, spd.VerifyBiometric(at))).To(Equal(sw9000), "distance 400")
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 1_00), 1_00)
			Expect(f.sw(ctx, spd.VerifyBiometric(make([]byte, 15)))).To(Equal(sw6700), "a sample of 15 bytes")
			// SPD-PIN-1: a failed VERIFY ends the verified status, the
			// biometric's as the PIN's (TC-PIN-008).
			Expect(f.sw(ctx, spd.VerifyBiometric(beyond))).To(Equal(sw63C(4)), "distance 401 when verified")
			f.refuses(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)), sw6982, "PAY after a refused sample in a verified session")
			f.refuses(ctx, spd.PINStatus(), sw63C(3), "PIN status after the refused sample: not verified")
		}, SpecTimeout(30*time.Second))

	It("MUST answer biometric VERIFY with 6A88 when no template is enrolled",
		Case("TC-BIO-003", Positive, Negative, "SPD-BIO-1", "C32"), func(ctx SpecContext) {
			need(d, Biometric)
			p := TestProfile()
			p.BioTemplate, p.BioThreshold = nil, 0
			f := selected(ctx, d, &p)
			f.refuses(ctx, spd.VerifyBiometric(TestBioTemplate), sw6A88, "biometric VERIFY without a template")
			f.refuses(ctx, apdu.Command{CLA: 0x00, INS: 0x20, P2: 0x81}, sw6A88, "biometric status without a template")
			// 6A88 comes before "counter 0" (SPEC.md 1.2, VERIFY): it keeps
			// the verified status.
			Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw9000))
			f.refuses(ctx, spd.VerifyBiometric(TestBioTemplate), sw6A88, "biometric VERIFY without a template, verified")
			f.refuses(ctx, spd.PINStatus(), sw9000, "PIN status after the 6A88: still verified")
		}, SpecTimeout(30*time.Second))

	It("MUST count biometric failures on their own counter to 6983, leaving the PIN's, and end verification on a sample once blocked",
		Case("TC-BIO-004", Positive, Negative, "SPD-BIO-2", "SPD-PIN-3", "SPD-PIN-1", "C32"), func(ctx SpecContext) {
			need(d, Biometric)
			f := selected(ctx, d, nil)
			far := make([]byte, 16)
			for i := range far {
				far[i] = TestBioTemplate[i] ^ 0x80
			}
			for left := 4; left >= 0; left-- {
				Expect(f.sw(ctx, spd.VerifyBiometric(far))).To(Equal(sw63C(left)))
			}
			Expect(f.Client.PINTries(ctx)).To(Equal(3), "biometric failures leave the PIN tries")
			f.refuses(ctx, spd.VerifyBiometric(TestBioTemplate), sw6983, "the enrolled sample once blocked")
			f.refuses(ctx, apdu.Command{CLA: 0x00, INS: 0x20, P2: 0x81}, sw6983, "biometric status once blocked")
			Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw9000), "the PIN still verifies")
			// SPEC.md 1.2, VERIFY P2 81: an empty VERIFY answers 6983 when
			// blocked before it answers 9000 when verified.
			f.refuses(ctx, apdu.Command{CLA: 0x00, INS: 0x20, P2: 0x81}, sw6983, "biometric status once blocked, in a verified session")
			f.refuses(ctx, spd.PINStatus(), sw9000, "PIN status after the biometric status: still verified")
			// SPEC.md 1.2, VERIFY: every check from "counter 0" on ends the
			// verified status first, so a sample refused 6983 ends it too.
			Expect(f.sw(ctx, spd.VerifyBiometric(TestBioTemplate))).To(Equal(sw6983), "the enrolled sample once blocked, in a verified session")
			f.refuses(ctx, spd.PINStatus(), sw63C(3), "PIN status after a sample refused 6983: not verified")
			// SPD-BIO-2: nothing but re-personalisation unblocks the
			// biometric; the PUK restores the PIN's counter alone.
			for i := 2; i >= 0; i-- {
				Expect(f.sw(ctx, spd.VerifyPIN("0000"))).To(Equal(sw63C(i)))
			}
			Expect(f.sw(ctx, spd.UnblockPIN(TestPUK, ""))).To(Equal(sw9000))
			f.refuses(ctx, apdu.Command{CLA: 0x00, INS: 0x20, P2: 0x81}, sw6983, "biometric status after a PUK unblock")
			f.refuses(ctx, spd.VerifyBiometric(TestBioTemplate), sw6983, "the enrolled sample after a PUK unblock")
			counter, err := f.Client.UpdateCounter(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
				return spd.UnblockByHost(k, id, spd.Unblock{Counter: counter + 1})
			}))).To(Equal(sw9000))
			f.refuses(ctx, spd.VerifyBiometric(TestBioTemplate), sw6983, "the enrolled sample after a host unblock")
		}, SpecTimeout(30*time.Second))
}
