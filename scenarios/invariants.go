package scenarios

import (
	"errors"
	"math/rand/v2"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/spd"
)

func defineInvariants(d Driver) {
	Describe("Invariants", func() {
		It("MUST conserve value over a long mixed sequence of payments, declines and acknowledgements",
			Label("slow"), Case("TC-INV-001", Positive, Negative, "SPD-PAY-1", "SPD-LED-1", "SPD-LED-4", "C2", "C4", "C7"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				rng := rand.New(rand.NewPCG(1, 2))
				// The suite's own model of the device, from SPEC.md alone:
				// at home and tier 0 the adjusted amount is the amount; a
				// payment is declined by the first rule of section 4.4 it
				// meets; the ledger holds what was paid and not yet
				// acknowledged.
				type record struct {
					atc     uint32
					amount  int64
					offline bool
				}
				var ledger []record
				balance, uses, atc := f.Profile.Balance, f.Profile.Uses, uint32(0)
				var paidFromBalance, charged, settled int64
				lim := f.Profile.Limits
				declined := 0
				for i := 0; i < 60; i++ {
					kind := []spd.PaymentKind{spd.KindBalance, spd.KindAccount, spd.KindUse}[rng.IntN(3)]
					mode := []spd.Mode{spd.ModeOnline, spd.ModeOffline}[rng.IntN(2)]
					amount := int64(rng.IntN(30_00))
					if kind == spd.KindUse {
						amount = 0
					}
					var offPending int64
					offCount := 0
					for _, r := range ledger {
						if r.offline {
							offPending += r.amount
							offCount++
						}
					}
					offline := mode == spd.ModeOffline
					want := ""
					switch {
					case lim.MaxPayment != 0 && amount > lim.MaxPayment:
						want = reasonPaymentLimit
					case kind == spd.KindBalance && amount > balance:
						want = reasonBalance
					case kind == spd.KindUse && uses == 0:
						want = reasonNoUses
					case offline && offPending+amount > lim.MaxPending:
						want = reasonPendingLimit
					case offline && offCount+1 > lim.MaxOfflineCount:
						want = reasonCountLimit
					}
					if want != "" {
						f.declines(ctx, payment(kind, mode, amount), want)
						declined++
					} else {
						f.pays(ctx, payment(kind, mode, amount), amount)
						atc++
						ledger = append(ledger, record{atc, amount, offline})
						charged += amount
						switch kind {
						case spd.KindBalance:
							balance -= amount
							paidFromBalance += amount
						case spd.KindUse:
							uses--
						}
					}
					if i%10 == 9 { // settle what the model says is pending, but the newest record
						var atcs []uint32
						keep := ledger[:0:0]
						for j, r := range ledger {
							if j == len(ledger)-1 && j > 0 {
								keep = append(keep, r)
								continue
							}
							atcs = append(atcs, r.atc)
							settled += r.amount
						}
						ledger = keep
						Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, ATCs: atcs})).To(Equal(sw9000))
					}
					s := f.state(ctx)
					var pending int64
					for _, r := range ledger {
						pending += r.amount
					}
					Expect(s.Balance).To(Equal(balance), "step %d", i)
					Expect(s.Uses).To(Equal(uses), "step %d", i)
					Expect(s.ATC).To(Equal(atc), "step %d", i)
					Expect(s.Pending).To(Equal(pending), "step %d: the pending total is the unacknowledged payments", i)
					Expect(s.Records).To(HaveLen(len(ledger)), "step %d", i)
					Expect(s.Balance+paidFromBalance).To(Equal(f.Profile.Balance), "issued = balance + paid from it, step %d", i)
					Expect(settled+s.Pending).To(Equal(charged), "every amount charged is pending or settled, once, step %d", i)
				}
				Expect(declined).To(BeNumerically(">", 0), "the sequence reaches a decline")
			}, SpecTimeout(120*time.Second))

		It("MUST leave the old state or the new after a power cut at any persistent write of a payment",
			Serial, Case("TC-INV-002", Positive, "SPD-STO-1", "C2", "C7"), func(ctx SpecContext) {
				need(d, Tearing)
				f := personalised(ctx, d, nil)
				f.login(ctx)
				torn := 0
				for n := 1; n < 64; n++ {
					before := f.snapshot(ctx)
					f.Device.TearAt(n)
					_, err := f.Client.Pay(ctx, payment(spd.KindBalance, spd.ModeOnline, 1_00))
					f.Device.TearAt(0)
					if err == nil {
						after := f.snapshot(ctx)
						Expect(after.Balance).To(Equal(before.Balance - 1_00))
						Expect(after.ATC).To(Equal(before.ATC + 1))
						Expect(torn).To(BeNumerically(">", 0), "no persistent write of the payment was torn")
						return // the payment completed before the tear point
					}
					Expect(errors.Is(err, spd.ErrDeclined)).To(BeFalse(), "declined instead of torn at write %d", n)
					torn++
					reconnect(ctx, f)
					Expect(f.Client.VerifyPIN(ctx, f.Profile.PIN)).To(Succeed())
					after := f.snapshot(ctx)
					old := after == before
					neu := after.Balance == before.Balance-1_00 && after.ATC == before.ATC+1 &&
						after.Ledger == before.Ledger+1 && after.Pending == before.Pending+1_00
					Expect(old || neu).To(BeTrue(), "tear at write %d left a mix: before %+v after %+v", n, before, after)
					if neu {
						// Rebase so the next round starts from the new state.
						continue
					}
				}
				Fail("the payment never completed within 64 persistent writes")
			}, SpecTimeout(120*time.Second))
	})
}
