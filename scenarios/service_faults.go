package scenarios

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/backend/backendtest"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
)

// firstBackoff is the least wait of the terminal before its first retry;
// each further retry waits at least twice as long as the one before.
const firstBackoff = 40 * time.Millisecond

// checkRetries checks, on the service clock, the attempts the terminal made
// at one path in one service while the network failed them times times in
// a row with f: a call it retries is sent at most callTries times and once
// more than the faults when they run out, each retry only after a back-off
// (at least firstBackoff, doubling), never sooner and never after more
// than callTimeout; a call it does not retry is sent once; a slow answer is
// given up at exactly callTimeout.
func checkRetries(as []backendtest.Attempt, f backendtest.Fault, times int, retried bool) {
	GinkgoHelper()
	faulted := 1
	if retried {
		faulted = min(times, callTries)
	}
	want := faulted
	if retried && times < callTries {
		want++
	}
	Expect(as).To(HaveLen(want), "attempts: %v", as)
	for i, a := range as {
		if i >= faulted {
			Expect(a.Fault).To(Equal(backendtest.Pass), "attempt %d after the faults ran out: %v", i+1, as)
			continue
		}
		Expect(a.Fault).To(Equal(f), "attempt %d: %v", i+1, as)
		if f == backendtest.Slow {
			Expect(a.End.Sub(a.Start)).To(Equal(callTimeout), "a slow answer is given up at the call timeout: %v", as)
		}
	}
	for i := 1; i < len(as); i++ {
		gap := as[i].Start.Sub(as[i-1].End)
		Expect(gap).To(BeNumerically(">=", firstBackoff<<(i-1)), "back-off before attempt %d: %v", i+1, as)
		Expect(gap).To(BeNumerically("<=", callTimeout), "back-off before attempt %d: %v", i+1, as)
	}
}

func defineServiceFaults(d Driver) {
	Describe("The network failing at each step: done once, or not done and said so", func() {
		steps := []struct {
			id, path, what string
			retried        bool // the terminal sends the call again after a fault
		}{
			{"TC-SVC-040", "/healthz", "the reachability check", false},
			{"TC-SVC-041", "/v1/authorisations", "the online authorisation", true},
			{"TC-SVC-042", "/v1/settlements", "the clearing of the online record", true},
			{"TC-SVC-043", "/v1/keys", "fetching the backend's key", true},
		}
		for _, st := range steps {
			It(fmt.Sprintf("MUST pay once when %s is unreachable, answers 503, loses its answer or is slow", st.what),
				Case(st.id, Positive, "SPD-LED-5", "SPD-PAY-5", "C4", "C7", "C29", "C30", "C31"), func(ctx SpecContext) {
					s := newServiceLab(d)
					// One device for every fault, each time in a new
					// terminal that knows nothing yet (no backend key).
					c := s.customer(ctx, d, nil)
					for _, f := range backendtest.Faults {
						for _, times := range []int{1, 5} {
							By(fmt.Sprintf("%s, %d times", f, times))
							c.tm = s.terminal(ctx, d, c.f.Client.Link, c.user)
							balance, issued := c.f.snapshot(ctx).Balance, s.issuerBalance(ctx, c)
							s.net.Attempts("")
							for range times {
								s.net.At(st.path, f)
							}
							o := done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("4.00", "F-1")), Kind: spd.KindBalance}))
							s.net.Clear()
							checkRetries(s.net.Attempts(st.path), f, times, st.retried)
							Expect(o.Online || o.Pending).To(BeTrue(), "confirmed or pending: %s", o)
							Expect(c.f.snapshot(ctx).Balance).To(Equal(balance-4_00), "the device paid once")
							done(c.tm.Settle(ctx))
							Expect(c.f.snapshot(ctx).Ledger).To(Equal(0))
							Expect(s.issuerBalance(ctx, c)).To(Equal(issued-4_00), "the backend took it once")
							s.conserved(ctx)
						}
					}
				}, SpecTimeout(120*time.Second))
		}

		It("MUST settle each record once when settlement is unreachable, answers 503, loses its answer or is slow",
			Case("TC-SVC-044", Positive, "SPD-LED-4", "SPD-LED-5", "C4", "C7", "C47", "C49"), func(ctx SpecContext) {
				s := newServiceLab(d)
				for _, f := range backendtest.Faults {
					By(f.String())
					c := s.customer(ctx, d, nil)
					s.net.Down.Store(true)
					done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("2.00", "S-1")), Kind: spd.KindBalance}))
					done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("3.00", "S-2")), Kind: spd.KindAccount}))
					s.net.Down.Store(false)
					s.net.At("/v1/settlements", f, f, f)
					notDone(c.tm.Settle(ctx), "stay on the device")
					s.net.Clear()
					out := done(c.tm.Settle(ctx))
					Expect(out.Settled + out.AlreadySettled).To(Equal(2))
					Expect(out.Left).To(Equal(0))
					Expect(s.issuerBalance(ctx, c)).To(Equal(c.f.Profile.Balance - 5_00))
					Expect(s.conserved(ctx).RecordsPending).To(Equal(int64(0)))
					Expect(c.f.release()).To(Succeed())
				}
			}, SpecTimeout(120*time.Second))

		It("MUST issue a token or transfer online once, or say it did not, whatever the network does",
			Case("TC-SVC-045", Positive, "SPD-TOK-1", "C13", "C20", "C22", "C29", "C30"), func(ctx SpecContext) {
				s := newServiceLab(d)
				payee := s.customer(ctx, d, nil)
				for i, f := range backendtest.Faults {
					By(f.String())
					c := s.customer(ctx, d, nil)
					s.net.At("/v1/tokens", f, f, f)
					o := c.tm.IssueToken(ctx, terminal.TokenOrder{Expiry: s.clock.Now().Add(time.Hour),
						Controls: medium.TokenControls{MaxTransactions: 2, MaxAmount: 10_00, Channels: medium.ChannelInStore}})
					s.net.Clear()
					if o.Status == terminal.Done {
						_, err := s.admin.Token(ctx, fmt.Sprintf("%X", o.Token))
						Expect(err).NotTo(HaveOccurred(), "a token said done is in the vault")
					} else {
						notDone(o, "vault did not register it")
					}

					id := fmt.Sprintf("SUITE-F%d", i)
					tr := terminal.OnlineTransfer{ID: id, Payee: payee.f.Profile.DeviceID, Amount: 1_00}
					s.net.At("/v1/transfers", f, f, f)
					o = c.tm.SendOnline(ctx, tr)
					s.net.Clear()
					if o.Status == terminal.NotDone {
						Expect(o.Retry).To(BeTrue(), "%s", o)
						tr.Serial = o.Serial
						o = done(c.tm.SendOnline(ctx, tr))
					}
					Expect(o.Transfer.State).To(Equal(backend.TransferInFlight))
					Expect(s.issuerBalance(ctx, c)).To(Equal(c.f.Profile.Balance-1_00), "moved once")
					Expect(c.f.snapshot(ctx).Balance).To(Equal(c.f.Profile.Balance-1_00), "debited once on the device")
					done(payee.tm.Claim(ctx, id, terminal.Verification{}))
					Expect(c.f.release()).To(Succeed())
				}
				Expect(s.issuerBalance(ctx, payee)).To(Equal(payee.f.Profile.Balance + int64(len(backendtest.Faults))*1_00))
				Expect(payee.f.snapshot(ctx).Balance).To(Equal(payee.f.Profile.Balance + int64(len(backendtest.Faults))*1_00))
				s.conserved(ctx)
			}, SpecTimeout(120*time.Second))
	})
}
