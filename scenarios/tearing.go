package scenarios

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/link"
)

// tearable is one state-changing command for the tearing sweep.
type tearable struct {
	// name is the command as the report shows it.
	name string
	// verified: the command needs a verified session.
	verified bool
	// command builds the command to send from the state before it (a
	// command that may succeed only once is made anew each time).
	command func(before DeviceState) apdu.Command
	// isNew reports whether after is exactly the state the command leaves
	// when it completes from before.
	isNew func(before, after DeviceState) bool
	// answers, when set, accepts the status word of the untorn command
	// (default 9000).
	answers func(apdu.SW) bool
	// spendsTry: the command spends a PIN try before comparing and gives it
	// back on a match (SPD-PIN-2), writes outside its transaction, so a
	// torn command may leave the old state with one try less or with the
	// tries restored.
	spendsTry bool
	// once: the command cannot run again from its new state (ACTIVATE); a
	// cut that already left the new state ends the sweep.
	once bool
	// room, when set, makes room before each cut for one more command on
	// a device of any conforming capacity (SPEC.md section 11), given the
	// state before it: a sweep makes a record, token or transfer at every
	// cut that leaves the new state, more than a small ledger or table
	// holds. It may send untorn commands of its own (the host settling the
	// ledger, say); the sweep then reads the state before the cut afresh.
	room func(now DeviceState)
}

// sweep cuts power at every persistent write of t.command in turn (n = 1,
// 2, ... until the command completes without reaching the tear point),
// powers the device on after each cut and checks that the device holds
// exactly the state before the command or the state after it (SPD-STO-1),
// and answers nothing to a torn command (SPD-STO-2). It returns the number
// of tear points, and reports it.
func (f *Fixture) sweep(ctx context.Context, t tearable) int {
	GinkgoHelper()
	session := func() {
		_, err := f.Client.Select(ctx)
		Expect(err).NotTo(HaveOccurred())
		if t.verified {
			Expect(f.Client.VerifyPIN(ctx, f.Profile.PIN)).To(Succeed())
		}
	}
	session()
	for n := 1; n <= 64; n++ {
		if t.room != nil {
			t.room(f.state(ctx))
		}
		// Read once per cut: nothing reaches the device between the
		// check of one cut and the next (f.state), unless isNew or room
		// did.
		before := f.state(ctx)
		cmd := t.command(before)
		f.Device.TearAt(n)
		resp, err := f.Client.Transmit(ctx, cmd)
		f.Device.TearAt(0)
		if err == nil {
			if t.answers != nil {
				Expect(t.answers(resp.SW)).To(BeTrue(), "%s completed untorn with %s", t.name, resp.SW)
			} else {
				Expect(resp.SW).To(Equal(sw9000), "%s completed untorn with %s", t.name, resp.SW)
			}
			after := f.state(ctx)
			Expect(t.isNew(before, after)).To(BeTrue(), "%s completed: before %+v after %+v", t.name, before, after)
			Expect(n).To(BeNumerically(">", 1), "%s made no persistent write", t.name)
			AddReportEntry("tear points: "+t.name, fmt.Sprintf("%d persistent writes torn, each left the old state or the new", n-1))
			return n - 1
		}
		reconnect(ctx, f)
		if t.verified {
			Expect(f.Client.VerifyPIN(ctx, f.Profile.PIN)).To(Succeed())
		}
		after := f.state(ctx)
		// isNew first: for the PIN commands it presents the new PIN, the
		// only way to tell a completed change from a torn one.
		isNew := t.isNew(before, after)
		old := !isNew && equalState(before, after)
		if t.spendsTry && !old && !isNew {
			// The try spent before the comparison, or given back by the
			// match, with the rest of the state old.
			same := after
			same.PINTries = before.PINTries
			old = equalState(before, same) && (after.PINTries == before.PINTries-1 || after.PINTries == f.Profile.PINTryLimit)
		}
		Expect(old || isNew).To(BeTrue(),
			"%s torn at persistent write %d left a mix of old and new:\nbefore %+v\nafter  %+v", t.name, n, before, after)
		if isNew && t.once {
			AddReportEntry("tear points: "+t.name, fmt.Sprintf("%d persistent writes torn, each left the old state or the new; the last completed the command", n))
			return n
		}
	}
	Fail(t.name + " did not complete within 64 persistent writes")
	return 0
}

