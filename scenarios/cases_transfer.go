package scenarios

import (
	"bytes"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

// nowhere is a payee device ID no case personalises.
var nowhere = []byte{0x5D, 0x1A, 0xEE, 0x00, 0x00, 0x00, 0x00, 0x09}

func defineTransferCases(d Driver) {
	It("MUST debit, number the transfer from 1, record it in the ledger outside the pending total, also when the host acknowledges it, and show a medium naming payer and payee",
		Case("TC-XFR-004", Positive, "SPD-XFR-1", "SPD-LED-1", "SPD-LED-4", "SPD-PAY-4", "C13", "C16", "C17"), func(ctx SpecContext) {
			need(d, Transfers)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			f.pays(ctx, payment(spd.KindAccount, spd.ModeOffline, 2_00), 2_00)
			kept := uint64(capacities(d).Transfers)
			for serial := uint64(1); serial <= 2; serial++ {
				if serial > kept {
					// A device that keeps one transfer (SPEC.md section 11)
					// has it closed by the host first.
					Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, Serials: []uint64{serial - kept}})).To(Equal(sw9000))
				}
				before := f.state(ctx)
				res := f.transferTo(ctx, nowhere, 10_00, Clock.Add(time.Hour))
				after := f.state(ctx)
				want := before.Snapshot
				want.Balance -= 10_00
				want.ATC++
				want.Ledger++
				Expect(after.Snapshot).To(Equal(want), "a transfer debits and records; the pending total counts payments only")
				info := res.Info()
				Expect(info.Kind).To(Equal(medium.KindTransfer))
				Expect(info.Serial).To(Equal(serial), "serials start at 1")
				Expect(info.PayerID).To(Equal(f.Profile.DeviceID))
				Expect(info.DeviceID).To(Equal(f.Profile.DeviceID))
				Expect(info.PayeeID).To(Equal(nowhere))
				Expect(info.Amount).To(Equal(int64(10_00)))
				Expect(info.Balance).To(Equal(after.Balance))
				Expect(info.ATC).To(Equal(after.ATC))
				Expect(info.Expiry.Equal(Clock.Add(time.Hour))).To(BeTrue())
				Expect(info.Certificate).To(Equal(f.Profile.Certificate))
				rec := after.Records[len(after.Records)-1]
				Expect(rec.Kind).To(Equal(spd.KindTransferOut))
				Expect(rec.Mode).To(Equal(spd.ModeOffline))
				Expect(rec.Amount).To(Equal(int64(10_00)))
				Expect(rec.Serial).To(Equal(serial))
				Expect(rec.Counterpart).To(Equal(nowhere))
				Expect(rec.ATC).To(Equal(after.ATC))
			}
			Expect(f.Client.Pending(ctx)).To(Equal(int64(2_00)))
			// The host acknowledges the transfers' records, not the payment's:
			// the pending total, which never counted them, stays the payment's.
			recs := f.state(ctx).Records
			Expect(recs).To(HaveLen(3))
			Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, ATCs: []uint32{recs[1].ATC, recs[2].ATC}})).To(Equal(sw9000))
			left := f.state(ctx)
			Expect(left.Records).To(HaveLen(1), "the payment's record is left")
			Expect(left.Records[0].ATC).To(Equal(recs[0].ATC))
			Expect(left.Pending).To(Equal(int64(2_00)), "the pending total (DF05) after acknowledging the transfers' records")
		}, SpecTimeout(30*time.Second))

	It("MUST refuse a transfer to itself, in another currency, with a bad expiry, above the balance or unverified, changing nothing",
		Case("TC-XFR-005", Negative, "SPD-XFR-1", "SPD-PIN-1", "SPD-APP-3", "C13", "C17"), func(ctx SpecContext) {
			need(d, Transfers)
			f := selected(ctx, d, nil)
			req := func(mod func(*spd.TransferRequest)) apdu.Command {
				r := spd.TransferRequest{Amount: 5_00, Currency: 978, Payee: nowhere, Time: Clock, Expiry: Clock.Add(time.Hour)}
				mod(&r)
				return spd.TransferOut(r)
			}
			f.refuses(ctx, req(func(*spd.TransferRequest) {}), sw6982, "not verified")
			Expect(f.sw(ctx, spd.VerifyPIN(TestPIN))).To(Equal(sw9000))
			f.refuses(ctx, req(func(r *spd.TransferRequest) { r.Payee = f.Profile.DeviceID }), sw6A80, "a transfer to itself")
			f.refuses(ctx, req(func(r *spd.TransferRequest) { r.Currency = 840 }), sw6A80, "another currency")
			f.refuses(ctx, req(func(r *spd.TransferRequest) { r.Expiry = Clock }), sw6A80, "expiry at the time")
			f.refuses(ctx, req(func(r *spd.TransferRequest) { r.Amount = f.Profile.Balance + 1 }), sw6985, "one unit above the balance")
			f.refuses(ctx, req(func(r *spd.TransferRequest) { r.Payee = nowhere[:7] }), sw6A80, "a payee of 7 bytes")
			p2 := req(func(*spd.TransferRequest) {})
			p2.P2 = 1
			f.refuses(ctx, p2, sw6A86, "P2 01")
			p1 := req(func(*spd.TransferRequest) {})
			p1.P1 = 2
			f.refuses(ctx, p1, sw6A86, "P1 02")
			f.transferTo(ctx, nowhere, f.Profile.Balance, Clock.Add(time.Hour))
			Expect(f.Client.Balance(ctx)).To(Equal(int64(0)), "the whole balance may go")
		}, SpecTimeout(30*time.Second))

	It("MUST keep as many outgoing transfers as its capacity (the ICS's capacities.transfers), refuse one more with 6A84, and make room when the host closes one",
		Case("TC-XFR-006", Positive, Negative, "SPD-XFR-1", "SPD-LED-4", "C13", "C30"), func(ctx SpecContext) {
			need(d, Transfers)
			n := capacities(d).Transfers
			f := personalised(ctx, d, nil)
			f.login(ctx)
			// Each transfer adds a ledger record (SPD-LED-1): the ledger is
			// emptied whenever it is full, and before each refusal, so
			// that the refusal is the transfer table's.
			for i := 0; i < n; i++ {
				f.roomInLedger(ctx)
				f.transferTo(ctx, nowhere, 1, Clock.Add(time.Hour))
			}
			f.emptyLedger(ctx)
			cmd := spd.TransferOut(spd.TransferRequest{Amount: 1, Currency: 978, Payee: nowhere, Time: Clock, Expiry: Clock.Add(time.Hour)})
			f.refuses(ctx, cmd, sw6A84, fmt.Sprintf("outgoing transfer %d of a table of %d", n+1, n))
			// SPEC.md 1.2, TRANSFER: the balance before the capacity.
			balance, err := f.Client.Balance(ctx)
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, spd.TransferOut(spd.TransferRequest{Amount: balance + 1, Currency: 978, Payee: nowhere, Time: Clock, Expiry: Clock.Add(time.Hour)}),
				sw6985, fmt.Sprintf("outgoing transfer %d above the balance", n+1))
			Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, Serials: []uint64{uint64(min(3, n))}})).To(Equal(sw9000))
			f.roomInLedger(ctx)
			f.transferTo(ctx, nowhere, 1, Clock.Add(time.Hour))
			f.emptyLedger(ctx)
			f.refuses(ctx, cmd, sw6A84, fmt.Sprintf("%d kept again", n))
		}, SpecTimeout(30*time.Second))

	It("MUST show an outstanding transfer again changing nothing, and answer 6A83 once it is closed, reclaimed or unknown",
		Case("TC-XFR-007", Positive, Negative, "SPD-XFR-1", "SPD-XFR-4", "SPD-LED-4", "SPD-LC-2", "C13", "C16"), func(ctx SpecContext) {
			need(d, Transfers)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			// The second transfer is outstanding beside the first when the
			// device keeps two (SPEC.md section 11), so that TRANSFER SHOW
			// must pick the serial asked for; otherwise it is made once the
			// host has closed the first.
			first := f.transferTo(ctx, nowhere, 3_00, Clock.Add(time.Hour))
			var second spd.Result
			two := capacities(d).Transfers >= 2
			if two {
				second = f.transferTo(ctx, nowhere, 4_00, Clock.Add(time.Hour))
			}
			before := f.state(ctx)
			shown, err := f.Client.TransferShow(ctx, spd.SerialAt{Serial: 1, Time: Clock.Add(time.Minute)})
			Expect(err).NotTo(HaveOccurred())
			Expect(shown.Verify(f.Pub)).To(Succeed())
			want := first.Info()
			got := shown.Info()
			Expect(got.Serial).To(Equal(want.Serial))
			Expect(got.Amount).To(Equal(want.Amount))
			Expect(got.PayeeID).To(Equal(want.PayeeID))
			Expect(got.ATC).To(Equal(want.ATC), "the transfer's own ATC")
			Expect(got.Expiry.Equal(want.Expiry)).To(BeTrue())
			Expect(f.state(ctx)).To(Equal(before), "TRANSFER SHOW changes nothing")
			f.refuses(ctx, spd.TransferShow(99, Clock), sw6A83, "an unknown serial")

			Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, Serials: []uint64{1}})).To(Equal(sw9000))
			f.refuses(ctx, spd.TransferShow(1, Clock), sw6A83, "a serial the host closed")
			f.refuses(ctx, f.reclaimOrder(1, Clock.Add(2*time.Hour)), sw6A83, "RECLAIM of a serial the host closed")
			if !two {
				second = f.transferTo(ctx, nowhere, 4_00, Clock.Add(time.Hour))
			}

			blocked, active := spd.StateBlocked, spd.StateActive
			f.update(ctx, spd.ParameterUpdate{Counter: 1, State: &blocked, Time: Clock})
			f.login(ctx)
			_, err = f.Client.TransferShow(ctx, spd.SerialAt{Serial: 2, Time: Clock})
			Expect(err).NotTo(HaveOccurred(), "TRANSFER SHOW while blocked")
			res, err := f.Client.Reclaim(ctx, f.reclaimOrder(2, Clock.Add(2*time.Hour)))
			Expect(err).NotTo(HaveOccurred(), "RECLAIM while blocked")
			Expect(res.Verify(f.Pub)).To(Succeed())
			Expect(res.Info().Amount).To(Equal(second.Info().Amount))
			f.refuses(ctx, spd.TransferShow(2, Clock), sw6A83, "a reclaimed serial")
			f.update(ctx, spd.ParameterUpdate{Counter: 2, State: &active, Time: Clock})
			f.login(ctx)
			_, err = f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, spd.TransferShow(1, Clock), sw6982, "TRANSFER SHOW not verified")
		}, SpecTimeout(30*time.Second))

	It("MUST refuse a transfer medium signed for another payer, certified for another device or by another CA, and accept a certified device's",
		Case("TC-XFR-008", Negative, "SPD-XFR-2", "SPD-KEY-2", "C16", "C17", "C19"), func(ctx SpecContext) {
			need(d, Transfers)
			payee := personalised(ctx, d, nil)
			payee.login(ctx)
			victim := []byte{0x5D, 0x1A, 0xB0, 0x00, 0xCA, 0xFE, 0x00, 0x01}
			forger := newForger(payee.Issuer)
			me := payee.Profile.DeviceID
			in := func(info medium.ServiceInfo, g certifiedForger) apdu.Command {
				return spd.TransferIn(g.sign(info), Clock)
			}
			otherPayer := transferMedium(victim, me, 50_00, 1, Clock.Add(time.Hour))
			otherPayer.DeviceID = forger.ID
			payee.refuses(ctx, in(otherPayer, forger), sw6A80, "a medium naming another payer than the device that signed it")
			inVictimsName := transferMedium(victim, me, 50_00, 1, Clock.Add(time.Hour))
			payee.refuses(ctx, in(inVictimsName, forger), sw6982, "a medium in another payer's name, certified for the signer's own device")
			rogue, err := issuer.Generate("rogue")
			Expect(err).NotTo(HaveOccurred())
			rogueForger := newForger(rogue)
			payee.refuses(ctx, in(transferMedium(rogueForger.ID, me, 50_00, 1, Clock.Add(time.Hour)), rogueForger), sw6982, "a payer certified by another CA")
			genuine := transferMedium(forger.ID, me, 7_00, 1, Clock.Add(time.Hour))
			env := forger.sign(genuine)
			broken := bytes.Clone(env)
			broken[len(broken)-1] ^= 0x01
			payee.refuses(ctx, spd.TransferIn(broken, Clock), sw6982, "a medium whose signature does not verify")
			for why, mod := range map[string]func(*medium.ServiceInfo){
				"another currency":       func(i *medium.ServiceInfo) { i.Currency = 840 },
				"another payee":          func(i *medium.ServiceInfo) { i.PayeeID = victim },
				"the payee as its payer": func(i *medium.ServiceInfo) { i.PayerID, i.DeviceID = me, me },
			} {
				info := genuine
				mod(&info)
				payee.refuses(ctx, spd.TransferIn(forger.sign(info), Clock), sw6A80, why)
			}
			payee.refuses(ctx, spd.TransferIn([]byte("no medium"), Clock), sw6A80, "bytes that are no medium")
			before := payee.state(ctx)
			res, err := payee.Client.TransferIn(ctx, spd.TransferImport{Medium: env, Time: Clock})
			Expect(err).NotTo(HaveOccurred(), "a transfer from a device the issuer certified")
			Expect(res.Verify(payee.Pub)).To(Succeed())
			after := payee.state(ctx)
			Expect(after.Balance).To(Equal(before.Balance + 7_00))
			Expect(after.ATC).To(Equal(before.ATC + 1))
			Expect(after.Pending).To(Equal(before.Pending), "an import receipt is no payment record")
			rec := after.Records[len(after.Records)-1]
			Expect(rec.Kind).To(Equal(spd.KindTransferIn))
			Expect(rec.Serial).To(Equal(uint64(1)))
			Expect(rec.Counterpart).To(Equal(forger.ID))
			Expect(rec.Amount).To(Equal(int64(7_00)))
			info := res.Info()
			Expect(info.PayerID).To(Equal(forger.ID))
			Expect(info.PayeeID).To(Equal(me))
			Expect(info.Serial).To(Equal(uint64(1)))
			payee.refuses(ctx, spd.TransferIn(env, Clock), sw6984, "the same (payer, serial) again")
			resigned := transferMedium(forger.ID, me, 9_00, 1, Clock.Add(2*time.Hour))
			payee.refuses(ctx, spd.TransferIn(forger.sign(resigned), Clock), sw6984, "another medium with an imported (payer, serial)")
		}, SpecTimeout(30*time.Second))

	It("MUST import until exactly the expiry and refuse with 6985 after it, or once the device synced after it",
		Case("TC-XFR-009", Positive, Negative, "SPD-XFR-3", "C17"), func(ctx SpecContext) {
			need(d, Transfers)
			payee := personalised(ctx, d, nil)
			payee.login(ctx)
			forger := newForger(payee.Issuer)
			me := payee.Profile.DeviceID
			exp := Clock.Add(time.Hour)
			m1 := forger.sign(transferMedium(forger.ID, me, 1_00, 1, exp))
			payee.refuses(ctx, spd.TransferIn(m1, exp.Add(time.Second)), sw6985, "one second after the expiry")
			_, err := payee.Client.TransferIn(ctx, spd.TransferImport{Medium: m1, Time: exp})
			Expect(err).NotTo(HaveOccurred(), "at exactly the expiry")
			m2 := forger.sign(transferMedium(forger.ID, me, 1_00, 2, exp))
			// A last sync time at the expiry itself is not after it.
			m3 := forger.sign(transferMedium(forger.ID, me, 1_00, 3, exp))
			Expect(payee.acknowledge(ctx, spd.Acknowledgement{SyncTime: exp})).To(Equal(sw9000))
			payee.login(ctx)
			_, err = payee.Client.TransferIn(ctx, spd.TransferImport{Medium: m3, Time: Clock})
			Expect(err).NotTo(HaveOccurred(), "the device synced at exactly the expiry")
			Expect(payee.acknowledge(ctx, spd.Acknowledgement{SyncTime: exp.Add(time.Second)})).To(Equal(sw9000))
			payee.login(ctx)
			payee.refuses(ctx, spd.TransferIn(m2, Clock), sw6985, "a terminal time before the expiry, but the device synced after it")
		}, SpecTimeout(30*time.Second))

	It("MUST reclaim only after the expiry, once, on a genuine host order, crediting and recording it",
		Case("TC-XFR-010", Positive, Negative, "SPD-XFR-4", "SPD-KEY-3", "SPD-LED-1", "C13", "C17"), func(ctx SpecContext) {
			need(d, Transfers)
			f := personalised(ctx, d, nil)
			f.login(ctx)
			exp := Clock.Add(time.Hour)
			f.transferTo(ctx, nowhere, 6_00, exp)
			f.refuses(ctx, f.reclaimOrder(1, exp), sw6985, "RECLAIM at exactly the expiry")
			f.refuses(ctx, f.reclaimOrder(2, exp.Add(time.Hour)), sw6A83, "RECLAIM of an unknown serial")
			rogue, err := issuer.Generate("rogue")
			Expect(err).NotTo(HaveOccurred())
			forged, err := spd.Reclaim(rogue.HostKey(), f.Profile.DeviceID, spd.SerialAt{Serial: 1, Time: exp.Add(time.Hour)})
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, forged, sw6982, "RECLAIM signed by another host")
			before := f.state(ctx)
			res, err := f.Client.Reclaim(ctx, f.reclaimOrder(1, exp.Add(time.Second)))
			Expect(err).NotTo(HaveOccurred())
			Expect(res.Verify(f.Pub)).To(Succeed())
			after := f.state(ctx)
			Expect(after.Balance).To(Equal(before.Balance + 6_00))
			Expect(after.ATC).To(Equal(before.ATC + 1))
			Expect(after.Pending).To(Equal(before.Pending))
			rec := after.Records[len(after.Records)-1]
			Expect(rec.Kind).To(Equal(spd.KindReclaim))
			Expect(rec.Mode).To(Equal(spd.ModeOnline))
			Expect(rec.Serial).To(Equal(uint64(1)))
			Expect(rec.Amount).To(Equal(int64(6_00)))
			Expect(rec.Counterpart).To(Equal(nowhere))
			Expect(res.Info().Serial).To(Equal(uint64(1)))
			f.refuses(ctx, f.reclaimOrder(1, exp.Add(2*time.Hour)), sw6984, "a second RECLAIM")
			Expect(f.Client.Balance(ctx)).To(Equal(f.Profile.Balance), "value conserved: debited once, credited back once")
		}, SpecTimeout(30*time.Second))

	It("MUST remember as many imports as its capacity (the ICS's capacities.imports) and refuse one more with 6A84, and refuse TRANSFER IN and RECLAIM into a full ledger with 6A84",
		Label("slow"), Case("TC-XFR-011", Positive, Negative, "SPD-XFR-2", "SPD-XFR-4", "SPD-LED-1", "C13"), func(ctx SpecContext) {
			need(d, Transfers)
			caps := capacities(d)
			n, ledger := uint64(caps.Imports), caps.Ledger
			payee := personalised(ctx, d, nil)
			payee.login(ctx)
			forger := newForger(payee.Issuer)
			me := payee.Profile.DeviceID
			// atcs are the ATCs of the records the ledger holds, from the
			// signed results that made them: acknowledging them must empty
			// the ledger (SPD-LED-4).
			var atcs []uint32
			imported := uint64(0)
			importOne := func() {
				GinkgoHelper()
				imported++
				res, err := payee.Client.TransferIn(ctx, spd.TransferImport{Medium: forger.sign(transferMedium(forger.ID, me, 1, imported, Clock.Add(time.Hour))), Time: Clock})
				Expect(err).NotTo(HaveOccurred(), "import %d", imported)
				atcs = append(atcs, res.Info().ATC)
			}
			acknowledge := func() {
				GinkgoHelper()
				Expect(payee.Client.PendingCount(ctx)).To(Equal(len(atcs)), "the ledger after import %d", imported)
				Expect(payee.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, ATCs: atcs})).To(Equal(sw9000))
				Expect(payee.Client.PendingCount(ctx)).To(Equal(0), "the ledger after acknowledging up to import %d", imported)
				atcs = atcs[:0]
			}
			// A full ledger (SPD-LED-1) refuses TRANSFER IN and RECLAIM as
			// it does PAY and TRANSFER: an outgoing transfer to reclaim is
			// its first record, imports fill it while the import list has
			// room, payments of 0.01 when the ledger is the larger.
			out := payee.transferTo(ctx, nowhere, 1, Clock.Add(time.Hour))
			atcs = append(atcs, out.Info().ATC)
			paid := int64(0)
			for len(atcs) < ledger {
				if imported+1 < n {
					importOne()
					continue
				}
				if !d.Profile().Has(PayBalance) {
					Skip(fmt.Sprintf("%sthe ledger of %d records outlasts %d imports, and ICS features.pay-balance is false: no other record fills it", NotApplicablePrefix, ledger, n))
				}
				res := payee.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 1), 1)
				atcs = append(atcs, res.Info().ATC)
				paid++
			}
			Expect(payee.Client.PendingCount(ctx)).To(Equal(ledger), "the ledger filled")
			payee.refuses(ctx, spd.TransferIn(forger.sign(transferMedium(forger.ID, me, 1, imported+1, Clock.Add(time.Hour))), Clock), sw6A84,
				"TRANSFER IN into a full ledger")
			payee.refuses(ctx, payee.reclaimOrder(out.Info().Serial, Clock.Add(2*time.Hour)), sw6A84, "RECLAIM into a full ledger")
			// SPEC.md 1.2: a replay (TRANSFER IN) and a time not after the
			// expiry (RECLAIM) answer before the capacity.
			payee.refuses(ctx, spd.TransferIn(forger.sign(transferMedium(forger.ID, me, 1, 1, Clock.Add(time.Hour))), Clock), sw6984,
				"an import replayed into a full ledger")
			payee.refuses(ctx, payee.reclaimOrder(out.Info().Serial, Clock.Add(30*time.Minute)), sw6985, "RECLAIM before the expiry into a full ledger")
			acknowledge()
			// The rest of the import list, the ledger emptied when it fills
			// and before the refusal, so that the refusal is the list's.
			for imported < n {
				if len(atcs) == ledger {
					acknowledge()
				}
				importOne()
			}
			if len(atcs) == ledger {
				acknowledge()
			}
			payee.refuses(ctx, spd.TransferIn(forger.sign(transferMedium(forger.ID, me, 1, n+1, Clock.Add(time.Hour))), Clock), sw6A84,
				fmt.Sprintf("import %d of a list of %d", n+1, n))
			Expect(payee.Client.Balance(ctx)).To(Equal(payee.Profile.Balance - 1 - paid + int64(n)))
			_, err := payee.Client.Reclaim(ctx, payee.reclaimOrder(out.Info().Serial, Clock.Add(2*time.Hour)))
			Expect(err).NotTo(HaveOccurred(), "the RECLAIM the full ledger refused, with room again")
			Expect(payee.Client.Balance(ctx)).To(Equal(payee.Profile.Balance - paid + int64(n)))
		}, SpecTimeout(60*time.Second))

	It("MUST import a transfer that takes the balance to exactly 2^62 and refuse one above it with 6A80",
		Case("TC-XFR-013", Positive, Negative, "SPD-XFR-2", "SPD-UPD-1", "C13"), func(ctx SpecContext) {
			need(d, Transfers)
			payee := selected(ctx, d, nil)
			payee.update(ctx, spd.ParameterUpdate{Counter: 1, TopUp: 1<<62 - 5_00 - payee.Profile.Balance, Time: Clock})
			payee.login(ctx)
			forger := newForger(payee.Issuer)
			me := payee.Profile.DeviceID
			_, err := payee.Client.TransferIn(ctx, spd.TransferImport{Medium: forger.sign(transferMedium(forger.ID, me, 5_00, 1, Clock.Add(time.Hour))), Time: Clock})
			Expect(err).NotTo(HaveOccurred(), "a transfer of 5.00 onto 2^62 - 5.00")
			Expect(payee.Client.Balance(ctx)).To(Equal(int64(1<<62)), "the balance is exactly 2^62")
			payee.refuses(ctx, spd.TransferIn(forger.sign(transferMedium(forger.ID, me, 1, 2, Clock.Add(time.Hour))), Clock), sw6A80,
				"a transfer of 0.01 onto a balance of 2^62")
		}, SpecTimeout(30*time.Second))

	It("MUST refuse TRANSFER IN without verification with 6982",
		Case("TC-XFR-012", Negative, "SPD-XFR-2", "SPD-PIN-1", "C17", "C32"), func(ctx SpecContext) {
			need(d, Transfers)
			payee := selected(ctx, d, nil)
			forger := newForger(payee.Issuer)
			env := forger.sign(transferMedium(forger.ID, payee.Profile.DeviceID, 1_00, 1, Clock.Add(time.Hour)))
			payee.refuses(ctx, spd.TransferIn(env, Clock), sw6982, "TRANSFER IN not verified")
			p := spd.TransferIn(env, Clock)
			p.P1 = 1
			payee.refuses(ctx, p, sw6A86, "TRANSFER IN P1 01")
		}, SpecTimeout(30*time.Second))
}
