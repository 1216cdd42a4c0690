package scenarios

import (
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/link"
)

// defineRemovalCases registers the cases of a card pulled out of its
// reader in the middle of a command (the rig ability CardRemoval): the
// command is done whole or not at all, whatever the terminal learnt.
func defineRemovalCases(d Driver) {
	It("MUST leave a payment done whole when the card leaves the reader after running it, and not done when it leaves before",
		Serial, Case("TC-STO-010", Positive, "SPD-STO-1", "SPD-STO-2", "SPD-PAY-1", "C2", "C7"), func(ctx SpecContext) {
			need(d, CardRemoval)
			f := personalised(ctx, d, nil)
			const amount = 2_00
			pay := spd.Pay(payment(spd.KindBalance, spd.ModeOnline, amount))
			// pull sends PAY in a verified session and pulls the card
			// while it runs, before the card sees it or after.
			pull := func(after bool) {
				GinkgoHelper()
				Expect(f.Client.VerifyPIN(ctx, f.Profile.PIN)).To(Succeed())
				f.Device.PullDuring(1, after)
				_, err := f.Client.Transmit(ctx, pay)
				Expect(err).To(MatchError(link.ErrRemoved), "the card left during PAY: no answer")
				_, err = f.Client.Select(ctx)
				Expect(errors.Is(err, link.ErrRemoved) || errors.Is(err, link.ErrNoCard)).To(BeTrue(),
					"an empty reader answers nothing: %v", err)
				f.Device.Reinsert()
				reconnect(ctx, f)
			}
			_, err := f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			before := f.state(ctx)

			pull(false)
			Expect(f.state(ctx)).To(Equal(before), "pulled before PAY reached the card: nothing changed")

			pull(true)
			after := f.state(ctx)
			want := before.Snapshot
			want.ATC++
			want.Ledger++
			want.Balance -= amount
			want.Pending += amount
			Expect(after.Snapshot).To(Equal(want), "pulled after PAY ran: the payment stands, once")
			Expect(after.Records).To(HaveLen(len(before.Records) + 1))
			r := after.Records[len(after.Records)-1]
			Expect([]any{r.ATC, r.Kind, r.Amount}).To(Equal([]any{want.ATC, spd.KindBalance, int64(amount)}),
				"the ledger keeps the payment whose answer was lost")
			Expect(f.sw(ctx, spd.VerifyPIN(f.Profile.PIN))).To(Equal(sw9000), "the card works on once back")
		}, SpecTimeout(60*time.Second))
}