// TearPointsSummary totals the tear points the sweeps of a run reported
// (their "tear points: COMMAND" entries), per command and in all; "" when
// no sweep ran.
func TearPointsSummary(r Report) string {
	total, commands := 0, 0
	for _, s := range r.SpecReports {
		for _, e := range s.ReportEntries {
			name, ok := strings.CutPrefix(e.Name, "tear points: ")
			if !ok {
				continue
			}
			var n int
			if _, err := fmt.Sscanf(e.StringRepresentation(), "%d", &n); err == nil {
				total += n
				commands++
				_ = name
			}
		}
	}
	if commands == 0 {
		return ""
	}
	return fmt.Sprintf("tearing sweep: %d tear points over %d state-changing commands, each left the old state or the new", total, commands)
}

func equalState(a, b DeviceState) bool { return reflect.DeepEqual(a, b) }

// grew reports whether after is before with exactly the snapshot want
// and one more ledger record, which match accepts.
func grew(before, after DeviceState, want Snapshot, match func(spd.PendingRecord) bool) bool {
	if after.Snapshot != want || len(after.Records) != len(before.Records)+1 {
		return false
	}
	last := after.Records[len(after.Records)-1]
	a := after
	a.Records, a.Snapshot = after.Records[:len(before.Records)], before.Snapshot
	if len(before.Records) == 0 {
		a.Records = nil
	}
	return equalState(before, a) && match(last)
}

// conserved checks SPD-STO-1's value equation on a device that started
// with opening and has no payments of kind 01: the balance is the opening
// balance less the transfers out, plus the transfers in and reclaims of
// every record it made, those its ledger holds and those the host
// acknowledged from it (settled, as settle returned them).
func conserved(s DeviceState, opening int64, settled []spd.PendingRecord) {
	GinkgoHelper()
	v := opening
	seen := map[uint32]bool{}
	for _, r := range slices.Concat(settled, s.Records) {
		Expect(seen[r.ATC]).To(BeFalse(), "the ledger holds record ATC %d again after the host acknowledged it", r.ATC)
		seen[r.ATC] = true
		switch r.Kind {
		case spd.KindTransferOut:
			v -= r.Amount
		case spd.KindTransferIn, spd.KindReclaim:
			v += r.Amount
		}
	}
	Expect(s.Balance).To(Equal(v), "balance = opening - transfers out + transfers in + reclaims, over the %d records acknowledged and the %d in the ledger", len(settled), len(s.Records))
}

// sweepLedger is the most records the ledger holds at a cut of a tearing
// sweep. Every cut reads the whole state, each ledger record with a READ
// PENDING of its own: a sweep that let the ledger fill to the reference
// device's 64 records read 742 of them in TC-STO-001 alone. Old records
// still lie beside the one a torn command writes, for the check that
// nothing but the command's own record changed.
const sweepLedger = 4

// ledgerRoom is the room (tearable) of a command that adds a ledger
// record: when the ledger holds sweepLedger records, or as many as the
// device's capacity (SPEC.md section 11) if that is fewer, the host
// acknowledges every record but the newest (settleAllBut), adding them to
// *settled when settled is not nil.
func (f *Fixture) ledgerRoom(ctx context.Context, settled *[]spd.PendingRecord) func(DeviceState) {
	return func(now DeviceState) {
		GinkgoHelper()
		if now.Ledger < min(sweepLedger, capacities(f.Driver).Ledger) {
			return
		}
		recs := f.settleAllBut(ctx, nil, 1)
		if settled != nil {
			*settled = append(*settled, recs...)
		}
	}
}

