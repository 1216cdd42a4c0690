package scenarios

import (
	"bytes"
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/link"
)

// isdrAID is the ISD-R of GSMA SGP.22: the other application of an eSIM.
var isdrAID = []byte{0xA0, 0x00, 0x00, 0x05, 0x59, 0x10, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x89, 0x00, 0x00, 0x01, 0x00}

// eUICCIndicated finds the first TB after a TDi announcing T=15 and
// reports whether its b8 and b2 are set (ETSI TS 102 221 clause 6.3.3:
// "eUICC-related functions supported"; SPEC.md SPD-ESIM-3).
func eUICCIndicated(atr []byte) (bool, error) {
	if len(atr) < 2 {
		return false, fmt.Errorf("ATR of %d bytes", len(atr))
	}
	y, i, afterT15 := atr[1]>>4, 2, false
	for {
		var tb *byte
		for bit := 0; bit < 3; bit++ {
			if y&(1<<bit) != 0 {
				if i >= len(atr) {
					return false, fmt.Errorf("ATR truncated in its interface bytes")
				}
				if bit == 1 {
					tb = &atr[i]
				}
				i++
			}
		}
		if afterT15 {
			return tb != nil && *tb&0x82 == 0x82, nil
		}
		if y&0x08 == 0 {
			return false, nil
		}
		if i >= len(atr) {
			return false, fmt.Errorf("ATR truncated in its interface bytes")
		}
		td := atr[i]
		i++
		afterT15 = td&0x0F == 0x0F
		y = td >> 4
	}
}

// onChannel sends one command with the logical channel ch in its class
// byte and answers the response data and status word, as one exchange:
// GET RESPONSE, when the case wants it, goes on the same channel.
func onChannel(ctx context.Context, f *Fixture, ch byte, cmd apdu.Command) ([]byte, apdu.SW) {
	GinkgoHelper()
	return sendOnChannel(ctx, f.Client.Link.Exchange, ch, cmd)
}

// onChannelRaw is onChannel sent as it is: 61xx and 6Cxx are the
// device's answer, not followed.
func onChannelRaw(ctx context.Context, raw link.RawExchanger, ch byte, cmd apdu.Command) ([]byte, apdu.SW) {
	GinkgoHelper()
	return sendOnChannel(ctx, raw.ExchangeRaw, ch, cmd)
}

func sendOnChannel(ctx context.Context, exchange func(context.Context, []byte) ([]byte, error), ch byte, cmd apdu.Command) ([]byte, apdu.SW) {
	GinkgoHelper()
	cmd.CLA |= ch
	resp, err := exchange(ctx, rawCmd(cmd))
	Expect(err).NotTo(HaveOccurred())
	r, err := apdu.ParseResponse(resp)
	Expect(err).NotTo(HaveOccurred())
	return r.Data, r.SW
}

var (
	openChannel = apdu.Command{CLA: 0x00, INS: 0x70, P1: 0x00, P2: 0x00, Ne: 1}
	selectISDR  = apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x04, P2: 0x00, Data: isdrAID, Ne: 256}
	getEID      = apdu.Command{CLA: 0x80, INS: 0xE2, P1: 0x91, P2: 0x00, Data: []byte{0xBF, 0x3E, 0x03, 0x5C, 0x01, 0x5A}, Ne: 256}
)

func closeChannel(n byte) apdu.Command { return apdu.Command{CLA: 0x00, INS: 0x70, P1: 0x80, P2: n} }

