package scenarios

import (
	"errors"
	"math/rand/v2"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

func defineInvariants(d Driver) {
	Describe("Invariants", func() {
		It("MUST conserve value over a long mixed sequence of payments, declines and acknowledgements",
			Label("slow"), Case("TC-INV-001", Positive, "SPD-PAY-1", "SPD-LED-1", "SPD-LED-4", "C2", "C4", "C7"), func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				rng := rand.New(rand.NewPCG(1, 2))
				balance, uses := f.Profile.Balance, f.Profile.Uses
				var paidFromBalance, settledPending int64
				counter := uint32(0)
				for i := 0; i < 60; i++ {
					kind := []spd.PaymentKind{spd.KindBalance, spd.KindAccount, spd.KindUse}[rng.IntN(3)]
					mode := []spd.Mode{spd.ModeOnline, spd.ModeOffline}[rng.IntN(2)]
					amount := int64(rng.IntN(30_00))
					if kind == spd.KindUse {
						amount = 0
					}
					res := f.pay(ctx, payment(kind, mode, amount))
					if res.Success() {
						switch kind {
						case spd.KindBalance:
							balance -= res.Info().Amount
							paidFromBalance += res.Info().Amount
						case spd.KindUse:
							uses--
						}
					}
					if i%10 == 9 { // settle what is pending
						recs, err := f.Client.PendingRecords(ctx)
						Expect(err).NotTo(HaveOccurred())
						var atcs []uint32
						for _, r := range recs {
							Expect(r.Verify(f.Pub)).To(Succeed())
							atcs = append(atcs, r.ATC)
							settledPending += r.Amount
						}
						counter++
						ack := f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
							return spd.Acknowledge(k, id, spd.Acknowledgement{SyncTime: Clock, ATCs: atcs})
						})
						Expect(f.Client.Send(ctx, ack)).To(Succeed())
					}
					s := f.snapshot(ctx)
					Expect(s.Balance).To(Equal(balance), "step %d", i)
					Expect(s.Uses).To(Equal(uses), "step %d", i)
					Expect(s.Balance+paidFromBalance).To(Equal(f.Profile.Balance), "issued = balance + paid, step %d", i)
				}
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