func defineTearingCases(d Driver) {
	It("MUST leave the old state or the new after a power cut at any persistent write of every kind of PAY and of PRESENT CODE",
		Serial, Label("slow"), Case("TC-STO-001", Positive, "SPD-STO-1", "SPD-STO-2", "SPD-PAY-1", "SPD-PAY-2", "SPD-PAY-3", "SPD-PRC-1", "C2", "C7", "C8"), func(ctx SpecContext) {
			need(d, Tearing)
			p := tierProfile(1)
			p.Limits = spd.Limits{MaxPayment: 50_00, MaxPending: 1_000_00, MaxOfflineCount: 100, MaxOfflineAge: 72 * time.Hour}
			f := personalised(ctx, d, p)
			// Each cut that leaves the new state adds a record: the host
			// acknowledges all but the newest before the ledger holds more
			// than sweepLedger.
			room := f.ledgerRoom(ctx, nil)
			total := 0
			for _, c := range []struct {
				kind    spd.PaymentKind
				mode    spd.Mode
				amount  int64
				charged int64
			}{
				{spd.KindBalance, spd.ModeOnline, 3_33, 3_00},
				{spd.KindBalance, spd.ModeOffline, 1_11, 1_00},
				{spd.KindAccount, spd.ModeOnline, 2_22, 2_00},
				{spd.KindAccount, spd.ModeOffline, 1_11, 1_00},
				{spd.KindUse, spd.ModeOnline, 0, 0},
				{spd.KindUse, spd.ModeOffline, 0, 0},
			} {
				c := c
				total += f.sweep(ctx, tearable{
					name: fmt.Sprintf("PAY kind %s %s", c.kind, c.mode), verified: true, room: room,
					command: func(DeviceState) apdu.Command { return spd.Pay(payment(c.kind, c.mode, c.amount)) },
					isNew: func(b, a DeviceState) bool {
						w := b.Snapshot
						w.ATC++
						w.Ledger++
						w.Pending += c.charged
						switch c.kind {
						case spd.KindBalance:
							w.Balance -= c.charged
						case spd.KindUse:
							w.Uses--
						}
						return grew(b, a, w, func(r spd.PendingRecord) bool {
							return r.ATC == w.ATC && r.Kind == c.kind && r.Mode == c.mode && r.Amount == c.charged
						})
					},
				})
			}
			// PRESENT CODE commits an offline payment of kind 01 before the
			// code exists (SPD-PRC-1): the same old-or-new, with its record.
			code := presentRequest(1_11, codeChallenge)
			total += f.sweep(ctx, tearable{name: "PRESENT CODE", verified: true, room: room,
				command: func(DeviceState) apdu.Command { return spd.PresentCode(code) },
				isNew: func(b, a DeviceState) bool {
					w := b.Snapshot
					w.ATC++
					w.Ledger++
					w.Pending += 1_00
					w.Balance -= 1_00
					return grew(b, a, w, func(r spd.PendingRecord) bool {
						return r.ATC == w.ATC && r.Kind == spd.KindBalance && r.Mode == spd.ModeOffline && r.Amount == 1_00 &&
							string(r.PayeeNonce) == codeChallenge && string(r.Payee) == codePayee
					})
				}})
			Expect(total).To(BeNumerically(">=", 7))
		}, SpecTimeout(60*time.Second))

	It("MUST leave the old state or the new after a power cut at any persistent write of GENERATE MEDIUM, GENERATE TOKEN and a token payment",
		Serial, Label("slow"), Case("TC-STO-002", Positive, Negative, "SPD-STO-1", "SPD-TOK-1", "SPD-TOK-2", "SPD-MED-1", "C20", "C22"), func(ctx SpecContext) {
			need(d, Tearing)
			f := personalised(ctx, d, nil)
			onlyATC := func(b, a DeviceState) bool {
				w := b
				w.ATC++
				return equalState(w, a)
			}
			f.sweep(ctx, tearable{name: "GENERATE MEDIUM", verified: true,
				command: func(DeviceState) apdu.Command { return spd.GenerateMedium(spd.MediumRequest{Time: Clock}) }, isNew: onlyATC})
			c := medium.TokenControls{MaxTransactions: 100, MaxAmount: 10_00, Channels: medium.ChannelInStore}
			atc := f.state(ctx).ATC
			// The token table is not in the snapshot: count it. Every
			// GENERATE TOKEN the sweep left new spent an ATC and must have
			// stored its token with it. The sweep makes its tokens a table
			// at a time (the ICS's capacity of live tokens): those of one
			// table at one request time, expiring a minute after it, the
			// next table's two minutes later, when those have expired and
			// are dropped first. So exactly the capacity less those made at
			// one time more fit before 6A84 (a device that moved the ATC
			// without storing the token has room for more): with none more
			// for a whole table, before the sweep moves to the next time.
			tokens := capacities(d).Tokens
			made := func(s DeviceState) int { return int(s.ATC - atc) }
			// at is the request time of the token made after k others.
			at := func(k int) time.Time { return Clock.Add(time.Duration(k/tokens) * 2 * time.Minute) }
			generate := func(t time.Time) apdu.Command {
				return spd.GenerateToken(spd.TokenRequest{Time: t, Expiry: t.Add(time.Minute), Controls: c})
			}
			tables := 0
			f.sweep(ctx, tearable{name: "GENERATE TOKEN", verified: true,
				room: func(now DeviceState) {
					if k := made(now); k/tokens > tables {
						tables = k / tokens
						f.refuses(ctx, generate(at(k-1)), sw6A84,
							fmt.Sprintf("%d live tokens: the %d the sweep made at Clock+%s", tokens, tokens, at(k-1).Sub(Clock)))
					}
				},
				command: func(b DeviceState) apdu.Command { return generate(at(made(b))) }, isNew: onlyATC})
			k := made(f.state(ctx))
			last := at(k - 1)
			live := k - (k-1)/tokens*tokens
			for i := live; i < tokens; i++ {
				f.newToken(ctx, last, last.Add(time.Minute), c)
			}
			f.refuses(ctx, generate(last), sw6A84,
				fmt.Sprintf("%d live tokens: the %d the sweep made at Clock+%s and %d more", tokens, live, last.Sub(Clock), tokens-live))
			// A minute later they have expired and are dropped first.
			tok := f.newToken(ctx, last.Add(2*time.Minute), last.Add(time.Hour), medium.TokenControls{MaxTransactions: 20, MaxAmount: 10_00, Channels: medium.ChannelInStore})
			r := payment(spd.KindBalance, spd.ModeOnline, 1)
			r.Token = tok
			// Each payment adds a record: the host acknowledges a full
			// ledger, and the records it acknowledged are counted with
			// those the ledger holds.
			var settled []spd.PendingRecord
			room := f.ledgerRoom(ctx, &settled)
			f.sweep(ctx, tearable{name: "PAY under a token", verified: true, room: room,
				command: func(DeviceState) apdu.Command { return spd.Pay(r) },
				isNew: func(b, a DeviceState) bool {
					w := b.Snapshot
					w.ATC++
					w.Ledger++
					w.Pending++
					w.Balance--
					return grew(b, a, w, func(p spd.PendingRecord) bool { return string(p.Token) == string(tok) })
				}})
			// Each payment the ledger holds, or the host acknowledged from
			// it, was counted against the token with it, however many
			// tears: the rest of its 20 uses are left.
			f.login(ctx)
			used := 0
			for _, rec := range slices.Concat(settled, f.state(ctx).Records) {
				if string(rec.Token) == string(tok) {
					used++
				}
			}
			Expect(used).To(BeNumerically("<", 20))
			for ; used < 20; used++ {
				room(f.state(ctx))
				f.pays(ctx, r, 1)
			}
			room(f.state(ctx))
			f.declines(ctx, r, reasonTokenUsedUp)
		}, SpecTimeout(60*time.Second))

	It("MUST leave the old state or the new after a power cut at any persistent write of TRANSFER, TRANSFER IN and RECLAIM, conserving value",
		Serial, Label("slow"), Case("TC-STO-003", Positive, Negative, "SPD-STO-1", "SPD-XFR-1", "SPD-XFR-2", "SPD-XFR-4", "C13", "C16"), func(ctx SpecContext) {
			need(d, Tearing)
			f := personalised(ctx, d, nil)
			caps := capacities(d)
			// Each cut that leaves the new state adds a record and a
			// TRANSFER keeps an outgoing transfer: before a cut, the host
			// settles a full ledger, and closes the outgoing transfers when
			// the device keeps as many as its capacity (SPEC.md section
			// 11). The value equation counts the records it acknowledged
			// with those the ledger holds.
			var settled []spd.PendingRecord
			ledgerRoom := f.ledgerRoom(ctx, &settled)
			// kept: the serials of the outgoing transfers the device keeps,
			// outstanding or reclaimed, oldest first.
			var kept []uint64
			closeKept := func() {
				settled = append(settled, f.settle(ctx, kept)...)
				kept = nil
			}
			f.sweep(ctx, tearable{name: "TRANSFER", verified: true,
				room: func(now DeviceState) {
					if len(kept) >= caps.Transfers {
						closeKept()
					}
					ledgerRoom(f.state(ctx))
				},
				command: func(DeviceState) apdu.Command {
					return spd.TransferOut(spd.TransferRequest{Amount: 2_00, Currency: 978, Payee: nowhere, Time: Clock, Expiry: Clock.Add(time.Hour)})
				},
				isNew: func(b, a DeviceState) bool {
					w := b.Snapshot
					w.ATC++
					w.Ledger++
					w.Balance -= 2_00
					ok := grew(b, a, w, func(r spd.PendingRecord) bool {
						return r.Kind == spd.KindTransferOut && r.Amount == 2_00 && r.Serial > 0
					})
					if ok {
						kept = append(kept, a.Records[len(a.Records)-1].Serial)
					}
					return ok
				}})
			forger := newForger(f.Issuer)
			serial := uint64(0)
			f.sweep(ctx, tearable{name: "TRANSFER IN", verified: true, room: ledgerRoom,
				command: func(DeviceState) apdu.Command {
					serial++
					return spd.TransferIn(forger.sign(transferMedium(forger.ID, f.Profile.DeviceID, 5_00, serial, Clock.Add(time.Hour))), Clock)
				},
				isNew: func(b, a DeviceState) bool {
					w := b.Snapshot
					w.ATC++
					w.Ledger++
					w.Balance += 5_00
					return grew(b, a, w, func(r spd.PendingRecord) bool {
						return r.Kind == spd.KindTransferIn && r.Amount == 5_00 && r.Serial == serial
					})
				}})
			// A reclaim succeeds once per transfer: have enough outstanding
			// for every cut that leaves the new state, 8 more as far as the
			// device keeps them, and, whenever every one is reclaimed, the
			// host closes them and the cardholder makes one more.
			transfer := func() {
				ledgerRoom(f.state(ctx))
				res := f.transferTo(ctx, nowhere, 2_00, Clock.Add(time.Hour))
				kept = append(kept, res.Info().Serial)
			}
			for i := 0; i < 8 && len(kept) < caps.Transfers; i++ {
				transfer()
			}
			serials := slices.Clone(kept)
			next := 0
			f.sweep(ctx, tearable{name: "RECLAIM", verified: false,
				room: func(now DeviceState) {
					if next < len(serials) {
						ledgerRoom(now)
						return
					}
					closeKept()
					f.login(ctx)
					transfer()
					serials = append(serials, kept[len(kept)-1])
					// The sweep's session again: selected, not verified.
					_, err := f.Client.Select(ctx)
					Expect(err).NotTo(HaveOccurred())
				},
				command: func(DeviceState) apdu.Command { return f.reclaimOrder(serials[next], Clock.Add(2*time.Hour)) },
				isNew: func(b, a DeviceState) bool {
					w := b.Snapshot
					w.ATC++
					w.Ledger++
					w.Balance += 2_00
					ok := grew(b, a, w, func(r spd.PendingRecord) bool {
						return r.Kind == spd.KindReclaim && r.Amount == 2_00 && r.Serial == serials[next]
					})
					if ok {
						next++
					}
					return ok
				}})
			f.refuses(ctx, f.reclaimOrder(serials[next-1], Clock.Add(3*time.Hour)), sw6984, "a reclaim is applied exactly once")
			conserved(f.state(ctx), f.Profile.Balance, settled)
		}, SpecTimeout(60*time.Second))

	It("MUST leave the old state or the new after a power cut at any persistent write of ACKNOWLEDGE and UPDATE PARAMETERS",
		Serial, Label("slow"), Case("TC-STO-004", Positive, Negative, "SPD-STO-1", "SPD-LED-4", "SPD-UPD-1", "C4", "C14", "C15"), func(ctx SpecContext) {
			need(d, Tearing)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOffline, 1_00), 1_00)
			f.pays(ctx, payment(spd.KindAccount, spd.ModeOffline, 2_00), 2_00)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 3_00), 3_00)
			f.transferTo(ctx, nowhere, 1_00, Clock.Add(time.Hour))
			recs := f.state(ctx).Records
			f.sweep(ctx, tearable{name: "ACKNOWLEDGE",
				command: func(DeviceState) apdu.Command {
					return f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
						return spd.Acknowledge(k, id, spd.Acknowledgement{SyncTime: Clock.Add(time.Hour), ATCs: []uint32{recs[0].ATC, recs[2].ATC}, Serials: []uint64{1}})
					})
				},
				isNew: func(b, a DeviceState) bool {
					return a.Ledger == 2 && a.Pending == 2_00 && a.LastSync == spd.Unix(Clock.Add(time.Hour)) &&
						a.Balance == b.Balance && a.ATC == b.ATC && a.Records[0].ATC == recs[1].ATC && a.Records[1].ATC == recs[3].ATC
				}})
			f.refuses(ctx, spd.TransferShow(1, Clock), sw6982, "not verified after the power cycles")
			f.login(ctx)
			f.refuses(ctx, spd.TransferShow(1, Clock), sw6A83, "the acknowledgement closed the transfer with the records")
			tier, blocked := uint8(2), spd.StateBlocked
			counter := uint32(0)
			f.sweep(ctx, tearable{name: "UPDATE PARAMETERS",
				command: func(b DeviceState) apdu.Command {
					counter = b.UpdateCounter + 1
					return f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
						return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: counter, TopUp: 7_00, AddUses: 1, Tier: &tier, State: &blocked, Time: Clock.Add(2 * time.Hour)})
					})
				},
				isNew: func(b, a DeviceState) bool {
					w := b
					w.Balance += 7_00
					w.Uses++
					w.State = spd.StateBlocked
					w.UpdateCounter = counter
					w.Tier = []byte{2}
					w.LastSync = spd.Unix(Clock.Add(2 * time.Hour))
					return equalState(w, a)
				}})
		}, SpecTimeout(60*time.Second))

	It("MUST answer nothing to a torn VERIFY, verify nothing by it, and leave its try counter old or new",
		Serial, Label("slow"), Case("TC-STO-005", Positive, Negative, "SPD-PIN-2", "SPD-STO-1", "SPD-STO-2", "C32"), func(ctx SpecContext) {
			need(d, Tearing)
			f := selected(ctx, d, nil)
			f.torn(ctx, spd.VerifyPIN(TestPIN), 2, "a VERIFY of the right PIN")
			Expect(f.Client.PINTries(ctx)).To(Equal(2), "the decrement was persistent before the comparison")
			f.refuses(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)), sw6982, "the torn VERIFY verified nothing")
			f.torn(ctx, spd.VerifyPIN("0000"), 1, "a VERIFY of a wrong PIN")
			Expect(f.Client.PINTries(ctx)).To(BeElementOf(1, 2), "torn at the decrement: old or new")
			Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw9000))
			Expect(f.Client.PINTries(ctx)).To(Equal(3))
		}, SpecTimeout(60*time.Second))

	It("MUST leave the old state or the new after a power cut at any persistent write of VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER",
		Serial, Label("slow"), Case("TC-STO-006", Positive, Negative, "SPD-STO-1", "SPD-PIN-2", "SPD-PIN-3", "C32"), func(ctx SpecContext) {
			need(d, Tearing)
			f := personalised(ctx, d, nil)
			f.sweep(ctx, tearable{name: "VERIFY (wrong PIN)",
				command: func(DeviceState) apdu.Command { return spd.VerifyPIN("0000") },
				isNew:   func(b, a DeviceState) bool { w := b; w.PINTries--; return equalState(w, a) },
				answers: func(sw apdu.SW) bool { _, ok := sw.TriesLeft(); return ok }})
			block := func() {
				_, err := f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				for f.state(ctx).PINTries > 0 {
					f.sw(ctx, spd.VerifyPIN("0000"))
				}
			}
			// verifies reports whether pin is the PIN now (a VERIFY: only
			// called on a state that is not the old one).
			verifies := func(pin string) bool { return f.sw(ctx, spd.VerifyPIN(pin)) == sw9000 }
			block()
			f.sweep(ctx, tearable{name: "RESET RETRY COUNTER (PUK, new PIN)",
				command: func(DeviceState) apdu.Command { return spd.UnblockPIN(TestPUK, "9753") },
				isNew:   func(b, a DeviceState) bool { w := b; w.PINTries = 3; return equalState(w, a) && verifies("9753") }})
			cur := "9753"
			other := map[string]string{"9753": TestPIN, TestPIN: "9753"}
			f.sweep(ctx, tearable{name: "CHANGE REFERENCE DATA",
				command:   func(DeviceState) apdu.Command { return spd.ChangePIN(cur, other[cur]) },
				spendsTry: true,
				isNew: func(b, a DeviceState) bool {
					w := b
					w.PINTries = 3
					if !equalState(w, a) || !verifies(other[cur]) {
						return false
					}
					cur = other[cur]
					return true
				}})
			f.Profile.PIN = cur
			block()
			counter := uint32(0)
			f.sweep(ctx, tearable{name: "RESET RETRY COUNTER (host)",
				command: func(b DeviceState) apdu.Command {
					counter = b.UpdateCounter + 1
					return f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
						return spd.UnblockByHost(k, id, spd.Unblock{Counter: counter})
					})
				},
				isNew: func(b, a DeviceState) bool {
					w := b
					w.UpdateCounter = counter
					w.PINTries = 3
					return equalState(w, a)
				}})
			Expect(f.sw(ctx, spd.VerifyPIN(cur))).To(Equal(sw9000))
		}, SpecTimeout(60*time.Second))

	It("MUST leave the old state or the new after a power cut at any persistent write of PERSONALISE and ACTIVATE",
		Serial, Label("slow"), Case("TC-STO-007", Positive, Negative, "SPD-STO-1", "SPD-LC-1", "C40", "C41"), func(ctx SpecContext) {
			need(d, Tearing)
			f, p := initialised(ctx, d)
			script, err := f.Issuer.PersonalisationScript(p)
			Expect(err).NotTo(HaveOccurred())
			torn := 0
			for n := 1; ; n++ {
				Expect(n).To(BeNumerically("<", 64))
				f.Device.TearAt(n)
				resp, err := f.Client.Transmit(ctx, script[0])
				f.Device.TearAt(0)
				if err == nil {
					Expect(resp.SW).To(Equal(sw9000))
					break
				}
				torn++
				reconnect(ctx, f)
				st, err := f.Client.State(ctx)
				Expect(err).NotTo(HaveOccurred())
				if st == spd.StateInitialised {
					_, sw := f.raw(ctx, rawCmd(spd.GetData(spd.TagBalance)))
					Expect(sw).To(Equal(sw6985), "torn PERSONALISE at write %d: initialised, but part of the profile is readable", n)
					_, sw = f.raw(ctx, rawCmd(spd.GetData(spd.TagPINTries)))
					Expect(sw).To(Equal(sw6985), "torn PERSONALISE at write %d: initialised, but the PIN tries are readable", n)
					continue
				}
				Expect(st).To(Equal(spd.StatePersonalised), "torn PERSONALISE at write %d", n)
				break
			}
			Expect(torn).To(BeNumerically(">", 0))
			AddReportEntry("tear points: PERSONALISE", fmt.Sprintf("%d persistent writes torn", torn))
			f.Profile, f.Pub = p, p.DevicePublicKey
			s := f.state(ctx)
			Expect(s.Balance).To(Equal(p.Balance))
			Expect(s.PINTries).To(Equal(p.PINTryLimit))
			Expect(s.ATC).To(Equal(uint32(0)))
			f.sweep(ctx, tearable{name: "ACTIVATE", verified: true,
				command: func(DeviceState) apdu.Command { return spd.Activate() }, once: true,
				isNew: func(b, a DeviceState) bool { w := b; w.State = spd.StateActive; return equalState(w, a) }})
		}, SpecTimeout(60*time.Second))

	It("MUST leave the old state or the new after a power cut at any persistent write of a right VERIFY, STORE MEDIUM and TEST ERASE",
		Serial, Label("slow"), Case("TC-STO-009", Positive, "SPD-STO-1", "SPD-STO-2", "SPD-PIN-2", "SPD-STM-1", "SPD-TST-1", "C10", "C32", "C40"), func(ctx SpecContext) {
			need(d, Tearing)
			need(d, StoredMedia)
			f := personalised(ctx, d, nil)
			// A right PIN after a wrong one: the decrement, the comparison,
			// then the tries restored.
			_, err := f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, spd.VerifyPIN("0000"))).To(Equal(sw63C(2)))
			f.sweep(ctx, tearable{name: "VERIFY (right PIN)", spendsTry: true,
				command: func(DeviceState) apdu.Command { return spd.VerifyPIN(TestPIN) },
				isNew:   func(b, a DeviceState) bool { w := b; w.PINTries = 3; return equalState(w, a) }})

			labels := func() []string {
				list, err := f.Client.ListMedia(ctx)
				Expect(err).NotTo(HaveOccurred())
				var out []string
				for _, m := range list {
					out = append(out, m.Label)
				}
				return out
			}
			var counter uint32
			f.sweep(ctx, tearable{name: "STORE MEDIUM",
				command: func(b DeviceState) apdu.Command {
					counter = b.UpdateCounter + 1
					return f.storeOrder(ctx, spd.StoreOrder{Counter: counter, Label: "ticket", Format: spd.FormatMerchantCode, Content: sizedCode("TICKET-0001", 80)})
				},
				isNew: func(b, a DeviceState) bool {
					w := b
					w.UpdateCounter = counter
					if !equalState(w, a) {
						Expect(labels()).To(BeEmpty(), "a torn STORE MEDIUM left the medium without its update counter")
						return false
					}
					Expect(labels()).To(Equal([]string{"ticket"}), "the update counter moved with the medium")
					return true
				}})

			// TEST ERASE: a torn erase leaves the personalised device or a
			// blank one, nothing between.
			n0, err := f.Client.EraseCounter(ctx)
			Expect(err).NotTo(HaveOccurred())
			erase, err := spd.TestErase(f.Issuer.CA, f.Profile.DeviceID, n0+1)
			Expect(err).NotTo(HaveOccurred())
			before := f.state(ctx)
			torn := 0
			for n := 1; ; n++ {
				Expect(n).To(BeNumerically("<", 64), "TEST ERASE did not complete within 64 persistent writes")
				f.Device.TearAt(n)
				resp, err := f.Client.Transmit(ctx, erase)
				f.Device.TearAt(0)
				if err == nil {
					Expect(resp.SW).To(Equal(sw9000))
					break
				}
				Expect(err).To(MatchError(link.ErrRemoved), "a torn TEST ERASE answers nothing")
				torn++
				reconnect(ctx, f)
				st, err := f.Client.State(ctx)
				Expect(err).NotTo(HaveOccurred())
				if st == spd.StateBlank {
					Expect(f.Client.EraseCounter(ctx)).To(Equal(n0+1), "torn TEST ERASE at write %d: blank, with the counter moved", n)
					break
				}
				Expect(f.Client.VerifyPIN(ctx, f.Profile.PIN)).To(Succeed())
				Expect(f.state(ctx)).To(Equal(before), "torn TEST ERASE at write %d left a mix of old and new", n)
				Expect(f.Client.EraseCounter(ctx)).To(Equal(n0), "torn TEST ERASE at write %d: personalised, the counter not moved", n)
			}
			Expect(torn).To(BeNumerically(">", 0), "TEST ERASE made no persistent write")
			Expect(f.Client.State(ctx)).To(Equal(spd.StateBlank))
			AddReportEntry("tear points: TEST ERASE", fmt.Sprintf("%d persistent writes torn, each left the old state or the new", torn))
		}, SpecTimeout(60*time.Second))

	It("MUST keep every kind of state change across a power cycle",
		Serial, Label("slow"), Case("TC-STO-008", Positive, Negative, "SPD-STO-1", "SPD-STO-3", "C2", "C42"), func(ctx SpecContext) {
			need(d, PowerCycle)
			f := personalised(ctx, d, nil)
			cycle := func(what string) {
				before := f.state(ctx)
				reconnect(ctx, f)
				Expect(f.state(ctx)).To(Equal(before), "state after %s kept across a power cycle", what)
				f.login(ctx)
			}
			f.login(ctx)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOffline, 1_00), 1_00)
			cycle("PAY")
			tok := f.newToken(ctx, Clock, Clock.Add(time.Hour), medium.TokenControls{MaxTransactions: 1, MaxAmount: 5_00, Channels: 1})
			cycle("GENERATE TOKEN")
			r := payment(spd.KindAccount, spd.ModeOnline, 2_00)
			r.Token = tok
			f.pays(ctx, r, 2_00)
			cycle("a token payment")
			f.declines(ctx, r, reasonTokenUsedUp)
			f.transferTo(ctx, nowhere, 3_00, Clock.Add(time.Hour))
			cycle("TRANSFER")
			_, err := f.Client.TransferShow(ctx, spd.SerialAt{Serial: 1, Time: Clock})
			Expect(err).NotTo(HaveOccurred(), "the outgoing transfer survived the power cycle")
			forger := newForger(f.Issuer)
			env := forger.sign(transferMedium(forger.ID, f.Profile.DeviceID, 4_00, 1, Clock.Add(time.Hour)))
			_, err = f.Client.TransferIn(ctx, spd.TransferImport{Medium: env, Time: Clock})
			Expect(err).NotTo(HaveOccurred())
			cycle("TRANSFER IN")
			f.refuses(ctx, spd.TransferIn(env, Clock), sw6984, "the import list survived the power cycle")
			_, err = f.Client.Reclaim(ctx, f.reclaimOrder(1, Clock.Add(2*time.Hour)))
			Expect(err).NotTo(HaveOccurred())
			cycle("RECLAIM")
			f.refuses(ctx, f.reclaimOrder(1, Clock.Add(3*time.Hour)), sw6984, "the reclaim survived the power cycle")
			recs := f.state(ctx).Records
			Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock.Add(time.Hour), ATCs: []uint32{recs[0].ATC}})).To(Equal(sw9000))
			cycle("ACKNOWLEDGE")
			tier := uint8(1)
			f.update(ctx, spd.ParameterUpdate{Counter: 4, Tier: &tier, TopUp: 1_00, Time: Clock.Add(2 * time.Hour)})
			cycle("UPDATE PARAMETERS")
			Expect(f.sw(ctx, spd.VerifyPIN("0000"))).To(Equal(sw63C(2)))
			cycle("a wrong VERIFY")
			Expect(f.state(ctx).PINTries).To(Equal(3), "the login after the cycle restored the tries")
			Expect(f.sw(ctx, spd.ChangePIN(TestPIN, "1357"))).To(Equal(sw9000))
			f.Profile.PIN = "1357"
			cycle("CHANGE REFERENCE DATA")
			_, err = f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw63C(2)), "the old PIN is gone after the cycle")
		}, SpecTimeout(60*time.Second))
}