func defineESIM(d Driver) {
	Describe("eSIM: the SPD application on an eUICC", func() {
		It("MUST present an ATR that indicates the eUICC in its T=15 global bytes and T=1",
			Case("TC-ESIM-001", Positive, "SPD-ESIM-3", "SPD-FORM-3", "C35", "C36"), func(ctx SpecContext) {
				f := open(ctx, d)
				a, ok := f.rec.Link().(link.ATRer)
				Expect(ok).To(BeTrue(), asserts("C36", "an eSIM is reached through ISO/IEC 7816-3 contacts and has an ATR"))
				atr := a.ATR()
				Expect(checkATR(atr)).To(Succeed())
				euicc, err := eUICCIndicated(atr)
				Expect(err).NotTo(HaveOccurred())
				Expect(euicc).To(BeTrue(), asserts("C35", "the ATR indicates an eUICC: first TB after T=15 with b8 and b2 set, ATR % X"), atr)
			}, SpecTimeout(30*time.Second))

		It("MUST answer the eUICC ATR again at every warm reset and power-on, as a card whose logical channels the reset closed",
			Case("TC-ESIM-004", Negative, "SPD-ESIM-3", "SPD-ESIM-1", "SPD-FORM-3", "C35", "C36"), func(ctx SpecContext) {
				f := open(ctx, d)
				a, ok := f.rec.Link().(link.ATRer)
				Expect(ok).To(BeTrue(), "an eSIM is reached through ISO/IEC 7816-3 contacts and has an ATR")
				first := a.ATR()
				// resetATR checks the ATR of one reset and that the channel
				// opened before it is closed: the card that answered the
				// eUICC ATR is a card just reset (SPD-ESIM-1), so a command
				// on channel n is refused with 6881.
				resetATR := func(how string, reset func() ([]byte, error)) {
					GinkgoHelper()
					n, sw := onChannel(ctx, f, 0, openChannel)
					Expect(sw).To(Equal(apdu.SWOK))
					Expect(n).To(HaveLen(1))
					_, sw = onChannel(ctx, f, n[0], spd.Select())
					Expect(sw).To(Equal(apdu.SWOK))
					atr, err := reset()
					Expect(err).NotTo(HaveOccurred())
					Expect(checkATR(atr)).To(Succeed(), "%s ATR % X", how, atr)
					euicc, err := eUICCIndicated(atr)
					Expect(err).NotTo(HaveOccurred())
					Expect(euicc).To(BeTrue(), "%s: first TB after T=15 with b8 and b2 set, ATR % X", how, atr)
					Expect(atr).To(Equal(first), "%s answers the ATR the card answered first", how)
					_, sw = onChannel(ctx, f, n[0], spd.Select())
					Expect(sw).To(Equal(apdu.SW(0x6881)), "%s closed channel %d", how, n[0])
				}
				r, ok := f.rec.Link().(link.Resetter)
				Expect(ok).To(BeTrue(), "an eSIM is reset through its contacts")
				resetATR("a warm reset", func() ([]byte, error) { return r.Reset(ctx, false) })
				resetATR("a cold reset", func() ([]byte, error) { return r.Reset(ctx, true) })
				if p, ok := f.rec.Link().(link.PowerCycler); ok {
					resetATR("power-off and power-on", func() ([]byte, error) {
						if err := p.PowerOff(ctx); err != nil {
							return nil, err
						}
						return p.PowerOn(ctx)
					})
				}
			}, SpecTimeout(30*time.Second))

		It("MUST keep one SPD session per logical channel beside the ISD-R: selection, verification and pending responses isolated, memory shared",
			Case("TC-ESIM-002", Positive, Negative, "SPD-ESIM-1", "SPD-ESIM-2", "SPD-APP-2", "SPD-APP-5", "C28", "C35", "C42"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				// Channel 0: the ISD-R, not the SPD application.
				fci, sw := onChannel(ctx, f, 0, selectISDR)
				Expect(sw).To(Equal(apdu.SWOK))
				Expect(bytes.Contains(fci, isdrAID)).To(BeTrue(), "the ISD-R's FCI names its AID")
				eid, sw := onChannel(ctx, f, 0, getEID)
				Expect(sw).To(Equal(apdu.SWOK))
				Expect(eid).To(HaveLen(21))
				Expect(eid[:5]).To(Equal([]byte{0xBF, 0x3E, 0x12, 0x5A, 0x10}))
				_, sw = onChannel(ctx, f, 0, spd.GetData(spd.TagBalance))
				// The ISD-R is not the SPD application: SPEC.md leaves its
				// answers to GlobalPlatform, which has it refuse an
				// instruction it lacks (6D00) or a tag it does not hold
				// (6A88); the SPD application would answer 9000.
				Expect(sw).To(BeElementOf(sw6D00, sw6A88), "GET DATA on the ISD-R's channel does not reach the SPD application")

				// Channel a: the SPD application, verified.
				n, sw := onChannel(ctx, f, 0, openChannel)
				Expect(sw).To(Equal(apdu.SWOK))
				Expect(n).To(HaveLen(1))
				a := n[0]
				Expect(a).To(BeNumerically(">=", 1))
				Expect(a).To(BeNumerically("<=", 3))
				_, sw = onChannel(ctx, f, a, spd.GetData(spd.TagBalance))
				Expect(sw).To(Equal(apdu.SWConditionsNotSat), "a new channel has nothing selected")
				fci, sw = onChannel(ctx, f, a, spd.Select())
				Expect(sw).To(Equal(apdu.SWOK))
				sel, err := spd.ParseSelectResponse(fci)
				Expect(err).NotTo(HaveOccurred())
				Expect(sel.DeviceID).To(Equal(f.Profile.DeviceID))
				_, sw = onChannel(ctx, f, a, spd.VerifyPIN(f.Profile.PIN))
				Expect(sw).To(Equal(apdu.SWOK))

				// Channel b: the SPD application again, not verified.
				n, sw = onChannel(ctx, f, a, openChannel)
				Expect(sw).To(Equal(apdu.SWOK))
				b := n[0]
				Expect(b).NotTo(Equal(a))
				_, sw = onChannel(ctx, f, b, spd.Select())
				Expect(sw).To(Equal(apdu.SWOK))
				pay := payment(spd.KindBalance, spd.ModeOnline, 4_00)
				if d.Profile().Has(PayBalance) {
					_, sw = onChannel(ctx, f, b, spd.Pay(pay))
					Expect(sw).To(Equal(apdu.SWSecurityNotSatisfied), "verification on channel %d does not serve channel %d", a, b)
					_, sw = onChannel(ctx, f, a, spd.Pay(pay))
					Expect(sw == apdu.SWOK || sw.SW1() == 0x61).To(BeTrue(), "PAY on the verified channel %d: %s", a, sw)
					bal, sw := onChannel(ctx, f, b, spd.GetData(spd.TagBalance))
					Expect(sw).To(Equal(apdu.SWOK))
					Expect(bal).To(Equal(spd.DataObject(spd.TagBalance, []byte{0, 0, 0, 0, 0, 0, 0x25, 0x80})),
						"the payment on channel %d shows on channel %d: 100.00 - 4.00", a, b)
				}

				// A response split by 61xx is fetched on its own channel (the link
				// resolves it with the channel kept): nothing is pending on another.
				whole, sw := onChannel(ctx, f, a, apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x04, P2: 0x00, Data: spd.AID, Ne: 5})
				Expect(sw).To(Equal(apdu.SWOK))
				sel2, err := spd.ParseSelectResponse(whole)
				Expect(err).NotTo(HaveOccurred())
				Expect(sel2.DeviceID).To(Equal(f.Profile.DeviceID))
				_, sw = onChannel(ctx, f, b, spd.GetResponse(256))
				Expect(sw).To(Equal(apdu.SWConditionsNotSat), "channel %d has nothing pending", b)
				// A response left pending on channel a (sent as it is, 61xx
				// not followed) is not channel b's to fetch.
				if raw, ok := f.rec.Link().(link.RawExchanger); ok {
					_, sw = onChannelRaw(ctx, raw, a, apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x04, P2: 0x00, Data: spd.AID, Ne: 5})
					Expect(sw.SW1()).To(Equal(byte(0x61)), "SELECT with Le 5 on channel %d leaves the rest of its answer pending: %s", a, sw)
					_, sw = onChannelRaw(ctx, raw, b, spd.GetResponse(256))
					Expect(sw).To(Equal(apdu.SWConditionsNotSat), "GET RESPONSE on channel %d while a response is pending on channel %d only", b, a)
				}

				// Closing a channel ends its session only.
				_, sw = onChannel(ctx, f, 0, closeChannel(a))
				Expect(sw).To(Equal(apdu.SWOK))
				_, sw = onChannel(ctx, f, a, spd.GetData(spd.TagBalance))
				Expect(sw).To(Equal(apdu.SW(0x6881)), "a closed channel")
				_, sw = onChannel(ctx, f, b, spd.GetData(spd.TagBalance))
				Expect(sw).To(Equal(apdu.SWOK), "channel %d kept its session", b)
				_, sw = onChannel(ctx, f, 0, apdu.Command{CLA: 0x00, INS: 0x70, P1: 0x00, P2: a})
				Expect(sw).To(Equal(apdu.SWOK), "reopening channel %d", a)
				_, sw = onChannel(ctx, f, a, spd.GetData(spd.TagBalance))
				Expect(sw).To(Equal(apdu.SWConditionsNotSat), "a reopened channel starts with nothing selected")
				// Selecting the ISD-R on a channel ends its SPD session.
				_, sw = onChannel(ctx, f, b, selectISDR)
				Expect(sw).To(Equal(apdu.SWOK))
				_, sw = onChannel(ctx, f, b, spd.Select())
				Expect(sw).To(Equal(apdu.SWOK))
				if d.Profile().Has(PayBalance) {
					_, sw = onChannel(ctx, f, b, spd.Pay(pay))
					Expect(sw).To(Equal(apdu.SWSecurityNotSatisfied))
				}
			}, SpecTimeout(60*time.Second))

		It("MUST answer MANAGE CHANNEL and classes it does not offer as SPD-ESIM-1 says, and close channels 1..3 on a warm reset",
			Case("TC-ESIM-003", Positive, Negative, "SPD-ESIM-1", "SPD-STO-3", "C35", "C42"), func(ctx SpecContext) {
				f := open(ctx, d)
				opened := map[byte]bool{}
				for i := 0; i < 3; i++ {
					n, sw := onChannel(ctx, f, 0, openChannel)
					Expect(sw).To(Equal(apdu.SWOK))
					Expect(n).To(HaveLen(1))
					opened[n[0]] = true
				}
				Expect(opened).To(Equal(map[byte]bool{1: true, 2: true, 3: true}), "channels 1..3, lowest first")
				_, sw := onChannel(ctx, f, 0, openChannel)
				Expect(sw).To(Equal(apdu.SW(0x6A81)), "no channel left to open")
				_, sw = onChannel(ctx, f, 0, apdu.Command{CLA: 0x00, INS: 0x70, P1: 0x00, P2: 2})
				Expect(sw).To(Equal(apdu.SW(0x6A81)), "opening an open channel")
				_, sw = onChannel(ctx, f, 0, closeChannel(0))
				Expect(sw).To(Equal(apdu.SW(0x6A81)), "the basic channel cannot be closed")
				_, sw = onChannel(ctx, f, 0, apdu.Command{CLA: 0x00, INS: 0x70, P1: 0x40, P2: 1})
				Expect(sw).To(Equal(apdu.SWIncorrectP1P2))
				_, sw = onChannel(ctx, f, 0, apdu.Command{CLA: 0x04, INS: 0xA4, P1: 0x04, P2: 0x00, Data: spd.AID, Ne: 256})
				Expect(sw).To(Equal(apdu.SW(0x6882)), "secure messaging")
				_, sw = onChannel(ctx, f, 0, apdu.Command{CLA: 0x40, INS: 0xA4, P1: 0x04, P2: 0x00, Data: spd.AID, Ne: 256})
				Expect(sw).To(Equal(apdu.SW(0x6881)), "channel 4 (further interindustry class)")
				_, sw = onChannel(ctx, f, 3, spd.Select())
				Expect(sw).To(Equal(apdu.SWOK))
				r, ok := f.rec.Link().(link.Resetter)
				if !ok {
					return
				}
				_, err := r.Reset(ctx, false)
				Expect(err).NotTo(HaveOccurred())
				_, sw = onChannel(ctx, f, 3, spd.Select())
				Expect(sw).To(Equal(apdu.SW(0x6881)), "a warm reset closed channel 3")
				_, sw = onChannel(ctx, f, 0, spd.Select())
				Expect(sw).To(Equal(apdu.SWOK))
			}, SpecTimeout(30*time.Second))
	})
}
